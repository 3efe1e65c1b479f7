"""A saved or fetched article page → one `Item`, with trafilatura.

trafilatura finds the article's main text and drops what surrounds it on a news site: navigation, "skip
to content" links, adverts, share bars, newsletter promos, related links, cookie banners. It also reads
the metadata (title, date with time and offset, author, description, main image, canonical URL). The
canonical URL is the page's public address, so relative links and images are made absolute against it
(a `<base href>` wins; a page fetched from somewhere else keeps links to the real site). A page whose
main text is too short to be an article is an error, not an empty story.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import charset_normalizer
import lxml.html
import trafilatura
from lxml import etree
from trafilatura.settings import Document

from ..errors import IntakeError
from ..textutil import clean_url
from .convert import clip, html_to_markdown, language, plain_text
from .feeds import SUMMARY_CHARS, TITLE_CHARS
from .item import Item, ItemImage

MIN_ARTICLE_WORDS = 25  # below this, what trafilatura found is a login form or an error page, not a story
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.I)
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


@dataclass
class ParsedPage:
    item: Item
    warnings: list[str] = field(default_factory=list)


def parse_page(
    data: bytes,
    *,
    source: str,
    url: str | None,
    timezone: ZoneInfo,
    charset: str | None = None,
    canonical: str | None = None,
    published: datetime | None = None,
    file: Path | None = None,
) -> ParsedPage:
    """Read an article page. `url` is where it was fetched from (None for a saved file); `canonical` and
    `published` override what the page says (for saved pages that lost their metadata)."""
    text = decode_html(data, charset)
    tree = trafilatura.load_html(text)
    if tree is None or not text.strip():
        raise IntakeError(f"{source}: empty or unreadable HTML")
    warnings: list[str] = []
    meta = trafilatura.extract_metadata(
        tree,
        default_url=canonical or url,
        date_config={"outputformat": _DATE_FORMAT, "original_date": True, "extensive_search": True},
    )
    page_url = canonical or _http(meta.url) or ""
    base = _http(_first(tree, "//base/@href"), page_url or url or "") or page_url or url or ""

    body_html = trafilatura.extract(
        text,
        url=base or None,
        output_format="html",
        include_links=True,
        include_images=True,
        include_formatting=True,
        include_tables=True,
        include_comments=False,
        with_metadata=False,
        deduplicate=False,
    )
    words = len(plain_text(body_html).split()) if body_html else 0
    if words < MIN_ARTICLE_WORDS:
        found = f"only {words} word{'s' if words != 1 else ''} of main text" if words else "no main text"
        raise IntakeError(f"{source}: no article found in the page ({found}); is it an article page?")

    title = clip(plain_text(meta.title), TITLE_CHARS)
    if not title:
        raise IntakeError(f"{source}: the page has no title (no <title>, og:title or headline)")
    moment = published or _published(meta, source, timezone, warnings)

    author = plain_text(_first(tree, "//meta[@name='author']/@content"))
    if not author or re.match(r"https?://", author):
        author = plain_text(meta.author)
    alt = plain_text(
        _first(tree, "//meta[@property='og:image:alt']/@content")
        or _first(tree, "//meta[@name='twitter:image:alt']/@content")
    )
    image = None
    if meta.image:
        try:
            src = clean_url(meta.image, base or None, schemes=("https",))
            image = ItemImage(src=src, alt=clip(alt or title, 500))
        except ValueError:
            warnings.append(f"{source}: image {meta.image[:100]!r} left out: stories only embed absolute https images")
    categories = [plain_text(c) for c in (meta.categories or [])] + [plain_text(t) for t in (meta.tags or [])]
    item = Item(
        title=title,
        published=moment,
        # A saved page that names no address is identified by its file, so importing it twice is harmless.
        guid=None if page_url else (file.resolve().as_uri() if file else None),
        url=page_url,
        summary=clip(plain_text(meta.description), SUMMARY_CHARS),
        byline=clip(author, 200),
        categories=[c for c in dict.fromkeys(categories) if c],
        image=image,
        body=html_to_markdown(_without_title(body_html or "", title), base),
        lang=language(_first(tree, "/html/@lang")) or language(meta.language),
        origin=source,
    )
    return ParsedPage(item=item, warnings=warnings)


def decode_html(data: bytes, charset: str | None = None) -> str:
    """Text of an HTML document whose charset may be missing or wrong.

    Bytes that are valid UTF-8 are UTF-8, whatever the header or meta tag claims (a wrong "iso-8859-1"
    label on UTF-8 is the usual mistake); otherwise the declared charsets are tried, then a guess, then
    windows-1252 (what browsers assume for an unlabelled Western page).
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    match = _META_CHARSET.search(data[:4096])
    declared = [charset, match.group(1).decode("ascii") if match else None]
    for name in declared:
        if name and name.lower().replace("_", "-") not in ("utf-8", "utf8"):
            try:
                return data.decode(name)
            except (LookupError, UnicodeDecodeError):
                continue
    best = charset_normalizer.from_bytes(data[:20000]).best()
    if best is not None and best.encoding:
        try:
            return data.decode(best.encoding)
        except (LookupError, UnicodeDecodeError):
            pass
    return data.decode("cp1252", errors="replace")


def _published(meta: Document, source: str, timezone: ZoneInfo, warnings: list[str]) -> datetime:
    raw = meta.date or ""
    try:
        moment = datetime.strptime(raw, _DATE_FORMAT) if raw else None
    except ValueError:
        moment = None
    if moment is None:
        try:
            moment = datetime.fromisoformat(raw) if raw else None
        except ValueError:
            moment = None
    if moment is None:
        raise IntakeError(
            f"{source}: no publication date found in the page; give one with --published 2024-03-05T07:30:00+01:00"
        )
    if moment.tzinfo is not None:
        return moment
    # The page gave a local time or only a day: read it in the newsletter's time zone, and say so.
    local = moment.replace(tzinfo=timezone)
    what = "only a date" if moment.time() == time(0) else "a time without a UTC offset"
    warnings.append(
        f"{source}: the page gives {what}; published set to {local.isoformat()} (use --published to correct it)"
    )
    return local


def _without_title(html: str, title: str) -> str:
    """The article HTML without a first heading that repeats the title (the story shows its title)."""
    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return html
    body = root.find("body")
    container = body if body is not None else root
    first = next(container.iterchildren(), None)
    if first is None or first.tag not in ("h1", "h2", "h3"):
        return html
    heading, wanted = _words(first.text_content()), _words(title)
    if heading and wanted and (heading in wanted or wanted in heading):
        first.drop_tree()
        return lxml.html.tostring(root, encoding="unicode")
    return html


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _first(tree: Any, xpath: str) -> str:
    found = tree.xpath(xpath)
    return str(found[0]).strip() if found else ""


def _http(value: str | None, base: str | None = None) -> str:
    if not value:
        return ""
    try:
        return clean_url(value, base or None)
    except ValueError:
        return ""
