"""The edition pipeline end to end: read stories → select → render HTML and text → MIME → outbox.

`prepare()` and `render()` are pure (values in, values out) so the preview server and the mailing
stage reuse them; `write_edition()` is the one place that touches the outbox. `build()` publishes the
edition's photos into `site/images/` first (photos.py: named by content, so only new ones cost work).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .. import __version__, metrics
from ..config import Settings, edition_language
from ..editorial import Plan, plan_for
from ..errors import EditionError, NewsletterError, NoStories, StoryError
from ..fsutil import write_all_atomic
from .index import INDEX_FILE, StoryIndex
from .message import list_copy, serialize
from .photos import attach_images, email_logo
from .render import Rendered, render_edition, render_mjml
from .select import Edition, edition_date_for, newest_edition_date, select_edition, selected, window
from .stories import LoadResult, Skipped, Story, load_stories
from .templates import make_environment


@dataclass
class Build:
    settings: Settings
    edition: Edition
    rendered: Rendered
    eml: bytes
    manifest: dict[str, Any]
    warnings: list[StoryError] = field(default_factory=list)  # about this edition's stories (repairs included)
    skipped: list[StoryError] = field(default_factory=list)  # why this edition's left-out stories were left out
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def outdir(self) -> Path:
        return self.settings.edition_dir(self.edition.date)

    @property
    def language(self) -> str:
        return self.settings.language


class StoriesInvalid(EditionError):
    """Raised when stories are broken and skipping was not allowed; carries every problem."""

    def __init__(self, errors: list[StoryError], *, all_invalid: bool = False) -> None:
        self.errors = errors
        files = len({e.path for e in errors})
        if all_invalid:
            super().__init__(
                f"every story file is invalid ({files} file(s), {len(errors)} problem(s)): nothing to build"
            )
        else:
            super().__init__(f"{len(errors)} problem(s) in {files} story file(s); fix them or pass --skip-invalid")


def read(settings: Settings, *, skip_invalid: bool = True) -> LoadResult:
    """Every story that can be shown; `StoriesInvalid` when none can and some are broken.

    With `skip_invalid=False`, any file left out is an error (the strict reading `check` takes).
    """
    result = load_stories(settings.stories_dir, settings.root, settings.base_url)
    if result.skipped and not (skip_invalid and result.stories):
        raise StoriesInvalid([e for sk in result.skipped for e in sk.errors], all_invalid=not result.stories)
    return result


def read_window(settings: Settings, day: date | None) -> tuple[LoadResult, date]:
    """The stories of edition `day` (None: the newest) without parsing the archive: the story index
    (index.py) says which files to read in full — those of the window, and those of unknown date."""
    with StoryIndex(settings.root / "data" / INDEX_FILE) as index:
        files = index.published(settings.stories_dir)
    if day is None:
        newest = max((stamp for _, stamp in files if stamp is not None), default=None)
        if newest is None:
            loaded = load_stories(settings.stories_dir, settings.root, settings.base_url)
            return loaded, choose_date(loaded.stories, settings, None)
        day = edition_date_for(datetime.fromtimestamp(newest, UTC), settings)
    start, end = window(day, settings)
    lo, hi = start.timestamp(), end.timestamp()
    wanted = sorted((rel for rel, stamp in files if stamp is None or lo <= stamp < hi), key=lambda r: r.split("/"))
    stories_dir = settings.stories_dir
    return load_stories(stories_dir, settings.root, settings.base_url, paths=[stories_dir / r for r in wanted]), day


def own_skipped(loaded: LoadResult, day: date, settings: Settings) -> list[Skipped]:
    """The left-out files that belong to edition `day`: published in its window, or of unknown date."""
    start, end = window(day, settings)
    return [sk for sk in loaded.skipped if sk.published is None or start <= sk.published < end]


def choose_date(stories: list[Story], settings: Settings, day: date | None) -> date:
    if day is not None:
        return day
    newest = newest_edition_date(selected(stories, settings.selection), settings)
    if newest is None:
        raise NoStories(f"no stories under {settings.stories_dir}: nothing to build")
    return newest


def stories_for(stories: list[Story], settings: Settings) -> list[Story]:
    """The stories of `settings`' newsletter (its selection: folders, sections, tags, minimum priority) and
    language edition: with one language, all of them (as ever); with
    several, those whose `lang` picks this edition (no `lang`, or one the list does not publish, is the
    first language's)."""
    stories = selected(stories, settings.selection)
    # A newsletter in some of the list's languages takes the stories of its language, as an edition would.
    languages = (settings.whole or settings).languages
    if len(languages) == 1:
        return stories
    return [s for s in stories if edition_language(s.lang, languages) == settings.language]


def build(
    settings: Settings,
    day: date | None = None,
    *,
    skip_invalid: bool = False,
    now: datetime | None = None,
    unique: str | None = None,
    on_demote: Callable[[int], None] | None = None,
    loaded: LoadResult | None = None,
    plan: Plan | bool | None = True,
) -> Build:
    """Everything `newsletter build` makes for `settings`' language edition, in memory.

    `now`/`unique` freeze Date and Message-ID; `loaded` reuses stories already read (the editions of
    one run share one read). Without `day`, the newest date with stories in any language.

    Only the edition's own stories matter: a broken file outside its window changes nothing. A story of
    the edition that cannot be shown raises `StoriesInvalid` unless `skip_invalid` (then it is left out
    and listed in `skipped` and the manifest); repaired ones are shown, their problems in `warnings`.

    `plan`: True applies the edition's plan from the editors' desk (newsletter.editorial) when there is
    one; False builds the edition as ranked; a `Plan` applies that one (the desk's preview of a change).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if loaded is None:
        loaded, day = read_window(settings, day)
    t1 = time.perf_counter()
    day = choose_date(loaded.stories, settings, day)
    skipped = own_skipped(loaded, day, settings)
    if skipped and not loaded.stories:
        raise StoriesInvalid([e for sk in skipped for e in sk.errors], all_invalid=True)
    if skipped and not skip_invalid:
        raise StoriesInvalid([e for sk in skipped for e in sk.errors])
    chosen = plan_for(settings, day) if plan is True else (plan or None)
    edition = select_edition(stories_for(loaded.stories, settings), day, settings, chosen)
    t_images = time.perf_counter()
    # The edition's photos into site/images/ (once per photo: cached by content), before rendering.
    shown_stories, image_notes = attach_images(edition.stories, settings)
    logo, logo_notes = email_logo(settings)
    edition = replace(select_edition(shown_stories, day, settings, chosen), logo=logo)
    timings["images"] = time.perf_counter() - t_images
    t2 = time.perf_counter()
    rendered = render_edition(edition, settings, make_environment(settings), on_demote=on_demote)
    t3 = time.perf_counter()
    now = now or datetime.now(UTC)
    # The default language keeps the key it has always had; the others say their language.
    # Another newsletter's messages say which one they are (`weekly.edition-…`).
    key = f"{settings.file_prefix}edition-{day.isoformat()}" + (
        f"-{settings.language}" if settings.language != settings.languages[0] else ""
    )
    msg = list_copy(
        settings,
        rendered.subject,
        rendered.text,
        rendered.html,
        now.astimezone(settings.timezone),
        key=key,
        unique=unique,
    )
    eml = serialize(msg)
    t4 = time.perf_counter()
    timings.update(read=t1 - t0, select=t2 - t1 - timings["images"], **rendered.timings, mime=t4 - t3)
    metrics.build_timed(settings.list.id, settings.language, build=t4 - t0, render=t3 - t2)
    reasons = [e for sk in skipped for e in sk.errors]
    manifest = _manifest(settings, rendered, eml, now, reasons)
    if chosen is not None and not chosen.empty:  # who arranged this edition at the desk, and when
        manifest["plan"] = {"updated_by": chosen.updated_by, "updated_at": chosen.updated_at}
    shown = {s.path for s in edition.stories}
    notes = [e for e in loaded.errors + loaded.warnings if e.path in shown] + image_notes + logo_notes
    return Build(settings, rendered.edition, rendered, eml, manifest, notes, reasons, timings)


def write_edition(result: Build, *, mjml: bool = False) -> Path:
    """Write the edition's files to `outbox/<date>/`: all of them, or (on an error) none.

    With `mjml`, also `newsletter.mjml`: the MJML the HTML was compiled from, for a designer's MJML tools
    (without it, a `newsletter.mjml` left by an earlier build is removed)."""
    t0 = time.perf_counter()
    out = result.outdir
    files: dict[Path, bytes | str] = {
        out / "newsletter.html": result.rendered.html,
        out / "newsletter.txt": result.rendered.text,
        out / "newsletter.eml": result.eml,
        out / "manifest.json": json.dumps(result.manifest, indent=2, ensure_ascii=False) + "\n",
    }
    if mjml:
        files[out / "newsletter.mjml"] = render_mjml(result.settings, result.rendered.context)
    try:
        write_all_atomic(files)
        if not mjml:  # every file in the folder is from this build: no MJML of an older one
            (out / "newsletter.mjml").unlink(missing_ok=True)
    except OSError as exc:
        raise NewsletterError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    result.timings["write"] = time.perf_counter() - t0
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(
    settings: Settings, rendered: Rendered, eml: bytes, now: datetime, skipped: list[StoryError]
) -> dict[str, Any]:
    ed = rendered.edition
    placement = {ed.lead.id: "lead"}
    placement.update({s.id: "section" for sec in ed.sections for s in sec.stories})
    placement.update({s.id: "more" for s in ed.more})
    html = rendered.html.encode()
    text = rendered.text.encode()
    return {
        "edition": ed.date.isoformat(),
        "language": settings.language,
        "timezone": str(settings.timezone),
        "window": {"start": ed.window_start.isoformat(), "end": ed.window_end.isoformat()},
        "subject": rendered.subject,
        "preheader": rendered.preheader,
        "stories": [
            {
                "id": s.id,
                "file": s.path,
                "title": s.title,
                "section": s.section,
                "priority": s.priority,
                "published": s.published.isoformat(),
                "placement": placement[s.id],
                "anchor": ed.anchor(s),
                "sha256": s.content_hash,
            }
            for s in ed.stories
        ],
        "demoted": [s.id for s in ed.more],
        "sizes": {
            "html_bytes": len(html),
            "text_bytes": len(text),
            "eml_bytes": len(eml),
            "html_budget_bytes": settings.html_budget,
            "html_budget_used": round(len(html) / settings.html_budget, 4),
            "gmail_clip_bytes": 102 * 1024,
        },
        "hashes": {"newsletter.html": _sha(html), "newsletter.txt": _sha(text)},
        "skipped_files": sorted({e.path for e in skipped}),
        "skipped": [{"file": e.path, "field": e.field, "problem": e.message} for e in skipped],
        "generator": f"newsletter {__version__}",
        "built_at": now.astimezone(UTC).isoformat(timespec="seconds"),
    }
