"""HTML from feeds and pages → clean Markdown bodies and plain one-line texts.

Bodies go through the story sanitizer first (`newsletter.edition.sanitize_html`: only inert tags, every
link and image made absolute against the entry/page URL, anything else dropped), then markdownify turns
what is left into Markdown. The story loader sanitizes the rendered Markdown again, like any story.
"""

from __future__ import annotations

import html as htmllib
import re
import unicodedata
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import lxml.html
import nh3
from lxml import etree
from markdownify import MarkdownConverter

from ..edition import drop_tracking_images, sanitize_html, tracker_host
from ..textutil import one_line

# Containers the story sanitizer does not keep. Left as they are, their texts would run together
# ("<div>One</div><div>Two</div>" → "OneTwo"), so they become paragraphs before sanitizing.
_BLOCKS_AS_PARAGRAPHS = {
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "aside",
    "center",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "caption",
    "address",
    "details",
    "summary",
}
_DROP_WITH_CONTENT = ("script", "style", "noscript", "template", "iframe", "object", "embed", "form", "button", "svg")
_NEEDS_NORMALISING = re.compile(
    r"<(?:" + "|".join(sorted(_BLOCKS_AS_PARAGRAPHS | set(_DROP_WITH_CONTENT) | {"h1", "td", "th", "img"})) + r")\b",
    re.I,
)
_LANG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_SCRIPTS = re.compile(r"<(script|style|noscript|template)\b.*?(?:</\1\s*>|$)", re.I | re.S)
# HTML elements (those that turn up in titles and summaries): only these count as tags in a plain title.
_HTML_TAG = re.compile(
    r"</?(a|abbr|acronym|address|b|bdi|bdo|big|blink|blockquote|br|button|center|cite|code|del|dfn|div|em|embed|"
    r"font|form|h[1-6]|hr|i|iframe|img|input|ins|kbd|label|li|mark|marquee|object|ol|p|pre|q|s|samp|small|span|"
    r"strike|strong|sub|sup|svg|table|tbody|td|th|thead|time|tr|tt|u|ul|var|video|wbr)"
    r"\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*/?>",
    re.I,
)
_BREAKING = {"br", "p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "tr", "hr", "blockquote"}
_BLOCK_BOUNDARY = re.compile(r"<(?=/?(?:p|br|div|li|h[1-6]|tr|td|th|blockquote|section|article|dd|dt)\b)", re.I)


class _Converter(MarkdownConverter):
    """markdownify with URLs that survive Markdown: brackets and spaces in them are escaped."""

    def convert_img(self, el: Any, text: str, parent_tags: set[str]) -> str:
        if not el.attrs.get("src"):
            return ""  # its URL was not absolute http(s), so the sanitizer removed it
        el.attrs["src"] = _md_url(el.attrs["src"])
        el.attrs["alt"] = re.sub(r"([\[\]\\])", r"\\\1", el.attrs.get("alt") or "")
        base: Any = super()  # markdownify's type stub declares convert() only
        return str(base.convert_img(el, text, parent_tags))

    def convert_a(self, el: Any, text: str, parent_tags: set[str]) -> str:
        if el.get("href"):
            el["href"] = _md_url(el["href"])
        else:
            return text  # a link whose target was dropped is just its words
        base: Any = super()
        return str(base.convert_a(el, text, parent_tags))


_converter = _Converter(
    heading_style="ATX",
    bullets="-",
    # Literal "<", "#", "1." … in the text stay text: a headline about "<script>" or a paragraph that
    # starts with "2016. The year…" must not turn into markup or a list.
    escape_misc=True,
    strong_em_symbol="*",
)


def html_to_markdown(html: str, base_url: str, trackers: list[str] | None = None) -> str:
    """A clean Markdown body from untrusted HTML; links and images absolute against `base_url` ("" = none).

    Tracking images are left out; their hosts are added to `trackers` when given (for the warning)."""
    if not html or not html.strip():
        return ""
    found: list[str] = []
    clean, hosts = drop_tracking_images(sanitize_html(_normalise(html, found), base_url))
    if trackers is not None:
        trackers += found + hosts
    markdown = _converter.convert(clean)
    # markdownify leaves runs of blank lines and trailing spaces where blocks were dropped.
    markdown = re.sub(r"[ \t]+\n", "\n", markdown)
    markdown = re.sub(r"\n{3,}", "\n\n", markdown).strip()
    return markdown + "\n" if markdown else ""


def text_to_markdown(text: str) -> str:
    """Plain text (JSON Feed `content_text`, Atom type="text") as Markdown paragraphs, escaped."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n"))]
    html = "".join(f"<p>{htmllib.escape(p)}</p>" for p in paragraphs if p)
    return html_to_markdown(html, "")


def _normalise(html: str, trackers: list[str]) -> str:
    """Give the sanitizer a fragment whose block structure it keeps; drop active and invisible parts
    (tracking images among them: their hosts go to `trackers`)."""
    if not _NEEDS_NORMALISING.search(html):
        return html  # most feed bodies are plain paragraphs and lists: no second parse for them
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return html
    for el in list(root.iter(*_DROP_WITH_CONTENT)):
        el.drop_tree()
    # The wrapper div itself stays: the sanitizer drops its tag and keeps what is inside.
    for el in list(root.iterdescendants()):
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag == "h1":
            el.tag = "h2"  # the story's title is the only h1
        elif tag in _BLOCKS_AS_PARAGRAPHS:
            el.tag = "p"
        elif tag in ("td", "th"):
            el.tail = " " + (el.tail or "")
        elif tag == "img" and (host := _tracking_image(el)):
            trackers.append(host)
            el.drop_tree()
        elif tag == "img" and el.getparent() is root:
            # An image between blocks gets its own paragraph; left bare, Markdown would glue it to the
            # next paragraph's first line.
            wrapper = etree.Element("p")
            wrapper.tail, el.tail = el.tail, None
            el.addprevious(wrapper)
            wrapper.append(el)
    return str(lxml.html.tostring(root, encoding="unicode"))


def _tracking_image(el: Any) -> str | None:
    """The host of a tracking image (see `newsletter.edition.trackers`), hidden or sized by CSS ones included."""
    style = re.sub(r"\s+", "", (el.get("style") or "").lower())
    sizes = re.findall(r"(?:^|;)(width|height):(\d+)px", style)
    width = next((v for k, v in sizes if k == "width"), el.get("width"))
    height = next((v for k, v in sizes if k == "height"), el.get("height"))
    if "display:none" in style or "visibility:hidden" in style:
        width = "0"
    return tracker_host(el.get("src") or "", width, height)


def _md_url(url: str) -> str:
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def plain_text(html: str | None) -> str:
    """One line of text from an HTML or text snippet: tags and script contents gone, entities decoded."""
    if not html:
        return ""
    if "<" in html:
        html = nh3.clean(_BLOCK_BOUNDARY.sub(" <", html), tags=set(), strip_comments=True)
    elif "&" not in html:
        return one_line(html)
    return one_line(htmllib.unescape(html))


def title_text(text: str | None) -> str:
    """One line of text from a title that should be plain but often carries HTML.

    Feeds put markup and even scripts in titles ("&lt;b&gt;Markets&lt;/b&gt; rally"). Scripts and styles
    go with their content, HTML tags are dropped, entities decoded; angle brackets that are not HTML
    ("ships <faster> builds") stay, as the words they are.
    """
    if not text:
        return ""
    # Twice: a title escaped twice ("&amp;lt;b&amp;gt;") carries its tags one decoding further down.
    for _ in range(2):
        text = _SCRIPTS.sub(" ", text)
        text = _HTML_TAG.sub(lambda m: " " if m.group(1).lower() in _BREAKING else "", text)
        text = htmllib.unescape(text)
    return one_line(text)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


def slugify(text: str, *, max_len: int = 80) -> str:
    """ASCII file-name slug: 'Café crème: 3 façons' → 'cafe-creme-3-facons'; '' when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len]
        slug = slug.rsplit("-", 1)[0] if "-" in slug else slug  # end on a whole word
    return slug.strip("-")


def language(value: Any) -> str:
    """A language tag the story format accepts ('en-GB', 'ar'), or ''."""
    if not isinstance(value, str):
        return ""
    tag = value.strip().replace("_", "-")
    return tag if _LANG.fullmatch(tag) and len(tag) <= 35 else ""


def parse_datetime(text: str | None) -> datetime | None:
    """An aware datetime from RFC 3339 / ISO 8601 or RFC 822 text, keeping its offset; None if not one."""
    if not text or not isinstance(text, str):
        return None
    text = text.strip()
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        return None
    return moment


def from_struct(parsed: Any, raw: str | None) -> datetime | None:
    """feedparser's UTC struct_time as an aware datetime, with the offset the feed wrote when it is readable.

    feedparser normalises every date to UTC; the original text usually says "+0100", which keeps the
    file closer to what the newsroom published, so it is used when it names the same instant.
    """
    if not parsed:
        return None
    try:
        utc = datetime(*parsed[:6]).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None
    original = parse_datetime(raw)
    if original is not None and original == utc:
        return original
    return utc
