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
from ..errors import EditionError
from .build import Build, build, choose_date, read, stories_for
from .select import window

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
    loaded = read(settings, skip_invalid=skip_invalid)
    day = choose_date(loaded.stories, settings, day)
    start, end = window(day, settings)
    lo, hi = start.timestamp(), end.timestamp()
    builds: list[Build] = []
    left_out: list[tuple[str, str]] = []
    for lang in languages or settings.languages:
        lang_settings = settings.for_language(lang)
        own = [s for s in stories_for(loaded.stories, lang_settings) if lo <= s.published.timestamp() < hi]
        if not own and settings.multilingual:
            why = f"no {lang} stories published between {start.isoformat(timespec='minutes')} and " + end.isoformat(
                timespec="minutes"
            )
            log.info("edition %s (%s) not built: %s", day, lang, why)
            left_out.append((lang, why))
            continue
        builds.append(build(lang_settings, day, skip_invalid=skip_invalid, now=now, unique=unique, loaded=loaded))
    if not builds:
        raise EditionError(
            f"edition {day.isoformat()}: no stories published between {start.isoformat(timespec='minutes')} "
            f"and {end.isoformat(timespec='minutes')} in any language"
        )
    return Editions(builds, left_out)
