"""Choose the stories of one edition: the publication window, the order, the sections and the lead.

An edition dated D covers the stories published from the cut-off time (local) on D-1 up to, not
including, the cut-off on D. With the default 06:00 Europe/Paris that is "since yesterday's email".
Stories are ranked by priority (higher first), then by time (newer first), then by id so that the
order never depends on the file system. The first one is the lead; the rest are grouped by section,
sections in the order of their best-ranked story.

An editor's plan (`newsletter.editorial`: the order, a pinned lead, stories left out, the subject and
preheader) is applied to the ranking before the edition is arranged: the same for `build`, the
scheduler and the preview, which all come through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from ..config import Settings, StorySelection
from ..editorial import Plan, apply_plan
from ..errors import NoStories
from ..images import Masthead
from .stories import Story


@dataclass(frozen=True)
class Section:
    name: str
    stories: tuple[Story, ...]


@dataclass(frozen=True)
class Edition:
    date: date
    window_start: datetime
    window_end: datetime
    lead: Story
    sections: tuple[Section, ...]
    more: tuple[Story, ...] = ()  # moved to the compact "More stories" list to keep within the size budget
    anchors: tuple[tuple[str, str], ...] = ()  # (story id, anchor), unique within the edition
    logo: Masthead | None = None  # the masthead logo as published by the build (photos.email_logo)
    order: tuple[str, ...] = ()  # story ids as ranked (and planned): who goes to "More stories" first
    subject: str = ""  # the plan's subject and preheader; empty: the usual ones
    preheader: str = ""

    @property
    def stories(self) -> tuple[Story, ...]:
        """Every story, in reading order."""
        return (self.lead, *(s for sec in self.sections for s in sec.stories), *self.more)

    def anchor(self, story: Story) -> str:
        return dict(self.anchors)[story.id]


def window(day: date, settings: Settings) -> tuple[datetime, datetime]:
    """[start, end) of the edition dated `day`, as aware datetimes in the newsletter's time zone: a day,
    or a week for a weekly newsletter (`window_days`).

    Built from wall-clock times with `datetime.combine`, so a DST change between the two cut-offs gives
    a 23- or 25-hour window rather than a shifted cut-off.
    """
    end = datetime.combine(day, settings.cutoff, tzinfo=settings.timezone)
    start = datetime.combine(day - timedelta(days=settings.window_days), settings.cutoff, tzinfo=settings.timezone)
    return start, end


def edition_date_for(moment: datetime, settings: Settings) -> date:
    """The date of the edition whose window holds `moment`."""
    local = moment.astimezone(settings.timezone)
    day = local.date() + timedelta(days=1) if local.time() >= settings.cutoff else local.date()
    if settings.weekday is not None:  # a weekly: the next edition day on or after it
        day += timedelta(days=(settings.weekday - day.weekday()) % 7)
    return day


def newest_edition_date(stories: Iterable[Story], settings: Settings) -> date | None:
    newest = max((s.published for s in stories), default=None)
    return None if newest is None else edition_date_for(newest, settings)


def edition_dates(stories: Iterable[Story], settings: Settings) -> list[date]:
    """Every edition date that has at least one story, newest first."""
    return sorted({edition_date_for(s.published, settings) for s in stories}, reverse=True)


def selected(stories: Iterable[Story], selection: StorySelection) -> list[Story]:
    """The stories a newsletter takes: in one of its folders, sections or tags (each given list must
    match), at its minimum priority or above. An empty selection takes every story."""
    folders = [f"{f}/" for f in selection.folders]
    sections = {s.casefold() for s in selection.sections}
    tags = {t.casefold() for t in selection.tags}
    chosen = []
    for story in stories:
        if selection.only and story.id not in selection.only:
            continue
        if folders and not any(story.id.startswith(f) for f in folders):  # the id is its path under stories/
            continue
        if sections and story.section.casefold() not in sections:
            continue
        if tags and not tags & {t.casefold() for t in story.tags}:
            continue
        if selection.min_priority is not None and story.priority < selection.min_priority:
            continue
        chosen.append(story)
    return chosen


def rank(stories: Iterable[Story]) -> list[Story]:
    return sorted(stories, key=lambda s: (-s.priority, -s.published.timestamp(), s.id))


def select_edition(stories: Sequence[Story], day: date, settings: Settings, plan: Plan | None = None) -> Edition:
    start, end = window(day, settings)
    # Compare instants, not wall clocks: Python compares two datetimes sharing a tzinfo by wall time.
    lo, hi = start.timestamp(), end.timestamp()
    chosen = rank(s for s in stories if lo <= s.published.timestamp() < hi)
    if not chosen:
        raise NoStories(
            f"edition {day.isoformat()}: no stories published between {start.isoformat(timespec='minutes')} "
            f"and {end.isoformat(timespec='minutes')}"
        )
    edition = _arrange(day, start, end, apply_plan(chosen, plan), demote=0)
    if plan is not None:
        edition = replace(edition, subject=plan.subject, preheader=plan.preheader)
    return edition


def demote(edition: Edition, count: int) -> Edition:
    """The same edition with its `count` lowest-ranked stories (never the lead) in "More stories"."""
    position = {sid: n for n, sid in enumerate(edition.order)}
    ranked = [s for sec in edition.sections for s in sec.stories] + list(edition.more)
    ranked = sorted(ranked, key=lambda s: position.get(s.id, len(position)))
    moved = _arrange(edition.date, edition.window_start, edition.window_end, [edition.lead, *ranked], count)
    return replace(moved, logo=edition.logo, subject=edition.subject, preheader=edition.preheader)


def demotable(edition: Edition) -> int:
    return len(edition.stories) - 1


def _arrange(day: date, start: datetime, end: datetime, ranked: list[Story], demote: int) -> Edition:
    lead, rest = ranked[0], ranked[1:]
    keep = rest[: len(rest) - demote] if demote else rest
    more = tuple(rest[len(keep) :])
    order: dict[str, list[Story]] = {}
    for story in keep:
        order.setdefault(story.section, []).append(story)
    anchors: dict[str, str] = {}
    used: set[str] = set()
    for story in ranked:
        anchor, n = story.slug, 2
        while anchor in used:
            anchor, n = f"{story.slug}-{n}", n + 1
        used.add(anchor)
        anchors[story.id] = anchor
    return Edition(
        date=day,
        window_start=start,
        window_end=end,
        lead=lead,
        sections=tuple(Section(name, tuple(items)) for name, items in order.items()),
        more=more,
        anchors=tuple(anchors.items()),
        order=tuple(s.id for s in ranked),
    )


__all__ = [
    "Edition",
    "Section",
    "demote",
    "edition_date_for",
    "edition_dates",
    "newest_edition_date",
    "rank",
    "select_edition",
    "selected",
    "window",
]
