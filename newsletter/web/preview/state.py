"""What the preview shows: every edition rendered in memory, rebuilt after a change, the last good kept.

The server asks `Previewer` for an edition; it runs the same pipeline as `newsletter build`
(`newsletter.edition.build.build`) but never writes the outbox. The watcher bumps a *generation* when a
story, a template or the config changes; the next request for an edition renders it again if what it
is made of changed (its stories, the templates, the config), and reuses the last render otherwise.

When a render fails (a broken story, a template error, a bad config) the view carries the problems as
one line each and keeps showing the last render that worked, so an editor mid-way through a change
still sees the email.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ...config import Settings, load_settings
from ...edition import (
    Build,
    LoadResult,
    StoriesInvalid,
    build,
    default_templates_dir,
    edition_date_for,
    edition_dates,
    load_stories,
)
from ...editorial import plan_for
from ...errors import NewsletterError
from ...letters import chosen_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxState:
    """What `newsletter build` last wrote for a date, if anything."""

    built_at: str
    current: bool  # its HTML is the same as the preview's


@dataclass(frozen=True)
class EditionView:
    """One edition as the preview shows it.

    `build` is the current render when `problems` is empty. Otherwise it is the last good render
    (`stale`), or, when nothing ever rendered, a render without the broken stories (`partial`), or None.
    """

    day: date
    build: Build | None
    problems: tuple[str, ...] = ()
    stale: bool = False
    partial: bool = False
    rendered_at: float = 0.0  # time.time() of the render shown
    language: str = ""  # the language edition ("" : the list's first language)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def version(self) -> str:
        """Changes whenever the HTML shown changes: the iframe reloads only then."""
        if self.build is None:
            return "none"
        return str(self.build.manifest["hashes"]["newsletter.html"])[:16]


@dataclass(frozen=True)
class Overview:
    generation: int
    dates: tuple[date, ...]  # newest first, from the stories that load
    problems: tuple[str, ...]  # stories that do not load, a config that does not parse
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Outcome:
    build: Build | None
    problems: tuple[str, ...]
    partial: bool
    at: float
    inputs: tuple[Any, ...]  # what the render was made from; equal inputs, same render


class Previewer:
    """Thread-safe: request handlers run in a thread pool while the watcher calls `changed()`."""

    def __init__(self, root: Path, overrides: Mapping[str, Any] | None = None, newsletter: str | None = None) -> None:
        self.root = Path(root)
        self._overrides = dict(overrides or {})
        self._newsletter = newsletter  # one of [newsletters.<id>]; None: the default newsletter
        # The first load is not guarded: a config that is broken from the start is the CLI's one-line error.
        self._settings = self._load()
        self._config_problem: str | None = None
        self._lock = threading.RLock()
        self._generation = 0
        self._stories: tuple[int, LoadResult] | None = None
        self._stamp: tuple[int, tuple[tuple[str, int, int], ...]] | None = None
        # Keyed by (date, language): "" is the list's first language.
        self._outcomes: dict[tuple[date, str], _Outcome] = {}
        self._good: dict[tuple[date, str], _Outcome] = {}
        self._viewed: dict[tuple[date, str], float] = {}

    def _load(self) -> Settings:
        settings = load_settings(self.root, self._overrides)
        return chosen_settings(settings, self._newsletter)[0] if self._newsletter else settings

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def settings(self) -> Settings:
        """The settings in force: the last config that loaded."""
        return self._settings

    def changed(self) -> int:
        """Files changed: forget the renders, re-read the config. Returns the new generation."""
        with self._lock:
            self._generation += 1
            try:
                self._settings = self._load()
                self._config_problem = None
            except NewsletterError as exc:
                self._config_problem = str(exc)
            return self._generation

    # --- reading -----------------------------------------------------------------------------------

    def _loaded(self) -> LoadResult:
        if self._stories is None or self._stories[0] != self._generation:
            s = self._settings
            self._stories = (self._generation, load_stories(s.stories_dir, s.root, s.base_url))
        return self._stories[1]

    def _templates_stamp(self) -> tuple[tuple[str, int, int], ...]:
        """(file, mtime, size) of every template the renderer may read; computed once per generation."""
        if self._stamp is None or self._stamp[0] != self._generation:
            files = []
            for folder in dict.fromkeys((self._settings.templates_dir, default_templates_dir())):
                for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
                    with contextlib.suppress(OSError):
                        st = path.stat()
                        files.append((str(path), st.st_mtime_ns, st.st_size))
            self._stamp = (self._generation, tuple(files))
        return self._stamp[1]

    def _inputs(self, day: date) -> tuple[Any, ...]:
        """Everything the render of `day` depends on.

        An edition reads only the stories of its window, but a broken story anywhere stops the build
        and every warning is listed, so those count too. Comparing these lets a save re-render only
        the edition it touched: an index of many editions stays fast under live reload.
        """
        loaded = self._loaded()
        settings = self._settings
        own = sorted((s.id, s.content_hash) for s in loaded.stories if edition_date_for(s.published, settings) == day)
        return (
            settings,
            self._config_problem,
            tuple(own),
            tuple(str(e) for e in loaded.errors),
            tuple(str(w) for w in loaded.warnings),
            self._templates_stamp(),
            self._plans(day),
        )

    def _plans(self, day: date) -> tuple[Any, ...]:
        """The editors' plans of `day` (the desk): a plan changed there shows here at the next look."""
        settings = self._settings
        try:
            return tuple(plan_for(settings.for_language(lang), day) for lang in settings.languages)
        except NewsletterError as exc:  # an unreadable desk store: `build` says so, with the file's name
            return (str(exc),)

    def overview(self) -> Overview:
        with self._lock:
            loaded = self._loaded()
            problems = [str(e) for e in loaded.errors]
            if self._config_problem:
                problems.insert(0, self._config_problem)
            return Overview(
                generation=self._generation,
                dates=tuple(edition_dates(loaded.stories, self._settings)),
                problems=tuple(problems),
                warnings=tuple(str(w) for w in loaded.warnings),
            )

    def newest(self) -> date | None:
        dates = self.overview().dates
        if dates:
            return dates[0]
        # Every story broken at the moment: keep showing the newest edition that rendered.
        with self._lock:
            return max((day for day, _lang in self._good), default=None)

    def edition(self, day: date, *, viewed: bool = True, language: str = "") -> EditionView:
        """The edition of `day` (in `language`, default the first): rendered now if what it is made of
        changed, else the last render.

        `viewed`: someone is looking at this edition, so `warm()` renders it right after a change.
        """
        key = (day, language)
        with self._lock:
            if viewed:
                self._viewed[key] = time.monotonic()
            inputs = self._inputs(day)
            outcome = self._outcomes.get(key)
            if outcome is None or outcome.inputs != inputs:
                outcome = self._render(day, inputs, language)
                self._outcomes[key] = outcome
                if outcome.build is not None and not outcome.problems:
                    self._good[key] = outcome
            if not outcome.problems:
                return EditionView(day, outcome.build, rendered_at=outcome.at, language=language)
            good = self._good.get(key)
            if good is not None:
                return EditionView(
                    day, good.build, outcome.problems, stale=True, rendered_at=good.at, language=language
                )
            return EditionView(
                day,
                outcome.build,
                outcome.problems,
                partial=outcome.build is not None,
                rendered_at=outcome.at,
                language=language,
            )

    def warm(self, keep: float = 600.0) -> list[EditionView]:
        """Render again the editions someone looked at in the last `keep` seconds (after a change)."""
        now = time.monotonic()
        with self._lock:
            recent = sorted(k for k, at in self._viewed.items() if now - at <= keep)
        return [self.edition(d, language=lang) for d, lang in recent]

    def languages(self, day: date) -> list[str]:
        """The language editions `day` has (all of them with one language; else those with stories)."""
        from ...edition import languages_present

        with self._lock:
            settings = self._settings
        return languages_present(settings, day, self._loaded().stories)[0] or [settings.languages[0]]

    def outbox_state(self, view: EditionView) -> OutboxState | None:
        settings = self._settings.for_language(view.language or self._settings.languages[0])
        manifest = settings.edition_dir(view.day) / "manifest.json"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            built_at = str(data["built_at"])
            html_hash = data.get("hashes", {}).get("newsletter.html")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        current = view.build is not None and html_hash == view.build.manifest["hashes"]["newsletter.html"]
        return OutboxState(built_at=built_at, current=current)

    # --- rendering ---------------------------------------------------------------------------------

    def _render(self, day: date, inputs: tuple[Any, ...], language: str = "") -> _Outcome:
        at = time.time()

        def outcome(result: Build | None, problems: tuple[str, ...] = (), partial: bool = False) -> _Outcome:
            return _Outcome(result, problems, partial, at, inputs)

        if self._config_problem:
            return outcome(None, (self._config_problem,))
        settings = self._settings
        if language:
            if language not in settings.languages:
                return outcome(
                    None, (f"'{language}' is not one of [list] languages ({', '.join(settings.languages)})",)
                )
            settings = settings.for_language(language)
        try:
            return outcome(build(settings, day))
        except StoriesInvalid as exc:
            problems = tuple(str(e) for e in exc.errors)
            try:
                # Something to look at while the first render is still broken: the edition without them.
                return outcome(build(settings, day, skip_invalid=True), problems, partial=True)
            except NewsletterError as again:
                return outcome(None, (*problems, str(again)))
        except NewsletterError as exc:
            return outcome(None, (str(exc),))
        except Exception as exc:  # a bug must not take the server down: show it, log the traceback
            log.exception("preview: rendering %s failed", day)
            return outcome(None, (f"internal error while rendering {day}: {type(exc).__name__}: {exc}",))


__all__ = ["EditionView", "OutboxState", "Overview", "Previewer"]
