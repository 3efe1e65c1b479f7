"""A saved or fetched article page → one `Item`, with trafilatura and rules of our own.

trafilatura (favouring precision) finds the article's main text and drops what surrounds it on a news
site: navigation, "skip to content" links, adverts, share bars, newsletter promos, related links, cookie
banners; `clean.py` removes what it lets through once links and images are kept. What the page says
about itself — the publication instant with its offset, section, tags, title, address, summary and
image — is read by `metadata.py` in a fixed order of trust; the extractor's date is the last resort.
The canonical URL is the page's public address, so relative links and images are made absolute
against it (a `<base href>` wins; a page fetched from somewhere else keeps links to the real site). A
page whose main text is too short to be an article is an error, not an empty story; so is one whose
text comes out garbled because its encoding could not be recognised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import lxml.html
import trafilatura
from lxml import etree

from ..errors import IntakeError
from ..textutil import clean_url, count_words
from .clean import prune_article, prune_page
from .convert import clip, html_to_markdown, language, plain_text
from .encoding import canonical, html_text, refuse_garbled, shown
from .feeds import SUMMARY_CHARS, TITLE_CHARS
from .item import Item, ItemImage
from .metadata import cut_site_name, parse_instant, read_page_meta, tag_list

# Below this, what trafilatura found is a login form or an error page, not a story. Counted like story
# excerpts: words where the script spaces them, characters (CJK) or letter groups (Thai …) where not.
MIN_ARTICLE_WORDS = 25
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.I)
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_BY = re.compile(r"^(?:by|von|par|por|di|de|door)\s+(?=\w)", re.I)


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
    warnings: list[str] = []
    text = decode_html(data, charset, source, warnings)
    tree = trafilatura.load_html(text)
    if tree is None or not text.strip():
        raise IntakeError(f"{source}: empty or unreadable HTML")
    guessed = trafilatura.extract_metadata(
        tree,
        default_url=canonical or url,
        date_config={"outputformat": _DATE_FORMAT, "original_date": True, "extensive_search": True},
    )
    meta = read_page_meta(tree, guessed_date=guessed.date or "")
    page_url = canonical or _http(guessed.url) or _http(meta.url) or ""
    base = _http(_first(tree, "//base/@href"), page_url or url or "") or page_url or url or ""

    body_html = _article_html(text, base)
    words = count_words(plain_text(body_html))
    if words < MIN_ARTICLE_WORDS:
        found = f"only {words} word{'s' if words != 1 else ''} of main text" if words else "no main text"
        raise IntakeError(f"{source}: no article found in the page ({found}); is it an article page?")

    title = clip(plain_text(meta.title) or _heading(tree, meta.site_name), TITLE_CHARS)
    if not title:
        raise IntakeError(f"{source}: the page has no title (no <title>, og:title or headline)")
    moment = published or _published(meta.published, source, timezone, warnings)

    author = plain_text(meta.author)
    if not author or re.match(r"https?://", author):
        author = plain_text(guessed.author)
    image = _page_image(meta.image or guessed.image, meta.image_alt, title, base, source, warnings)
    trackers: list[str] = []
    markdown = html_to_markdown(_without_title(body_html, title), base, trackers)
    warnings += [f"{source}: tracking image from {host} removed" for host in dict.fromkeys(trackers)]
    summary = clip(plain_text(meta.summary or guessed.description), SUMMARY_CHARS)
    refuse_garbled([title, summary, plain_text(body_html)[:2000]], source)
    item = Item(
        title=title,
        published=moment,
        # A saved page that names no address is identified by its file, so importing it twice is harmless.
        guid=None if page_url else (file.resolve().as_uri() if file else None),
        url=page_url,
        summary=summary,
        byline=clip(_BY.sub("", author), 200),
        section=clip(plain_text(meta.section), 80),
        # The page's keywords and tags, else the extractor's (tag links under the article): tags only.
        categories=[t for t in (plain_text(t) for t in meta.tags or tag_list(guessed.tags or [])) if t],
        image=image,
        body=markdown,
        lang=language(_first(tree, "/html/@lang")) or language(guessed.language),
        origin=source,
    )
    return ParsedPage(item=item, warnings=warnings)


def _article_html(text: str, base: str) -> str:
    """The page's main text as clean HTML: the page pruned of what is never the article, then extracted."""
    article = trafilatura.load_html(text)
    prune_page(article)
    extracted = trafilatura.extract(
        article,
        url=base or None,
        output_format="html",
        include_links=True,
        include_images=True,
        include_formatting=True,
        include_tables=True,
        include_comments=False,
        with_metadata=False,
        deduplicate=False,
        favor_precision=True,
    )
    return prune_article(extracted or "")


def _page_image(
    image_url: str | None, alt: str | None, title: str, base: str, source: str, warnings: list[str]
) -> ItemImage | None:
    """The page's main image, when it is an absolute https image (stories embed no other)."""
    if not image_url:
        return None
    try:
        src = clean_url(image_url, base or None, schemes=("https",))
    except ValueError:
        warnings.append(f"{source}: image {image_url[:100]!r} left out: stories only embed absolute https images")
        return None
    return ItemImage(src=src, alt=clip(plain_text(alt) or title, 500))


def decode_html(data: bytes, charset: str | None, source: str, warnings: list[str]) -> str:
    """Text of an HTML document whose charset may be missing or wrong (see `encoding.html_text`).

    A page that had to be guessed says so in a warning only when it declared something else: an
    unlabelled page is read as what it is, silently.
    """
    match = _META_CHARSET.search(data[:4096])
    declared = [charset, match.group(1).decode("ascii") if match else None]
    text, used = html_text(data, declared)
    named = [n for n in (canonical(d) for d in declared) if n]
    if used and named and used not in named:
        warnings.append(f"{source}: declared {shown(named[0])} but is {shown(used)}; read as {shown(used)}")
    return text


def _published(raw: str, source: str, timezone: ZoneInfo, warnings: list[str]) -> datetime:
    moment, has_time = parse_instant(raw) if raw else (None, False)
    if moment is None:
        raise IntakeError(
            f"{source}: no publication date found in the page; give one with --published 2024-03-05T07:30:00+01:00"
        )
    if not has_time:
        moment = datetime.combine(moment.date(), time(0))
    if moment.tzinfo is not None and has_time:
        return moment
    # The page gave a local time or only a day: read it in the newsletter's time zone, and say so.
    local = moment.replace(tzinfo=timezone)
    what = "only a date" if not has_time else "a time without a UTC offset"
    warnings.append(
        f"{source}: the page gives {what}; published set to {local.isoformat()} (use --published to correct it)"
    )
    return local


def _heading(tree: Any, site: str) -> str:
    """The article's `<h1>`, when the page has no usable title elsewhere."""
    return cut_site_name(plain_text(_first(tree, "(//article//h1 | //h1)[1]//text()")), [site])


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
        return str(lxml.html.tostring(root, encoding="unicode"))
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
