"""Story bodies: CommonMark → sanitised HTML, cut into top-level blocks the later stages share.

The body is rendered once and sanitised with nh3: scripts, event handlers and non-http(s)/mailto URLs
cannot survive, whatever their encoding. Each block keeps its tokens so the text stage reads the same
structure without re-parsing, and an excerpt is cut on a block boundary.
"""

from __future__ import annotations

import html as htmllib
import re
import unicodedata
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from ..textutil import clean_url, count_words
from .trackers import drop_tracking_images, tracker_host

# Tags and attributes a story body may keep. Layout, style and anything active is dropped.
_ALLOWED_TAGS = {
    "p",
    "br",
    "a",
    "em",
    "strong",
    "b",
    "i",
    "u",
    "s",
    "del",
    "ins",
    "sub",
    "sup",
    "small",
    "mark",
    "blockquote",
    "q",
    "cite",
    "ul",
    "ol",
    "li",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "code",
    "pre",
    "img",
    "figure",
    "figcaption",
    "abbr",
    "span",
    "bdi",
    "bdo",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "ol": {"start"},
    "bdo": {"dir"},
    "*": {"lang", "dir"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
_RTL_CLASSES = {"R", "AL"}
# Tags that separate words; inline ones (em, a, …) do not: "*emphasis*." is one word.
_BLOCK_TAG = re.compile(r"</?(?:p|br|li|ul|ol|h[1-6]|blockquote|pre|hr|figure|figcaption|img)\b[^>]*>")

_md = MarkdownIt("commonmark")
# markdown-it leaves `[x](javascript:…)` unparsed, so the raw Markdown would show in the email. Parse
# every link; our own URL check (`_absolutize`, then nh3) decides what survives.
_md.validateLink = lambda url: True  # type: ignore[method-assign]


@dataclass(frozen=True)
class Block:
    """One top-level block of the body: its sanitised HTML and the tokens the text stage reads."""

    html: str
    tokens: tuple[Token, ...]
    words: int


def sanitize_html(html: str, base_url: str, image_base: str | None = None) -> str:
    """Keep only inert markup; make every link absolute against `base_url`, every image against
    `image_base` (default `base_url`)."""

    def absolute(tag: str, attr: str, value: str) -> str | None:
        if (tag, attr) == ("a", "href"):
            try:
                return clean_url(value, base_url, schemes=_URL_SCHEMES)
            except ValueError:
                return None
        if (tag, attr) == ("img", "src"):
            # Mail clients and web views block or warn on plain-http images: ask for the https copy.
            try:
                url = clean_url(value, _image_base(value, base_url, image_base), schemes=("http", "https"))
            except ValueError:
                return None
            return "https://" + url[len("http://") :] if url.lower().startswith("http://") else url
        return value

    clean = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        attribute_filter=absolute,
        link_rel="noopener",
        strip_comments=True,
    )
    # An image whose source was refused shows nothing but a broken icon: drop it. Every other image must
    # carry alt text; one without it is decorative to us, which alt="" says (and `check` warns about).
    clean = re.sub(r"<img(?![^>]*\bsrc=)[^>]*>", "", clean)
    # A link whose URL was refused keeps its words, not a dead, underlined anchor.
    clean = re.sub(r"<a(?![^>]*\bhref=)[^>]*>(.*?)</a>", r"\1", clean, flags=re.S)
    return re.sub(r"<img(?![^>]*\balt=)", '<img alt=""', clean)


def _image_base(src: str, base_url: str, image_base: str | None) -> str:
    """What an image's `src` is relative to: a root-relative one (`/images/x.jpg`) stays on the site,
    any other relative one is a file beside the story (`image_base`)."""
    if image_base is None or (src.lstrip().startswith("/") and not src.lstrip().startswith("//")):
        return base_url
    return image_base


def _absolutize(tokens: list[Token], base_url: str, image_base: str) -> None:
    """Resolve link and image URLs in the token stream, so the HTML and the text part agree."""
    for tok in tokens:
        for child in tok.children or ():
            attr = "href" if child.type == "link_open" else "src" if child.type == "image" else None
            if attr and attr in child.attrs:
                base = _image_base(str(child.attrs[attr]), base_url, image_base) if attr == "src" else base_url
                try:
                    child.attrs[attr] = clean_url(str(child.attrs[attr]), base, schemes=_URL_SCHEMES)
                except ValueError:
                    del child.attrs[attr]


def render_blocks(
    body: str, base_url: str, trackers: list[str] | None = None, image_base: str | None = None
) -> list[Block]:
    """The body's top-level blocks, tracking images removed; their hosts are added to `trackers`.

    Links are resolved against `base_url`, images against `image_base` (default `base_url`)."""
    found_hosts: list[str] = []
    tokens = _md.parse(body)
    _absolutize(tokens, base_url, image_base or base_url)
    for tok in tokens:
        # No reader's inbox may report an open: a tracking image goes from the tokens, for the text part too.
        found = [tracker_host(str(c.attrs.get("src", ""))) if c.type == "image" else None for c in tok.children or ()]
        if any(found):
            tok.children = [c for c, host in zip(tok.children or (), found, strict=True) if not host]
            found_hosts += [h for h in found if h]
    for tok in tokens:
        # The email's headline is its h1; a story's own top heading becomes a subheading, not stray text.
        if tok.tag == "h1":
            tok.tag = "h2"
    blocks: list[Block] = []
    start = 0
    for i, tok in enumerate(tokens):
        if tok.level == 0 and tok.nesting <= 0:
            chunk = tokens[start : i + 1]
            start = i + 1
            rendered = _md.renderer.render(chunk, _md.options, {})
            html, hosts = drop_tracking_images(sanitize_html(rendered, base_url, image_base))
            found_hosts += hosts
            text = htmllib.unescape(re.sub(r"<[^>]+>", "", _BLOCK_TAG.sub(" ", html)))
            if not text.strip() and not re.search(r"<(?:img|hr)\b", html):
                continue  # nothing left to see, e.g. a <p> that only held a refused image
            for raw in chunk:
                # The text stage reads raw HTML blocks from the tokens: give it the sanitised markup, so
                # a <script> or <style> body cannot reach the plain-text part either.
                if raw.type == "html_block":
                    raw.content = drop_tracking_images(sanitize_html(raw.content, base_url, image_base))[0]
            # Counted on what readers see (raw HTML blocks included, link targets and tags not).
            words = count_words(text)
            blocks.append(Block(html=html, tokens=tuple(chunk), words=words))
    if trackers is not None:
        trackers += found_hosts
    return blocks


def text_direction(text: str, lang: str) -> str:
    """'rtl' when the language is written right to left or most strong letters are RTL."""
    if lang.split("-")[0].lower() in ("ar", "he", "fa", "ur", "ps", "yi", "dv", "ckb", "sd", "ug"):
        return "rtl"
    text = re.sub(r"<[^>]+>", " ", text)
    rtl = ltr = 0
    for ch in text:
        cls = unicodedata.bidirectional(ch)
        if cls in _RTL_CLASSES:
            rtl += 1
        elif cls == "L":
            ltr += 1
    return "rtl" if rtl > ltr else "ltr"
