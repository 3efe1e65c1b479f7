"""Feeds → `Item`s: RSS 0.9x/1.0/2.0 and Atom with feedparser, JSON Feed 1.0/1.1 with the json module.

Mapping to story fields: title (HTML and scripts stripped, and a " - Site name" suffix repeating the
feed's title cut), published (the entry date, else its updated date, keeping the offset the feed wrote;
dates in French, German, Italian, Spanish or Portuguese are read with dateparser; an entry with neither
is skipped with a warning, never stamped "now"), summary, url, byline (the name of an RSS
`address (Name)`), section (the first category) and tags (all categories), image (media:content,
media:thumbnail, an image enclosure, JSON Feed `image`; alt from the media description, else the title)
and a Markdown body from the full content when the feed has it, without tracking pixels. Relative URLs
are made absolute against the entry's link (or an explicit xml:base). Malformed XML is read as far as
feedparser's lenient parser gets, with a warning saying so; a wrong charset declaration is detected;
a document that is not a feed at all, or whose text stays garbled, is an `IntakeError`.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import feedparser
from lxml import etree

from ..edition import tracker_host
from ..errors import IntakeError
from ..textutil import clean_url
from .convert import (
    clip,
    from_struct,
    html_to_markdown,
    language,
    parse_datetime,
    plain_text,
    text_to_markdown,
    title_text,
)
from .encoding import refuse_garbled, xml_as_utf8
from .item import Item, ItemImage
from .metadata import cut_site_name

SUMMARY_CHARS = 500
TITLE_CHARS = 300
LONG_DESCRIPTION_WORDS = 80  # a description longer than this is the article itself: it becomes the body
# Languages whose month and day names feeds write into RFC 822 dates ("mer, 16 nov 2022 10:00:00 +0100").
DATE_LANGUAGES = ["fr", "de", "it", "es", "pt", "nl", "en"]
_ADDRESS_NAME = re.compile(r"^\s*(?:mailto:)?[^\s()@]+\s*@\s*[^\s()]+\s*\((?P<name>.+)\)\s*$", re.S)
_MRSS = ("http://search.yahoo.com/mrss/", "http://search.yahoo.com/mrss")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
_JSON_TYPES = ("application/feed+json", "application/json")


@dataclass
class ParsedFeed:
    title: str
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0


def parse_feed(
    data: bytes, *, source: str, url: str | None = None, media_type: str = "", charset: str | None = None
) -> ParsedFeed:
    """Read a feed document. `url` is where it came from (the base for relative links), None for a file."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if media_type in _JSON_TYPES or head.startswith(b"{"):
        result = _parse_json_feed(data, source=source, url=url, charset=charset)
    else:
        data, note = xml_as_utf8(data, charset, source)
        result = _parse_xml_feed(data, source=source, url=url, media_type=media_type, charset=None if note else charset)
        result.warnings[:0] = [note] if note else []
    refuse_garbled([result.title] + [f"{i.title} {i.summary}" for i in result.items[:200]], source)
    # "Headline - La Stampa" in a feed called "La Stampa" (or "La Stampa - Esteri"): the story has a title.
    site = [result.title, re.split(r"\s+[|\-–—:·•»]\s+", result.title)[0]] if result.title != source else []
    for item in result.items:
        item.title = cut_site_name(item.title, site) or item.title
    return result


# --- RSS / Atom -------------------------------------------------------------------------------------


def _parse_xml_feed(data: bytes, *, source: str, url: str | None, media_type: str, charset: str | None) -> ParsedFeed:
    headers = {}
    if url:
        headers["content-location"] = url
    if media_type:
        headers["content-type"] = media_type + (f"; charset={charset}" if charset else "")
    # Our own sanitizer and URL resolution run on every body (against the entry link, not the feed URL
    # feedparser would use); skipping feedparser's halves the parse time of a big feed.
    parsed = feedparser.parse(data, response_headers=headers, resolve_relative_uris=False, sanitize_html=False)
    entries = parsed.get("entries", [])
    problem: BaseException | None = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if not entries and not parsed.get("version"):
        head = data[:2048].lower()
        if b"<html" in head or b"<!doctype html" in head:
            raise IntakeError(f"{source}: is a web page, not a feed; for one article use `newsletter import page`")
        if problem is not None:
            raise IntakeError(f"{source}: not a readable feed ({_describe(problem, data)})")
        raise IntakeError(f"{source}: not an RSS, Atom or JSON feed")
    malformed = problem is not None and not isinstance(
        problem, feedparser.CharacterEncodingOverride | feedparser.NonXMLContentType
    )
    if malformed and not entries and problem is not None:
        raise IntakeError(f"{source}: not a readable feed ({_describe(problem, data)}); no entry could be recovered")
    feed = parsed.get("feed", {})
    result = ParsedFeed(title=plain_text(feed.get("title")) or source)
    if isinstance(problem, feedparser.CharacterEncodingOverride):
        result.warnings.append(f"{source}: {problem}; check the accents in the imported stories")
    elif malformed and problem is not None:
        result.warnings.append(
            f"{source}: malformed XML ({_describe(problem, data)}); imported what the parser recovered: "
            f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
        )
    captions = _media_descriptions(data, len(entries))
    feed_link = _absolute(feed.get("link"), url or "")
    feed_lang = language(feed.get("language"))
    for number, entry in enumerate(entries, 1):
        origin = f"{source} entry {number}"
        try:
            item = _rss_item(entry, origin, url or source, feed_link, feed_lang, captions[number - 1], result.warnings)
        except _Skip as skip:
            result.skipped += 1
            result.warnings.append(str(skip))
            continue
        result.items.append(item)
    return result


class _Skip(Exception):
    """An entry that cannot be a story; `where` names it (with its title when it has one)."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}; skipped")


def _rss_item(
    entry: Any, origin: str, feed_key: str, feed_link: str, feed_lang: str, caption: str, warnings: list[str]
) -> Item:
    title = clip(title_text(entry.get("title")), TITLE_CHARS)
    guid = entry.get("id") or None
    label = f"{origin} ({title!r})" if title else origin
    if not title:
        raise _Skip(origin, "has no title")
    # dict.get: feedparser's own .get("updated") answers with the published date (and a deprecation warning).
    updated, updated_parsed = dict.get(entry, "updated"), dict.get(entry, "updated_parsed")
    published = (
        from_struct(entry.get("published_parsed"), entry.get("published"))
        or from_struct(updated_parsed, updated)
        or foreign_date(entry.get("published"))
        or foreign_date(updated)
    )
    if published is None:
        raw = entry.get("published") or updated
        raise _Skip(label, f"date {raw!r} is not understood" if raw else "has no published or updated date")
    link = _absolute(entry.get("link"), feed_link or feed_key)
    # The base for relative URLs inside the entry: an explicit xml:base wins, then the entry's own page.
    content = _best_content(entry.get("content") or [])
    detail_base = (content or {}).get("base") or entry.get("summary_detail", {}).get("base") or ""
    base = detail_base if detail_base and detail_base != feed_key else (link or detail_base or feed_link)

    # feedparser files media:description under `summary` when the entry has no description of its own:
    # a photo caption is not a summary.
    candidates = [entry.get("summary"), entry.get("summary_detail", {}).get("value")]
    if caption:
        candidates = [c for c in candidates if c and plain_text(c) != caption]
    description = next((c for c in candidates if c), "")
    if content is not None and description == content.get("value"):
        description = ""  # Atom without <summary>: feedparser repeats the content there
    summary_text = plain_text(description)
    trackers: list[str] = []
    if content is not None:
        value = content.get("value") or ""
        plain = content.get("type") == "text/plain"
        body = text_to_markdown(value) if plain else html_to_markdown(value, base or "", trackers)
    elif len(summary_text.split()) > LONG_DESCRIPTION_WORDS:
        body = html_to_markdown(description, base or "", trackers)
    else:
        body = ""
    warnings += [f"{label}: tracking image from {host} removed" for host in dict.fromkeys(trackers)]

    categories = [c for c in (plain_text(t.get("term") or t.get("label")) for t in entry.get("tags") or []) if c]
    image = _rss_image(entry, base or feed_link, caption or title, label, warnings)
    lang = language((content or {}).get("language")) or language(entry.get("title_detail", {}).get("language"))
    return Item(
        title=title,
        published=published,
        guid=_namespaced(guid, feed_key),
        url=link,
        summary=clip(summary_text, SUMMARY_CHARS),
        byline=_byline(entry),
        section=categories[0] if categories else "",
        categories=categories,
        image=image,
        body=body,
        lang=lang or feed_lang,
        origin=label,
    )


def _best_content(contents: list[Any]) -> Any | None:
    """The richest of an entry's contents: HTML over XHTML over plain text."""
    rank = {"text/html": 0, "application/xhtml+xml": 1, "text/plain": 2}
    usable = [c for c in contents if (c.get("value") or "").strip()]
    return min(usable, key=lambda c: rank.get(c.get("type", ""), 3), default=None)


def _rss_image(entry: Any, base: str, alt: str, label: str, warnings: list[str]) -> ItemImage | None:
    urls: list[str] = []
    for media in entry.get("media_content") or []:
        kind = (media.get("medium") or media.get("type") or "").lower()
        address = media.get("url") or ""
        if kind.startswith("image") or (not kind and address.lower().split("?")[0].endswith(_IMAGE_SUFFIXES)):
            urls.append(address)
    urls += [t.get("url") or "" for t in entry.get("media_thumbnail") or []]
    urls += [e.get("href") or "" for e in entry.get("enclosures") or [] if (e.get("type") or "").startswith("image/")]
    credits = entry.get("media_credit") or []
    credit = plain_text((credits[0].get("content") if credits else None) or entry.get("credit"))
    return _pick_image(urls, base, alt, credit, label, warnings)


def _pick_image(urls: list[str], base: str, alt: str, credit: str, label: str, warnings: list[str]) -> ItemImage | None:
    """The first image URL that is (or, relative, becomes) absolute https; stories only embed https."""
    rejected = ""
    for address in urls:
        if not address or tracker_host(address):
            continue
        try:
            return ItemImage(
                src=clean_url(address, base or None, schemes=("https",)), alt=clip(alt, 500), credit=clip(credit, 300)
            )
        except ValueError:
            rejected = rejected or address
    if rejected:
        warnings.append(f"{label}: image {rejected[:100]!r} left out: stories only embed absolute https images")
    return None


def _byline(entry: Any) -> str:
    raw = plain_text(entry.get("author"))
    names = [_person(plain_text(a.get("name")), raw) for a in entry.get("authors") or [] if isinstance(a, dict)]
    names = [n for n in names if n and "@" not in n]
    if not names:
        detail = entry.get("author_detail") or {}
        name = _person(plain_text(detail.get("name") or ""), raw)
        if not name and not detail.get("email"):
            name = _person(raw, raw)
        names = [name] if name and "@" not in name else []
    return clip(", ".join(dict.fromkeys(names)), 200)


def _person(name: str, raw: str) -> str:
    """A name from feedparser's reading of an author; RSS 2.0's `address (Name)` gives Name.

    feedparser splits "jane@example.org (Jane Doe)" well but not its variants ("mailto:…", "jane @
    example.org (…)"), leaving half an address in the name: those are read from the raw text again.
    """
    name = " ".join(name.split())
    match = _ADDRESS_NAME.match(name) or (_ADDRESS_NAME.match(raw) if ("(" in name or "mailto:" in name) else None)
    if match:
        return " ".join(match.group("name").split())
    return name


def foreign_date(raw: Any) -> datetime | None:
    """An RFC 822-like date in another language, with its offset; a date without one is read as UTC
    (as feedparser reads English ones). Only absolute dates: "hier" or "vor 2 Stunden" are not dates."""
    if not isinstance(raw, str) or not re.search(r"\b\d{4}\b", raw):
        return None
    import dateparser  # imported on first use: most feeds write English dates, which feedparser reads

    moment: datetime | None = dateparser.parse(
        raw,
        languages=DATE_LANGUAGES,
        settings={"PARSERS": ["absolute-time"], "REQUIRE_PARTS": ["day", "month", "year"]},
    )
    if moment is None:
        return None
    offset = moment.utcoffset()
    if offset is None:
        return moment.replace(tzinfo=UTC)
    return moment.replace(tzinfo=timezone(timedelta(seconds=offset.total_seconds())))


def _media_descriptions(data: bytes, count: int) -> list[str]:
    """media:description of each entry, in document order ('' where there is none).

    feedparser reads media:description as if it were the entry's own description, so the photo caption
    we want as alt text is read here with lxml. If the two parsers disagree on the number of entries
    (badly broken XML), captions are not used: the title is the fallback alt text.
    """
    empty = [""] * count
    if b"search.yahoo.com/mrss" not in data:
        return empty
    found: list[str] = []
    try:
        for _event, el in etree.iterparse(io.BytesIO(data), events=("end",), recover=True, resolve_entities=False):
            name = etree.QName(el).localname if isinstance(el.tag, str) else ""
            if name in ("item", "entry"):
                texts = (plain_text("".join(d.itertext())) for ns in _MRSS for d in el.iter(f"{{{ns}}}description"))
                found.append(next((t for t in texts if t), ""))
                el.clear()
    except (etree.LxmlError, ValueError):
        return empty
    return found if len(found) == count else empty


# --- JSON Feed --------------------------------------------------------------------------------------


def _parse_json_feed(data: bytes, *, source: str, url: str | None, charset: str | None = None) -> ParsedFeed:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # JSON is UTF-8 by definition; a server that says otherwise in its header gets the benefit of the doubt.
        try:
            text = data.decode(charset or "")
        except (LookupError, UnicodeDecodeError):
            raise IntakeError(f"{source}: JSON Feed is not UTF-8") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IntakeError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise IntakeError(f"{source}: JSON without a JSON Feed 'version' (https://jsonfeed.org/version/1.1)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise IntakeError(f"{source}: JSON Feed 'items' must be a list")
    feed_base = _absolute(doc.get("home_page_url"), url or "") or _absolute(doc.get("feed_url"), url or "") or url
    result = ParsedFeed(title=plain_text(_str(doc.get("title"))) or source)
    feed_lang = language(doc.get("language"))
    feed_authors = _json_authors(doc)
    feed_key = url or source
    for number, entry in enumerate(items, 1):
        origin = f"{source} item {number}"
        try:
            if not isinstance(entry, dict):
                raise _Skip(origin, "is not an object")
            item = _json_item(entry, origin, feed_key, feed_base or "", feed_lang, feed_authors, result.warnings)
        except _Skip as skip:
            result.skipped += 1
            result.warnings.append(str(skip))
            continue
        result.items.append(item)
    return result


def _json_item(
    entry: dict[str, Any],
    origin: str,
    feed_key: str,
    feed_base: str,
    feed_lang: str,
    feed_authors: str,
    warnings: list[str],
) -> Item:
    title = clip(title_text(_str(entry.get("title"))), TITLE_CHARS)
    label = f"{origin} ({title!r})" if title else origin
    if not title:
        raise _Skip(origin, "has no title")
    raw_date = _str(entry.get("date_published")) or _str(entry.get("date_modified"))
    published = parse_datetime(_str(entry.get("date_published"))) or parse_datetime(_str(entry.get("date_modified")))
    if published is None:
        why = f"date {raw_date!r} is not an RFC 3339 date" if raw_date else "has no date_published or date_modified"
        raise _Skip(label, why)
    link = _absolute(_str(entry.get("url")), feed_base) or _absolute(_str(entry.get("external_url")), feed_base)
    base = link or feed_base
    trackers: list[str] = []
    if _str(entry.get("content_html")).strip():
        body = html_to_markdown(_str(entry.get("content_html")), base, trackers)
    elif _str(entry.get("content_text")).strip():
        body = text_to_markdown(_str(entry.get("content_text")))
    else:
        body = ""
    warnings += [f"{label}: tracking image from {host} removed" for host in dict.fromkeys(trackers)]
    raw_tags = entry.get("tags")
    tags = raw_tags if isinstance(raw_tags, list) else []
    categories = [t for t in (plain_text(_str(t)) for t in tags) if t]
    guid = entry.get("id")
    guid_text = str(guid) if isinstance(guid, str | int) and not isinstance(guid, bool) and str(guid) else None
    image_urls = [_str(entry.get("image")), _str(entry.get("banner_image"))]
    return Item(
        title=title,
        published=published,
        guid=_namespaced(guid_text, feed_key),
        url=link,
        summary=clip(title_text(_str(entry.get("summary"))), SUMMARY_CHARS),
        byline=_json_authors(entry) or feed_authors,
        section=categories[0] if categories else "",
        categories=categories,
        image=_pick_image(image_urls, base, title, "", label, warnings),
        body=body,
        lang=language(entry.get("language")) or feed_lang,
        origin=label,
    )


def _json_authors(obj: dict[str, Any]) -> str:
    authors = obj.get("authors")
    if not isinstance(authors, list):
        authors = [obj["author"]] if isinstance(obj.get("author"), dict) else []  # JSON Feed 1.0
    names = [plain_text(_str(a.get("name"))) for a in authors if isinstance(a, dict)]
    return clip(", ".join(dict.fromkeys(n for n in names if n)), 200)


# --- shared -----------------------------------------------------------------------------------------


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _absolute(value: Any, base: str) -> str:
    """An absolute http(s) URL, resolving a relative one against `base`; '' when there is none."""
    if not isinstance(value, str) or not value.strip():
        return ""
    try:
        return clean_url(value.strip(), base)
    except ValueError:
        return ""


def _namespaced(guid: str | None, feed_key: str) -> str | None:
    """GUIDs like "1234" are only unique within their feed; URLs and URNs are unique everywhere."""
    if not guid:
        return None
    guid = guid.strip()
    return guid if ":" in guid else f"{feed_key}#{guid}"


def _describe(problem: BaseException, data: bytes) -> str:
    line = getattr(problem, "getLineNumber", None)
    message = getattr(problem, "getMessage", None)
    if callable(line) and callable(message):
        # feedparser puts an XML declaration line in front of a document that has none.
        declared = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml")
        return f"line {max(1, line() - (0 if declared else 1))}: {message()}"
    return " ".join(str(problem).split()) or type(problem).__name__
