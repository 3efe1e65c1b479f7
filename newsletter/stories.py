"""Read stories: Markdown files with YAML front matter → `Story` values.

A story file is UTF-8 (a BOM and CRLF line endings are accepted and normalised), starts with a `---`
line, a YAML mapping, another `---` line, then an optional CommonMark body. Every problem found in a file
is reported, each naming the file and the field, so an editor can fix them all in one pass.

The body is rendered once here and sanitised with nh3: scripts, event handlers and non-http(s)/mailto
URLs cannot survive, whatever their encoding. The result is split into top-level blocks so later stages
can cut an excerpt on a paragraph boundary without re-parsing.
"""

from __future__ import annotations

import difflib
import hashlib
import html as htmllib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import nh3
import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from .errors import StoryError

REQUIRED_FIELDS = ("title", "published")
OPTIONAL_FIELDS = ("summary", "section", "url", "byline", "kind", "image", "tags", "priority", "lang")
KNOWN_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
IMAGE_FIELDS = ("src", "alt", "credit")
KINDS = ("article", "video", "audio", "podcast", "gallery", "analysis", "opinion", "interview", "live")
DEFAULT_SECTION = "News"

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
# C0, DEL and C1 controls, and the Unicode line/paragraph separators: all line breaks or worse in a
# one-line value. No-break and ideographic spaces are text (French "Syrie\u202f?", CJK), not layout.
# Bidi overrides and embeddings (U+202A-U+202E) too: they can make a title display reversed; the
# story's direction is set with `dir`, which needs none of them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")
# A host name (any script, for IDNs), an IPv4 or an IPv6 address (urlsplit drops the brackets).
_HOST = re.compile(r"[^\s%/?#@:\[\]<>\"'`\\]+|[0-9a-fA-F.]*:[0-9a-fA-F:.]*")
# Scripts written without spaces between words: each character counts as a word, about what a reader
# gets through in the time of one English word, so excerpts of Chinese or Japanese stories get cut too.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_RTL_CLASSES = {"R", "AL"}
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
# Tags that separate words; inline ones (em, a, …) do not: "*emphasis*." is one word.
_BLOCK_TAG = re.compile(r"</?(?:p|br|li|ul|ol|h[1-6]|blockquote|pre|hr|figure|figcaption|img)\b[^>]*>")


class _DuplicateField(yaml.YAMLError):
    def __init__(self, key: str, first: int, again: int) -> None:
        self.key, self.first, self.again = key, first, again


