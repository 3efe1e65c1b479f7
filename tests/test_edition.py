"""Edition selection: the window, DST, order, sections, lead, newest edition, empty editions."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from newsletter.config import load_settings
from newsletter.edition.select import (
    demote,
    edition_date_for,
    edition_dates,
    newest_edition_date,
    select_edition,
    window,
)
from newsletter.edition.stories import Story
from newsletter.errors import EditionError

PARIS = ZoneInfo("Europe/Paris")


def story(sid: str, when: str, priority: int = 0, section: str = "World") -> Story:
    return Story(
        id=sid,
        slug=sid.rsplit("/", 1)[-1],
        path=f"stories/{sid}.md",
        title=sid,
        published=datetime.fromisoformat(when),
        section=section,
        priority=priority,
    )


@pytest.fixture
def settings(empty_root):
    return load_settings(empty_root, environ={})


def test_window_is_cutoff_to_cutoff_local_time(settings):
    start, end = window(date(2016, 12, 30), settings)
    assert start.isoformat() == "2016-12-29T06:00:00+01:00"
    assert end.isoformat() == "2016-12-30T06:00:00+01:00"


def test_window_across_spring_forward_is_23_hours(settings):
    start, end = window(date(2027, 3, 28), settings)  # clocks go forward at 02:00 on 2027-03-28 in Paris
    assert end.timestamp() - start.timestamp() == timedelta(hours=23).total_seconds()
    assert (start.isoformat(), end.isoformat()) == ("2027-03-27T06:00:00+01:00", "2027-03-28T06:00:00+02:00")


def test_boundaries_are_half_open(settings):
    at_cutoff = story("a", "2016-12-30T06:00:00+01:00")
    just_before = story("b", "2016-12-30T05:59:59+01:00")
    assert edition_date_for(at_cutoff.published, settings) == date(2016, 12, 31)
    assert edition_date_for(just_before.published, settings) == date(2016, 12, 30)
    ed = select_edition([at_cutoff, just_before], date(2016, 12, 30), settings)
    assert [s.id for s in ed.stories] == ["b"]


def test_offsets_are_converted_to_the_newsletter_timezone(settings):
    # 04:30 UTC is 05:30 in Paris: inside the 30 December window.
    s = story("utc", "2016-12-30T04:30:00+00:00")
    assert edition_date_for(s.published, settings) == date(2016, 12, 30)
    # 05:30 in New York is 11:30 in Paris: after the cut-off, so the next edition.
    ny = story("ny", "2016-12-30T05:30:00-05:00")
    assert edition_date_for(ny.published, settings) == date(2016, 12, 31)


def test_order_priority_then_newest_lead_and_sections(settings):
    stories = [
        story("old-low", "2016-12-29T08:00:00+01:00", 0, "Europe"),
        story("new-low", "2016-12-30T05:00:00+01:00", 0, "Africa"),
        story("top", "2016-12-29T07:00:00+01:00", 9, "Syria"),
        story("mid", "2016-12-29T09:00:00+01:00", 3, "Europe"),
        story("outside", "2016-12-28T09:00:00+01:00", 99, "Europe"),
    ]
    ed = select_edition(stories, date(2016, 12, 30), settings)
    assert ed.lead.id == "top"
    assert [(s.name, [x.id for x in s.stories]) for s in ed.sections] == [
        ("Europe", ["mid", "old-low"]),
        ("Africa", ["new-low"]),
    ]
    assert [s.id for s in ed.stories] == ["top", "mid", "old-low", "new-low"]


def test_order_does_not_depend_on_input_order(settings):
    stories = [story(f"s{i}", "2016-12-29T10:00:00+01:00", 1) for i in range(6)]
    a = select_edition(stories, date(2016, 12, 30), settings)
    b = select_edition(list(reversed(stories)), date(2016, 12, 30), settings)
    assert [s.id for s in a.stories] == [s.id for s in b.stories] == [f"s{i}" for i in range(6)]


def test_duplicate_slugs_get_distinct_anchors(settings):
    one = story("europe/strike", "2016-12-29T10:00:00+01:00", 2)
    two = story("africa/strike", "2016-12-29T11:00:00+01:00", 1)
    ed = select_edition([one, two], date(2016, 12, 30), settings)
    assert ed.anchor(one) == "strike"
    assert ed.anchor(two) == "strike-2"


def test_empty_edition_is_a_clear_error(settings):
    with pytest.raises(EditionError, match=r"edition 2016-12-25: no stories published between 2016-12-24T06:00"):
        select_edition([story("a", "2016-12-30T05:00:00+01:00")], date(2016, 12, 25), settings)


def test_newest_edition_and_all_dates(settings):
    stories = [
        story("a", "2016-12-30T05:00:00+01:00"),
        story("b", "2016-12-30T07:00:00+01:00"),
        story("c", "2016-12-20T12:00:00+01:00"),
    ]
    assert newest_edition_date(stories, settings) == date(2016, 12, 31)
    assert edition_dates(stories, settings) == [date(2016, 12, 31), date(2016, 12, 30), date(2016, 12, 21)]
    assert newest_edition_date([], settings) is None


def test_demote_moves_lowest_ranked_never_the_lead(settings):
    stories = [story(f"s{i}", f"2016-12-29T1{i}:00:00+01:00", 10 - i) for i in range(5)]
    ed = select_edition(stories, date(2016, 12, 30), settings)
    moved = demote(ed, 2)
    assert moved.lead.id == "s0"
    assert [s.id for s in moved.more] == ["s3", "s4"]
    assert [s.id for s in moved.stories] == [s.id for s in ed.stories]
    everything = demote(ed, 4)
    assert everything.sections == () and everything.lead.id == "s0"


def test_timezone_and_cutoff_come_from_config(empty_root):
    (empty_root / "newsletter.toml").write_text('timezone = "America/New_York"\ncutoff = "07:30"\n')
    settings = load_settings(empty_root, environ={})
    start, end = window(date(2016, 12, 30), settings)
    assert start.isoformat() == "2016-12-29T07:30:00-05:00"
    assert end.isoformat() == "2016-12-30T07:30:00-05:00"
