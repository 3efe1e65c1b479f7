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
from ..textutil import one_line, slugify
from .body import Block, render_blocks, text_direction
from .cleaning import MAX_BODY_BYTES, MAX_NESTING, clean_characters, nesting
from .fields import (
    CHECKERS,
    DEFAULT_SECTION,
    KINDS,
    KNOWN_FIELDS,
    REQUIRED_FIELDS,
    check_published,
)
from .story_image import LOCAL_IMAGES, BodyPhoto, Image, ImageFieldError


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
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise _DuplicateField(str(key), seen[key], key_node.start_mark.line)
                seen[key] = key_node.start_mark.line
            except TypeError:
                continue  # unhashable: SafeLoader reports it below
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


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
            return check_published(next(g for g in found.groups() if g is not None), "")
        meta = yaml.load(front, Loader=_FrontMatterLoader)
        return check_published(meta["published"], "") if isinstance(meta, dict) and "published" in meta else None
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
    body_photos: tuple[BodyPhoto, ...] = ()  # the body's published photos (photos.attach_images sets them)

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
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        meta, body = _front_matter(raw)
        if isinstance(meta.get("published"), str | int | float) and found is not None:
            with contextlib.suppress(ValueError):
                found["published"] = check_published(meta["published"], base_url)
        _check_body_limits(body)
    except _Unreadable as exc:
        return None, [StoryError(shown, exc.field, exc.message)], []
    warnings = [_unknown_field(shown, key) for key in meta if not isinstance(key, str) or key not in KNOWN_FIELDS]
    values, errors, repairs = _check_fields(meta, shown, base_url, warnings)
    if errors:
        return None, errors + repairs, warnings
    return _make_story(values, body, raw, shown, story_id, base_url, warnings), repairs, warnings


class _Unreadable(Exception):
    """The story cannot be shown at all: one error, naming the field when there is one."""

    def __init__(self, message: str, field_name: str | None = None) -> None:
        self.message, self.field = message, field_name


def _front_matter(raw: bytes) -> tuple[dict[Any, Any], str]:
    """(front matter, body) of a story file's bytes, characters cleaned; `_Unreadable` when there is none."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _Unreadable(f"not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); save the file as UTF-8") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise _Unreadable("contains NUL bytes; not a text file")
    text = clean_characters(text)
    match = FRONT_MATTER.match(text)
    if not match:
        if text.startswith("---"):
            raise _Unreadable("front matter is not closed (add a '---' line after the YAML)")
        raise _Unreadable("no front matter (the file must start with a '---' line, then YAML, then '---')")
    # Lines in the YAML count from the line after the opening '---', hence the +2 below.
    try:
        meta = yaml.load(match.group(1) or "", Loader=_FrontMatterLoader)
    except _DuplicateField as exc:
        raise _Unreadable(f"given twice (lines {exc.first + 2} and {exc.again + 2}); keep one", exc.key) from None
    except yaml.YAMLError as exc:
        raise _Unreadable(_yaml_problem(exc, match.group(1) or "")) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise _Unreadable("front matter must be a YAML mapping of field: value")
    return meta, text[match.end() :]


def _yaml_problem(exc: yaml.YAMLError, front: str) -> str:
    """One line for a YAML error, worded the same whichever parser (libyaml or Python) is installed."""
    mark = getattr(exc, "problem_mark", None)
    where = f" on line {mark.line + 2}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if problem.startswith("mapping values are not allowed"):
        problem = "a value contains ': ' (put quotes around it)"
    elif mark is not None and _char_at(front, mark.line, mark.column) == "\t":
        problem = "a tab where YAML needs spaces"
    # An unclosed quote or bracket is only noticed far below; say where it started.
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and start is not None and mark is not None and start.line != mark.line:
        problem += f" ({context} that starts on line {start.line + 2})"
    return f"front matter is not valid YAML{where}: {one_line(problem)}"


def _check_body_limits(body: str) -> None:
    size = len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise _Unreadable(f"the body is {size / 1e6:.1f} MB, more than a story may have ({MAX_BODY_BYTES / 1e6:g} MB)")
    depth = nesting(body)
    if depth > MAX_NESTING:
        raise _Unreadable(f"the body's HTML nests {depth} levels deep (at most {MAX_NESTING})")


def _unknown_field(shown: str, key: Any) -> StoryError:
    close = difflib.get_close_matches(str(key), KNOWN_FIELDS, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return StoryError(shown, str(key), f"unknown field, ignored{hint}")


def _check_fields(
    meta: dict[Any, Any], shown: str, base_url: str, warnings: list[StoryError]
) -> tuple[dict[str, Any], list[StoryError], list[StoryError]]:
    """(clean values, errors that leave the story out, repairs: errors for `check`, the story shown all the
    same). A dropped link or image, or an unknown kind, is a warning (appended to `warnings`)."""
    values: dict[str, Any] = {}
    errors: list[StoryError] = []
    repairs: list[StoryError] = []
    for name in KNOWN_FIELDS:
        if name not in meta or meta[name] is None:
            if name in REQUIRED_FIELDS:
                errors.append(StoryError(shown, name, "required field is missing"))
            continue
        try:
            values[name] = CHECKERS[name](meta[name], base_url)
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
    return values, errors, repairs


def _make_story(
    values: dict[str, Any], body: str, raw: bytes, shown: str, story_id: str, base_url: str, warnings: list[StoryError]
) -> Story:
    """The story of checked `values` and its rendered body; what the body needed removed is a warning."""
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
    return Story(
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


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    return lines[line][column : column + 1] if 0 <= line < len(lines) else ""


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