# libyaml parses front matter about ten times faster than the pure-Python parser; same results.
_SafeLoader = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class _FrontMatterLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """SafeLoader for front matter: timestamps stay text (we parse them and their offsets ourselves);
    only true/false are booleans (YAML 1.2), so `title: Yes` or `lang: no` (Norwegian) stay text; a field
    given twice is an error rather than the last one silently winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                if key in seen:
                    raise _DuplicateField(str(key), seen[key], key_node.start_mark.line)
                seen[key] = key_node.start_mark.line
            except TypeError:
                continue  # unhashable: SafeLoader reports it below
        return super().construct_mapping(node, deep=deep)


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_FrontMatterLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_md = MarkdownIt("commonmark")
# markdown-it leaves `[x](javascript:…)` unparsed, so the raw Markdown would show in the email. Parse
# every link; our own URL check (`_absolutize`, then nh3) decides what survives.
_md.validateLink = lambda url: True  # type: ignore[method-assign]


@dataclass(frozen=True)
class Image:
    src: str
    alt: str
    credit: str = ""


@dataclass(frozen=True)
class Block:
    """One top-level block of the body: its sanitised HTML and the tokens the text stage reads."""

    html: str
    tokens: tuple[Token, ...]
    words: int


@dataclass(frozen=True)
class Story:
    id: str  # path under stories/ without the extension: unique, stable, used in manifests
    slug: str  # file stem; may repeat across folders (anchors are made unique per edition)
    path: str  # as shown to the user, relative to the newsletter root
    title: str
    published: datetime  # timezone-aware
    summary: str = ""
    section: str = DEFAULT_SECTION
    url: str = ""
    byline: str = ""
    kind: str = "article"
    image: Image | None = None
    tags: tuple[str, ...] = ()
    priority: int = 0
    lang: str = ""
    dir: str = "ltr"
    blocks: tuple[Block, ...] = ()
    content_hash: str = ""

    @property
    def words(self) -> int:
        return sum(b.words for b in self.blocks)


@dataclass
class LoadResult:
    stories: list[Story] = field(default_factory=list)
    errors: list[StoryError] = field(default_factory=list)
    warnings: list[StoryError] = field(default_factory=list)


def find_story_files(stories_dir: Path) -> list[Path]:
    """All `*.md` files under `stories_dir`, in a stable order; hidden files and folders skipped."""
    if not stories_dir.is_dir():
        return []
    return sorted(
        p
        for p in stories_dir.rglob("*.md")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(stories_dir).parts)
    )


def load_stories(stories_dir: Path, root: Path, base_url: str) -> LoadResult:
    """Read every story under `stories_dir`; bad files land in `errors`, never half in `stories`."""
    result = LoadResult()
    for path in find_story_files(stories_dir):
        story, errors, warnings = read_story(path, root, stories_dir, base_url)
        result.errors.extend(errors)
        result.warnings.extend(warnings)
        if story is not None:
            result.stories.append(story)
    result.warnings.extend(_duplicate_slug_warnings(result.stories))
    return result


def read_story(
    path: Path, root: Path, stories_dir: Path, base_url: str
) -> tuple[Story | None, list[StoryError], list[StoryError]]:
    shown = _shown_path(path, root)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [StoryError(shown, None, f"cannot read file ({exc.strerror})")], []
    story_id = path.relative_to(stories_dir).with_suffix("").as_posix()
    return parse_story(raw, shown, story_id, base_url)


def parse_story(
    raw: bytes, shown: str, story_id: str, base_url: str
) -> tuple[Story | None, list[StoryError], list[StoryError]]:
    """Parse one story from its bytes. Returns (story or None, errors, warnings)."""
    errors: list[StoryError] = []
    warnings: list[StoryError] = []

    def fail(field_name: str | None, message: str) -> tuple[None, list[StoryError], list[StoryError]]:
        return None, [StoryError(shown, field_name, message)], warnings

    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return fail(None, f"not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); save the file as UTF-8")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        return fail(None, "contains NUL bytes; not a text file")

    match = re.match(r"---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|$)", text, re.S)
    if not match:
        if text.startswith("---"):
            return fail(None, "front matter is not closed (add a '---' line after the YAML)")
        return fail(None, "no front matter (the file must start with a '---' line, then YAML, then '---')")
    # Lines in the YAML count from the line after the opening '---', hence the +2 below.
    try:
        meta = yaml.load(match.group(1) or "", Loader=_FrontMatterLoader)
    except _DuplicateField as exc:
        return fail(exc.key, f"given twice (lines {exc.first + 2} and {exc.again + 2}); keep one")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" on line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        # The usual causes, worded the same whichever YAML parser (libyaml or Python) is installed.
        if problem.startswith("mapping values are not allowed"):
            problem = "a value contains ': ' (put quotes around it)"
        elif mark is not None and _char_at(match.group(1) or "", mark.line, mark.column) == "\t":
            problem = "a tab where YAML needs spaces"
        # An unclosed quote or bracket is only noticed far below; say where it started.
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and mark is not None and start.line != mark.line:
            problem += f" ({context} that starts on line {start.line + 2})"
        return fail(None, f"front matter is not valid YAML{where}: {one_line(problem)}")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        return fail(None, "front matter must be a YAML mapping of field: value")
    body = text[match.end() :]

    for key in meta:
        if not isinstance(key, str) or key not in KNOWN_FIELDS:
            close = difflib.get_close_matches(str(key), KNOWN_FIELDS, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            warnings.append(StoryError(shown, str(key), f"unknown field, ignored{hint}"))

    values: dict[str, Any] = {}
    for name in KNOWN_FIELDS:
        if name not in meta or meta[name] is None:
            if name in REQUIRED_FIELDS:
                errors.append(StoryError(shown, name, "required field is missing"))
            continue
        try:
            values[name] = _CHECKERS[name](meta[name], base_url)
        except ValueError as exc:
            errors.append(StoryError(shown, name, str(exc)))
        except _ImageFieldError as exc:
            errors.append(StoryError(shown, f"image.{exc.field}", exc.message))
    if errors:
        return None, errors, warnings

    page_url = values.get("url") or base_url + "/"
    blocks = tuple(_render_blocks(body, page_url))
    probe = " ".join([values["title"], values.get("summary", "")] + [b.html for b in blocks[:3]])
    direction = _direction(probe, values.get("lang", ""))
    for block in blocks:
        for img in re.findall(r"<img\b[^>]*>", block.html):
            if re.search(r'\balt=""', img):
                src = htmllib.unescape(re.search(r'\bsrc="([^"]*)"', img).group(1))  # type: ignore[union-attr]
                warnings.append(
                    StoryError(shown, None, f"image {src} in the body has no alt text (write ![what it shows]({src}))")
                )
    kind = values.get("kind", "article")
    if kind not in KINDS:
        warnings.append(StoryError(shown, "kind", f"unusual kind {kind!r} (usual: {', '.join(KINDS)})"))
    story = Story(
        id=story_id,
        slug=slugify(story_id.rsplit("/", 1)[-1]),
        path=shown,
        title=values["title"],
        published=values["published"],
        summary=values.get("summary", ""),
        section=values.get("section", DEFAULT_SECTION),
        url=values.get("url", ""),
        byline=values.get("byline", ""),
        kind=kind,
        image=values.get("image"),
        tags=values.get("tags", ()),
        priority=values.get("priority", 0),
        lang=values.get("lang", ""),
        dir=direction,
        blocks=blocks,
        content_hash=hashlib.sha256(raw).hexdigest(),
    )
    return story, errors, warnings


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    return lines[line][column : column + 1] if 0 <= line < len(lines) else ""


# --- field checks: each returns the clean value or raises ValueError with the reason ---------------


class _ImageFieldError(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        self.message = message


def one_line(value: str) -> str:
    """Flatten line breaks, tabs and other control characters, then runs of spaces, to single spaces:
    headers and headings are one line. No-break spaces and other non-ASCII spaces are kept as written."""
    return re.sub(r" {2,}", " ", _CONTROL.sub(" ", value)).strip(" ")


def slugify(stem: str) -> str:
    """A file stem made fit for an HTML id and a URL fragment: letters of any script, digits, '-', '_'."""
    return re.sub(r"[^\w-]+", "-", stem).strip("-") or "story"


def _show(value: Any) -> str:
    """A short, safe rendering of a front matter value for an error message."""
    if isinstance(value, str | int | float | bool):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return f"a {type(value).__name__}"


def _text(value: Any, *, max_len: int = 2000) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be text, got {type(value).__name__}")
    text = one_line(str(value))
    if len(text) > max_len:
        raise ValueError(f"too long ({len(text)} characters, at most {max_len})")
    return text


def _title(value: Any, _base: str) -> str:
    text = _text(value, max_len=300)
    if not text:
        raise ValueError("must not be empty")
    return text


def _published(value: Any, _base: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not an ISO 8601 datetime: got {_show(value)}")
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" and text else text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 datetime: {_show(text)}") from None
    if not re.search(r"\d[Tt ]\d", text):
        raise ValueError(f"needs a date and a time with an offset, e.g. 2016-12-30T05:30:00+01:00; got {_show(text)}")
    if moment.tzinfo is None:
        raise ValueError(f"has no UTC offset: {_show(text)} (write e.g. {text[:40]}+01:00)")
    # Editions are computed a day either side in any time zone: keep well inside datetime's range.
    if not 1900 <= moment.year <= 9000:
        raise ValueError(f"year {moment.year} is out of range (1900-9000): {_show(text)}")
    return moment


def clean_url(value: str, base: str | None = None, *, schemes: Iterable[str] = ("http", "https")) -> str:
    """An absolute URL with an allowed scheme, or ValueError.

    Browsers ignore control characters and whitespace inside a scheme ("java\\tscript:"), so they are
    removed before the scheme is judged; relative URLs are resolved against `base` when one is given.
    """
    if not isinstance(value, str):
        raise ValueError(f"must be a URL, got {type(value).__name__}")
    # As the URL standard does: strip leading/trailing controls and spaces, drop tabs and newlines
    # anywhere. Any control or space left is percent-encoded, so it can never hide a scheme.
    url = re.sub(r"[\t\n\r]+", "", value.strip(_C0_AND_SPACE))
    url = re.sub(r"[\x00-\x20\x7f]", lambda m: f"%{ord(m.group()):02X}", url)
    if base is not None:
        url = urljoin(base, url)
    parts = urlsplit(url)
    shown = _show(one_line(value))
    if parts.scheme.lower() not in set(schemes):
        raise ValueError(f"must be an absolute {'/'.join(schemes)} URL, got {shown}")
    if parts.scheme.lower() != "mailto" and not parts.netloc:
        raise ValueError(f"has no host: {shown}")
    if parts.scheme.lower() != "mailto" and not _HOST.fullmatch(parts.hostname or ""):
        raise ValueError(f"has an invalid host: {shown}")
    return url


def _url(value: Any, _base: str) -> str:
    return clean_url(value)


def _image(value: Any, base: str) -> Image:
    if isinstance(value, str):
        raise _ImageFieldError("alt", "describe the photo: write image as a mapping with src, alt and credit")
    if not isinstance(value, dict):
        raise ValueError("must be a mapping with src, alt and credit")
    unknown = sorted(set(map(str, value)) - set(IMAGE_FIELDS))
    if unknown:
        raise _ImageFieldError(unknown[0], f"unknown image field (image takes {', '.join(IMAGE_FIELDS)})")
    if not value.get("src"):
        raise _ImageFieldError("src", "required when there is an image")
    try:
        src = clean_url(value["src"], base + "/", schemes=("https",))
    except ValueError as exc:
        raise _ImageFieldError("src", str(exc)) from None
    try:
        alt = _text(value.get("alt") or "", max_len=500)
    except ValueError as exc:
        raise _ImageFieldError("alt", str(exc)) from None
    if not alt:
        raise _ImageFieldError("alt", "missing: describe the photo for readers who cannot see it")
    try:
        return Image(src=src, alt=alt, credit=_text(value.get("credit") or "", max_len=300))
    except ValueError as exc:
        raise _ImageFieldError("credit", str(exc)) from None


def _tags(value: Any, _base: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a list of words, e.g. [syria, russia]")
    return tuple(t for t in (_text(i, max_len=80) for i in items) if t)


def _priority(value: Any, _base: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number (higher comes first), got {_show(value)}")
    if not -1000 <= value <= 1000:
        raise ValueError(f"must be between -1000 and 1000, got {value}")
    return value


def _kind(value: Any, _base: str) -> str:
    text = _text(value, max_len=40).lower()
    if not re.fullmatch(r"[a-z][a-z0-9-]*", text):
        raise ValueError(f"must be one word such as {', '.join(KINDS[:3])}; got {_show(value)}")
    return text


def _lang(value: Any, _base: str) -> str:
    text = _text(value, max_len=35)
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", text):
        raise ValueError(f"must be a language tag such as en, ar or zh-Hant; got {_show(value)}")
    return text


_CHECKERS = {
    "title": _title,
    "published": _published,
    "summary": lambda v, b: _text(v, max_len=1000),
    "section": lambda v, b: _text(v, max_len=80) or DEFAULT_SECTION,
    "url": _url,
    "byline": lambda v, b: _text(v, max_len=200),
    "kind": _kind,
    "image": _image,
    "tags": _tags,
    "priority": _priority,
    "lang": _lang,
}

# --- body -----------------------------------------------------------------------------------------


def sanitize_html(html: str, base_url: str) -> str:
    """Keep only inert markup; make every link and image absolute against `base_url`."""

    def absolute(tag: str, attr: str, value: str) -> str | None:
        if (tag, attr) == ("a", "href"):
            try:
                return clean_url(value, base_url, schemes=_URL_SCHEMES)
            except ValueError:
                return None
        if (tag, attr) == ("img", "src"):
            # Mail clients and web views block or warn on plain-http images: ask for the https copy.
            try:
                url = clean_url(value, base_url, schemes=("http", "https"))
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


def count_words(text: str) -> int:
    """Words in plain text: space-separated runs, and each Chinese or Japanese character on its own."""
    return sum(len(_CJK.findall(w)) + len(_CJK.sub(" ", w).split()) for w in text.split())


def _absolutize(tokens: list[Token], base_url: str) -> None:
    """Resolve link and image URLs in the token stream, so the HTML and the text part agree."""
    for tok in tokens:
        for child in tok.children or ():
            attr = "href" if child.type == "link_open" else "src" if child.type == "image" else None
            if attr and attr in child.attrs:
                try:
                    child.attrs[attr] = clean_url(str(child.attrs[attr]), base_url, schemes=_URL_SCHEMES)
                except ValueError:
                    del child.attrs[attr]


def _render_blocks(body: str, base_url: str) -> list[Block]:
    tokens = _md.parse(body)
    _absolutize(tokens, base_url)
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
            html = sanitize_html(_md.renderer.render(chunk, _md.options, {}), base_url)
            text = htmllib.unescape(re.sub(r"<[^>]+>", "", _BLOCK_TAG.sub(" ", html)))
            if not text.strip() and not re.search(r"<(?:img|hr)\b", html):
                continue  # nothing left to see, e.g. a <p> that only held a refused image
            for raw in chunk:
                # The text stage reads raw HTML blocks from the tokens: give it the sanitised markup, so
                # a <script> or <style> body cannot reach the plain-text part either.
                if raw.type == "html_block":
                    raw.content = sanitize_html(raw.content, base_url)
            # Counted on what readers see (raw HTML blocks included, link targets and tags not).
            words = count_words(text)
            blocks.append(Block(html=html, tokens=tuple(chunk), words=words))
    return blocks


def _direction(text: str, lang: str) -> str:
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


def _duplicate_slug_warnings(stories: Sequence[Story]) -> list[StoryError]:
    by_slug: dict[str, list[Story]] = {}
    for s in stories:
        by_slug.setdefault(s.slug, []).append(s)
    out = []
    for slug, group in by_slug.items():
        if len(group) > 1:
            others = ", ".join(s.path for s in group[1:])
            out.append(
                StoryError(
                    group[0].path, None, f"slug '{slug}' is also used by {others}; both appear, with distinct anchors"
                )
            )
    return out


def _shown_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)
