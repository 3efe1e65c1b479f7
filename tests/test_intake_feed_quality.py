"""Feeds as they are in the wild: mis-declared encodings, dates in other languages, authors as
`address (Name)`, site names in titles, tracking pixels in bodies, categories as sections."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.edition.stories import load_stories
from newsletter.intake import import_configured, import_feed
from tests.test_intake_server import FIXTURES, FixtureServer, body, front, make_root, serve, settings, story_files

TEXTS = FIXTURES / "feeds"


@pytest.fixture
def http_server() -> Iterator[FixtureServer]:
    yield from serve()


def rss(items: str, *, title: str = "City Desk", declaration: str = ' encoding="utf-8"') -> str:
    return (
        f'<?xml version="1.0"{declaration}?>\n<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/'
        f'content/" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>{title}</title>'
        f"<link>https://city.example.org/</link>{items}</channel></rss>"
    )


def item(n: int, title: str, *, extra: str = "", date: str = "Tue, 05 Mar 2024 08:00:00 +0100") -> str:
    return (
        f"<item><title>{title}</title><link>https://city.example.org/{n}</link><guid>https://city.example.org/{n}</guid>"
        f"<pubDate>{date}</pubDate>{extra}</item>"
    )


def fronts(root: Path) -> list[dict[str, object]]:
    return [front(root / p) for p in story_files(root)]


# --- encodings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "encoding", "shown"),
    [
        ("ru", "koi8-r", "KOI8-R"),
        ("ja", "shift_jis", "Shift-JIS"),
        ("ja", "euc-jp", "EUC-JP"),
        ("he", "cp1255", "windows-1255"),
    ],
)
def test_a_feed_declaring_utf8_in_another_encoding_is_read_in_it(
    http_server: FixtureServer, tmp_path: Path, lang: str, encoding: str, shown: str
) -> None:
    rows = [line.split("|") for line in (TEXTS / f"{lang}.txt").read_text(encoding="utf-8").splitlines()]
    items = "".join(item(n, t, extra=f"<description>{s}</description>") for n, (t, s) in enumerate(rows))
    url = http_server.add("/city.xml", rss(items).encode(encoding), content_type="application/rss+xml; charset=utf-8")
    root = make_root(tmp_path)
    report = import_feed(settings(root), url)
    assert report.failed == [] and report.written == 2
    assert report.warnings == [f"{url}: declared utf-8 but is {shown}; read as {shown}"]
    assert sorted(m["title"] for m in fronts(root)) == sorted(t for t, _ in rows)
    assert sorted(m["summary"] for m in fronts(root)) == sorted(s for _, s in rows)


def test_a_feed_that_stays_mojibake_is_refused_not_imported(tmp_path: Path) -> None:
    rows = [line.split("|") for line in (TEXTS / "ru.txt").read_text(encoding="utf-8").splitlines()]
    items = "".join(item(n, t, extra=f"<description>{s}</description>") for n, (t, s) in enumerate(rows))
    # Saved once as KOI8-R, then opened as latin-1 and saved again as UTF-8: valid UTF-8, unreadable text.
    garbled = rss(items).encode("koi8-r").decode("latin-1").encode("utf-8")
    feed = tmp_path / "garbled.xml"
    feed.write_bytes(garbled)
    root = make_root(tmp_path)
    report = import_feed(settings(root), str(feed))
    assert len(report.failed) == 1
    assert re.fullmatch(
        re.escape(str(feed)) + r": the text looks garbled \('.+'…\): the document's encoding is wrong and could not "
        r"be recognised; nothing imported",
        report.failed[0],
    )
    assert story_files(root) == {}


# --- dates, authors, titles -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "published"),
    [
        ("mer, 16 nov 2022 10:00:00 +0100", "2022-11-16T10:00:00+01:00"),
        ("Mi, 16 Nov 2022 10:00:00 +0100", "2022-11-16T10:00:00+01:00"),
        ("mer, 16 nov 2022 07:05:00 GMT", "2022-11-16T07:05:00+00:00"),
        ("mié, 16 nov 2022 10:00:00 -0300", "2022-11-16T10:00:00-03:00"),
        ("qua, 16 nov 2022 10:00:00 -0300", "2022-11-16T10:00:00-03:00"),
        ("gio, 17 nov 2022 09:30:00 +0100", "2022-11-17T09:30:00+01:00"),
        ("sam, 31 déc 2022 23:59:00 +0100", "2022-12-31T23:59:00+01:00"),
        ("Do, 1 Dez 2022 06:00:00 +0100", "2022-12-01T06:00:00+01:00"),
    ],
)
def test_dates_in_other_languages_parse_with_their_offset(tmp_path: Path, date: str, published: str) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(item(1, "Marché de Noël", date=date)), encoding="utf-8")
    root = make_root(tmp_path)
    report = import_feed(settings(root), str(feed))
    assert (report.written, report.skipped, report.failed) == (1, 0, [])
    assert fronts(root)[0]["published"] == published


def test_a_relative_date_is_not_a_date(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(item(1, "Marché de Noël", date="hier à 10h")), encoding="utf-8")
    root = make_root(tmp_path)
    report = import_feed(settings(root), str(feed))
    assert (report.written, report.skipped) == (0, 1)
    assert report.warnings == [f"{feed} entry 1 ('Marché de Noël'): date 'hier à 10h' is not understood; skipped"]


@pytest.mark.parametrize(
    ("author", "byline"),
    [
        ("<author>jane@example.org (Jane Doe)</author>", "Jane Doe"),
        ("<author>mailto:jane@example.org (Jane Doe)</author>", "Jane Doe"),
        ("<author>jane @ example.org (Jane   Doe)</author>", "Jane Doe"),
        ("<author>redazione@example.it (Redazione Esteri)</author>", "Redazione Esteri"),
        ("<dc:creator>Luisa Brandt</dc:creator>", "Luisa Brandt"),
        ("<author>jane@example.org</author>", None),  # an address alone is nobody's name
    ],
)
def test_rss_authors_give_names(tmp_path: Path, author: str, byline: str | None) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(item(1, "Council votes", extra=author)), encoding="utf-8")
    root = make_root(tmp_path)
    assert import_feed(settings(root), str(feed)).written == 1
    assert fronts(root)[0].get("byline") == byline


@pytest.mark.parametrize(
    ("feed_title", "entry", "title"),
    [
        ("La Stampa", "Sciopero dei treni, disagi al nord - La Stampa", "Sciopero dei treni, disagi al nord"),
        ("The Japan Times - News", "Typhoon nears Okinawa | The Japan Times", "Typhoon nears Okinawa"),
        ("City Desk", "Left - Right: the council debate", "Left - Right: the council debate"),
    ],
)
def test_site_names_are_cut_from_entry_titles(tmp_path: Path, feed_title: str, entry: str, title: str) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(item(1, entry), title=feed_title), encoding="utf-8")
    root = make_root(tmp_path)
    assert import_feed(settings(root), str(feed)).written == 1
    assert fronts(root)[0]["title"] == title


# --- tracking pixels --------------------------------------------------------------------------------

PIXELS = """<p>The council voted on Tuesday to rebuild the harbour wall before winter.</p>
<p><img src="https://city.example.org/photos/harbour-wall.jpg" alt="The harbour wall" width="800" height="533"></p>
<img src="https://stats.newsfeed-metrics.example/story/4412" width="1" height="1" alt="">
<img src="https://feeds.feedburner.com/~r/citydesk/~4/a1b2c3" alt="">
<img src="https://pixel.wp.com/g.gif?blog=8&amp;post=4412" alt="">
<img src="https://cdn.city.example.org/promo/banner.jpg?utm_source=rss&amp;utm_medium=feed" alt="Subscribe">
<img src="https://counter.example.net/hit" style="display: none" alt="">
<img src="https://beacon.example.com/b.png" style="width:1px;height:1px" alt="">
<p>Work starts in May.</p>"""


def test_tracking_pixels_in_feed_bodies_are_removed_with_a_warning_naming_each_host(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    entry = item(1, "Harbour wall to be rebuilt", extra=f"<content:encoded><![CDATA[{PIXELS}]]></content:encoded>")
    feed.write_text(rss(entry), encoding="utf-8")
    root = make_root(tmp_path)
    report = import_feed(settings(root), str(feed))
    assert report.written == 1
    label = f"{feed} entry 1 ('Harbour wall to be rebuilt')"
    assert report.warnings == [
        f"{label}: tracking image from {host} removed"
        for host in (
            "stats.newsfeed-metrics.example",
            "feeds.feedburner.com",
            "pixel.wp.com",
            "cdn.city.example.org",
            "counter.example.net",
            "beacon.example.com",
        )
    ]
    (path,) = story_files(root)
    text = body(root / path)
    assert text == (
        "The council voted on Tuesday to rebuild the harbour wall before winter.\n\n"
        "![The harbour wall](https://city.example.org/photos/harbour-wall.jpg)\n\nWork starts in May.\n"
    )


# --- sections ---------------------------------------------------------------------------------------


def test_sections_come_from_the_category_then_the_feed_setting_then_the_default(tmp_path: Path) -> None:
    entries = item(1, "Council votes", extra="<category>Politics</category><category>Harbour</category>") + item(
        2, "Ferry timetable"
    )
    (tmp_path / "desk.xml").write_text(rss(entries), encoding="utf-8")
    (tmp_path / "partner.xml").write_text(
        rss(item(3, "Museum night", extra="<category>Kultur</category>") + item(4, "Choir concert")),
        encoding="utf-8",
    )
    root = make_root(
        tmp_path,
        '[intake]\nsection = "Local"\n\n[[intake.feeds]]\nurl = "../desk.xml"\n\n'
        '[[intake.feeds]]\nurl = "../partner.xml"\nsection = "Partners"\n',
    )
    report = import_configured(settings(root))
    assert (report.written, report.failed) == (4, [])
    got = {m["title"]: (m.get("section"), m.get("tags")) for m in fronts(root)}
    assert got == {
        "Council votes": ("Politics", ["Politics", "Harbour"]),
        "Ferry timetable": ("Local", None),
        "Museum night": ("Partners", ["Kultur"]),
        "Choir concert": ("Partners", None),
    }
    s = settings(root)
    loaded = load_stories(s.stories_dir, s.root, s.base_url)
    assert loaded.errors == [] and len(loaded.stories) == 4
