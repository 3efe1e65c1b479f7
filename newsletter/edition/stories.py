"""Read stories: Markdown files with YAML front matter → `Story` values.

A story file is UTF-8 (a BOM and CRLF line endings are accepted and normalised), starts with a `---`
line, a YAML mapping, another `---` line, then an optional CommonMark body. Every problem found in a file
is reported, each naming the file and the field, so an editor can fix them all in one pass.
The body is rendered and sanitised by `body.py`.

A story is left out only when it cannot be shown at all: an unreadable or non-UTF-8 file, no front
matter, no title, no or an unparseable publication time, a body over the size or nesting limits.
Everything else is repaired and reported, so one careless field never costs an edition its story: an
image without `alt` gets `alt=""` (still an error for `check`), an unsafe or relative `url` or `image.src`
is dropped with a warning, an unknown `kind` becomes `article`, any other bad optional field falls back
to its default (an error for `check`). Characters that cannot appear in XML/HTML — C0 controls but tab,
LF and CR, C1 controls, non-characters such as U+FFFE — are removed as the file is read (a form feed
becomes a paragraph break), so no story can break the template.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import html as htmllib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import StoryError
from ..textutil import clean_url, one_line, show, slugify, true_or_false
from .body import Block, render_blocks, text_direction
from .cleaning import MAX_BODY_BYTES, MAX_NESTING, clean_characters, nesting
from .cleaning import field_text as _text
from .story_image import LOCAL_IMAGES, Image, ImageFieldError, image_field

REQUIRED_FIELDS = ("title", "published")
OPTIONAL_FIELDS = ("summary", "section", "url", "byline", "kind", "image", "tags", "priority", "lang", "private")
KNOWN_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
KINDS = ("article", "video", "audio", "podcast", "gallery", "analysis", "opinion", "interview", "live")
DEFAULT_SECTION = "News"


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


FRONT_MATTER = re.compile(r"---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|$)", re.S)
_PUBLISHED = re.compile(r"^published:[ \t]*(?:'([^'\n]*)'|\"([^\"\n]*)\"|([^'\"#\n]*?))[ \t]*(?:#.*)?$", re.M)


def read_published(front: str) -> datetime | None:
    """The `published` time of a front matter (its YAML text), or None; for the story index, which must
    not pay for a full parse. A plain `published:` line is read directly, anything else through YAML."""
    found = _PUBLISHED.search(front)
    try:
        if found:
            return _published(next(g for g in found.groups() if g is not None), "")
        meta = yaml.load(front, Loader=_FrontMatterLoader)
        return _published(meta["published"], "") if isinstance(meta, dict) and "published" in meta else None
    except (ValueError, yaml.YAMLError, TypeError, KeyError):
        return None


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
    private: bool = False  # in the email and on its own page, but not in the web archive's index, feed, sitemap

    @property
    def words(self) -> int:
        return sum(b.words for b in self.blocks)


@dataclass(frozen=True)
class Skipped:
    """A story file left out because it cannot be shown; `published` None when that is unknown too."""

    path: str
    errors: tuple[StoryError, ...]
    published: datetime | None = None


@dataclass
class LoadResult:
    stories: list[Story] = field(default_factory=list)  # every story that can be shown, repaired if need be
    errors: list[StoryError] = field(default_factory=list)  # every error, left-out files and repairs alike
    warnings: list[StoryError] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # the files left out


def find_story_files(stories_dir: Path) -> list[Path]:
    """All `*.md` files under `stories_dir`, in a stable order; hidden files and folders skipped."""
    if not stories_dir.is_dir():
        return []
    return sorted(
        p
        for p in stories_dir.rglob("*.md")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(stories_dir).parts)
    )


def load_stories(
    stories_dir: Path,
    root: Path,
    base_url: str,
    paths: Sequence[Path] | None = None,
    on_file: Callable[[], None] | None = None,
) -> LoadResult:
    """Read every story under `stories_dir` (or only `paths`); bad files land in `errors`, never half in
    `stories`. `on_file` is called after each file (a progress bar)."""
    result = LoadResult()
    for path in find_story_files(stories_dir) if paths is None else paths:
        found: dict[str, Any] = {}
        story, errors, warnings = read_story(path, root, stories_dir, base_url, found)
        result.errors.extend(errors)
        result.warnings.extend(warnings)
        if story is not None:
            result.stories.append(story)
        elif errors:
            result.skipped.append(Skipped(errors[0].path, tuple(errors), found.get("published")))
        if on_file is not None:
            on_file()
    result.warnings.extend(_duplicate_slug_warnings(result.stories))
    return result


def read_story(
    path: Path, root: Path, stories_dir: Path, base_url: str, found: dict[str, Any] | None = None
) -> tuple[Story | None, list[StoryError], list[StoryError]]:
    shown = _shown_path(path, root)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [StoryError(shown, None, f"cannot read file ({exc.strerror})")], []
    story_id = path.relative_to(stories_dir).with_suffix("").as_posix()
    return parse_story(raw, shown, story_id, base_url, found)


def parse_story(
    raw: bytes, shown: str, story_id: str, base_url: str, found: dict[str, Any] | None = None
) -> tuple[Story | None, list[StoryError], list[StoryError]]:
    """Parse one story from its bytes. Returns (story or None, errors, warnings).

    The story is None only when it cannot be shown (see the module docstring); a repaired story comes
    back with its errors. `found["published"]` is set when the publication time could be read, even for
    a story left out (so a caller can tell which edition it belonged to).
    """
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
    text = clean_characters(text)

    match = FRONT_MATTER.match(text)
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
    if isinstance(meta.get("published"), str | int | float) and found is not None:
        with contextlib.suppress(ValueError):
            found["published"] = _published(meta["published"], base_url)
    size = len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        return fail(None, f"the body is {size / 1e6:.1f} MB, more than a story may have ({MAX_BODY_BYTES / 1e6:g} MB)")
    depth = nesting(body)
    if depth > MAX_NESTING:
        return fail(None, f"the body's HTML nests {depth} levels deep (at most {MAX_NESTING})")

    for key in meta:
        if not isinstance(key, str) or key not in KNOWN_FIELDS:
            close = difflib.get_close_matches(str(key), KNOWN_FIELDS, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            warnings.append(StoryError(shown, str(key), f"unknown field, ignored{hint}"))

    values: dict[str, Any] = {}
    repairs: list[StoryError] = []  # errors for `check`; the story is shown all the same
    for name in KNOWN_FIELDS:
        if name not in meta or meta[name] is None:
            if name in REQUIRED_FIELDS:
                errors.append(StoryError(shown, name, "required field is missing"))
            continue
        try:
            values[name] = _CHECKERS[name](meta[name], base_url)
        except ValueError as exc:
            if name in REQUIRED_FIELDS:
                errors.append(StoryError(shown, name, str(exc)))
            elif name == "url":
                warnings.append(StoryError(shown, name, f"{exc}; link dropped"))
            elif name == "kind":
                warnings.append(StoryError(shown, name, f"{exc}; shown as an article"))
            elif name == "private":  # the editor meant something: keep the story out of the lists
                values[name] = True
                repairs.append(StoryError(shown, name, f"{exc}; kept private"))
            else:
                repairs.append(StoryError(shown, name, str(exc)))
        except ImageFieldError as exc:
            if exc.image is not None:  # no alt: shown with alt="", the editor still has to describe it
                values["image"] = exc.image
                repairs.append(StoryError(shown, f"image.{exc.field}", exc.message))
            elif exc.field == "src":
                warnings.append(StoryError(shown, "image.src", f"{exc.message}; image dropped"))
            else:
                repairs.append(StoryError(shown, f"image.{exc.field}", exc.message))
    if errors:
        return None, errors + repairs, warnings
    errors = repairs

    page_url = values.get("url") or base_url + "/"
    trackers: list[str] = []
    folder = story_id.rpartition("/")[0]
    image_base = LOCAL_IMAGES + (folder + "/" if folder else "")  # relative image paths: the story's folder
    blocks = tuple(render_blocks(body, page_url, trackers, image_base=image_base))
    for host in dict.fromkeys(trackers):
        warnings.append(StoryError(shown, None, f"tracking image from {host} removed from the body"))
    probe = " ".join([values["title"], values.get("summary", "")] + [b.html for b in blocks[:3]])
    direction = text_direction(probe, values.get("lang", ""))
    for block in blocks:
        for img in re.findall(r"<img\b[^>]*>", block.html):
            if re.search(r'\balt=""', img):
                src = htmllib.unescape(re.search(r'\bsrc="([^"]*)"', img).group(1))  # type: ignore[union-attr]
                src = src.removeprefix(LOCAL_IMAGES)
                warnings.append(
                    StoryError(shown, None, f"image {src} in the body has no alt text (write ![what it shows]({src}))")
                )
    kind = values.get("kind", "article")
    if kind not in KINDS:
        warnings.append(
            StoryError(shown, "kind", f"unknown kind {kind!r}, shown as an article (known: {', '.join(KINDS)})")
        )
        kind = "article"
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
        private=values.get("private", False),
    )
    return story, errors, warnings


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    return lines[line][column : column + 1] if 0 <= line < len(lines) else ""


# --- field checks: each returns the clean value or raises ValueError with the reason ---------------


def _title(value: Any, _base: str) -> str:
    text = _text(value, max_len=300)
    if not text:
        raise ValueError("must not be empty")
    return text


def _published(value: Any, _base: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not an ISO 8601 datetime: got {show(value)}")
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" and text else text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 datetime: {show(text)}") from None
    if not re.search(r"\d[Tt ]\d", text):
        raise ValueError(f"needs a date and a time with an offset, e.g. 2016-12-30T05:30:00+01:00; got {show(text)}")
    if moment.tzinfo is None:
        raise ValueError(f"has no UTC offset: {show(text)} (write e.g. {text[:40]}+01:00)")
    # Editions are computed a day either side in any time zone: keep well inside datetime's range.
    if not 1900 <= moment.year <= 9000:
        raise ValueError(f"year {moment.year} is out of range (1900-9000): {show(text)}")
    return moment


def _url(value: Any, _base: str) -> str:
    return clean_url(value)


def _tags(value: Any, _base: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a list of words, e.g. [syria, russia]")
    return tuple(t for t in (_text(i, max_len=80) for i in items) if t)


def _priority(value: Any, _base: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number (higher comes first), got {show(value)}")
    if not -1000 <= value <= 1000:
        raise ValueError(f"must be between -1000 and 1000, got {value}")
    return value


def _kind(value: Any, _base: str) -> str:
    text = _text(value, max_len=40).lower()
    if not re.fullmatch(r"[a-z][a-z0-9-]*", text):
        raise ValueError(f"must be one word such as {', '.join(KINDS[:3])}; got {show(value)}")
    return text


def _lang(value: Any, _base: str) -> str:
    text = _text(value, max_len=35)
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", text):
        raise ValueError(f"must be a language tag such as en, ar or zh-Hant; got {show(value)}")
    return text


_CHECKERS = {
    "title": _title,
    "published": _published,
    "summary": lambda v, b: _text(v, max_len=1000),
    "section": lambda v, b: _text(v, max_len=80) or DEFAULT_SECTION,
    "url": _url,
    "byline": lambda v, b: _text(v, max_len=200),
    "kind": _kind,
    "image": image_field,
    "tags": _tags,
    "priority": _priority,
    "lang": _lang,
    "private": lambda v, b: true_or_false(v),
}


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
