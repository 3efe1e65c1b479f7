"""Language editions: one edition per `[list] languages` entry, from one read of the stories.

A story's `lang` picks its edition (`edition_language`: `fr-CA` → `fr`; none, or a language the list
does not publish → the first). An edition with no stories of its own in the window is not built — that
is logged, never an error, unless no language has any story (then the usual "no stories" error).
With one language this is exactly `build()`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from ..config import Settings
from ..errors import NoStories
from .build import Build, build, read_window, stories_for
from .select import window
from .stories import Story

log = logging.getLogger("newsletter.edition")


@dataclass
class Editions:
    """The built language editions, in `[list] languages` order, and the ones left out (language, why)."""

    builds: list[Build]
    left_out: list[tuple[str, str]] = field(default_factory=list)

    @property
    def day(self) -> date:
        return self.builds[0].edition.date


def build_editions(
    settings: Settings,
    day: date | None = None,
    *,
    skip_invalid: bool = False,
    now: datetime | None = None,
    unique: str | None = None,
    languages: tuple[str, ...] | None = None,
) -> Editions:
    """Build every language edition of `day` (default: the newest date with stories in any language)."""
    # The window's stories only (the story index), read once for every language; only the edition's own
    # broken stories matter, and `build` decides about those.
    loaded, day = read_window(settings, day)
    present, left_out = languages_present(settings, day, loaded.stories, languages)
    builds = [
        build(settings.for_language(lang), day, skip_invalid=skip_invalid, now=now, unique=unique, loaded=loaded)
        for lang in present
    ]
    if not builds:
        start, end = window(day, settings)
        raise NoStories(
            f"edition {day.isoformat()}: no stories published between {start.isoformat(timespec='minutes')} "
            f"and {end.isoformat(timespec='minutes')} in any language"
        )
    return Editions(builds, left_out)


def languages_present(
    settings: Settings, day: date, stories: list[Story], languages: tuple[str, ...] | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """The languages with stories of their own in edition `day`'s window, and the others with the reason
    (each logged). With one language, that language, whatever the stories (the build says what is wrong)."""
    wanted = languages or settings.languages
    if not settings.multilingual:
        return list(wanted), []
    start, end = window(day, settings)
    lo, hi = start.timestamp(), end.timestamp()
    present: list[str] = []
    left_out: list[tuple[str, str]] = []
    for lang in wanted:
        own = [s for s in stories_for(stories, settings.for_language(lang)) if lo <= s.published.timestamp() < hi]
        if own:
            present.append(lang)
            continue
        span = f"{start.isoformat(timespec='minutes')} and {end.isoformat(timespec='minutes')}"
        why = f"no {lang} stories published between {span}"
        log.info("edition %s (%s) not built: %s", day, lang, why)
        left_out.append((lang, why))
    return present, left_out
