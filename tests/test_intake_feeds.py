"""Feeds → story files: the mapping of RSS, Atom and JSON Feed entries, bad input on purpose, idempotence."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.edition.stories import load_stories
from newsletter.errors import IntakeError
from newsletter.intake import import_feed
from newsletter.intake.feeds import parse_feed
from tests.test_intake_server import FIXTURES, RSS, FixtureServer, body, front, make_root, serve, settings, story_files

CEASEFIRE = "stories/2024/03/05/ceasefire-holds-as-talks-open-in-astana.md"
MARKETS = "stories/2024/03/05/breaking-markets-rally-as-rates-hold.md"
MUSEUMS = "stories/2024/03/05/museums-stay-open-late-for-spring-festival.md"
HARBOUR = "stories/2024/03/05/harbour-photo-from-an-old-server.md"


@pytest.fixture
def http_server() -> Iterator[FixtureServer]:
    yield from serve()


def assert_valid_stories(root: Path, count: int) -> None:
    """Every file is a story the edition stage accepts, with no warning either."""
    s = settings(root)
    loaded = load_stories(s.stories_dir, s.root, s.base_url)
    assert [str(e) for e in loaded.errors] == []
    assert [str(w) for w in loaded.warnings if "no alt text" not in str(w)] == []
    assert len(loaded.stories) == count


# --- RSS --------------------------------------------------------------------------------------------


def test_rss_entry_with_media_and_content_encoded(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/rss.xml", "rss-media.xml", RSS)
    root = make_root(tmp_path)
    report = import_feed(settings(root), url)
    assert (report.written, report.skipped, report.failed) == (4, 1, [])
    assert sorted(story_files(root)) == sorted([CEASEFIRE, MARKETS, MUSEUMS, HARBOUR])
    assert front(root / CEASEFIRE) == {
        "title": "Ceasefire holds as talks open in Astana",
        "published": "2024-03-05T07:30:00+01:00",  # the feed's own offset, not feedparser's UTC
        "summary": "Negotiators from both sides sat down in the Kazakh capital on Tuesday.",
        "section": "Middle East",
        "url": "https://news.example.org/world/2024/03/05/ceasefire-holds-astana",
        "byline": "Hala Haddad",
        "image": {
            "src": "https://cdn.example.org/images/2024/03/05/astana-talks.jpg",
            "alt": "Delegates arrive for the talks in Astana on March 5, 2024.",
            "credit": "Reuters / A. Petrov",
        },
        "tags": ["Middle East", "Diplomacy"],
        "lang": "en-gb",
    }
    text = body(root / CEASEFIRE)
    assert text.startswith("Negotiators from both sides sat down in the Kazakh capital on Tuesday, the first")
    # Relative links and images are made absolute against the entry's link.
    assert "[largely held](https://news.example.org/world/2024/03/01/truce-brokered)" in text
    assert "![Delegates at the negotiating table](https://news.example.org/images/2024/03/05/astana-table.jpg)" in text
    assert "## What comes next\n\n- A second round in April\n- Prisoner exchanges" in text
    assert "Click here" in text
    for gone in ("trackRead", "steal", "javascript", "onclick", "<script", "pixel.gif", "tracker.example.net"):
        assert gone not in text
    assert_valid_stories(root, 4)


def test_html_and_script_in_titles_are_stripped(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/rss.xml", "rss-media.xml", RSS)
    root = make_root(tmp_path)
    import_feed(settings(root), url)
    markets = front(root / MARKETS)
    assert markets["title"] == "Breaking: Markets rally as rates hold"
    assert markets["published"] == "2024-03-05T08:10:00+00:00"
    assert markets["byline"] == "Business Desk"  # never the e-mail address of <author>
    assert markets["summary"] == "Stocks rose after the central bank left rates unchanged. See rates."
    # A relative <link> resolves against the feed's own URL, like any link in a document.
    assert markets["url"] == http_server.url("/business/2024/03/05/markets-rally")
    assert markets["image"] == {
        "src": "https://cdn.example.org/images/2024/03/05/markets-thumb.jpg",
        "alt": "Breaking: Markets rally as rates hold",
    }
    assert body(root / MARKETS) == ""  # a one-line description is the summary, not a body
    assert "alert" not in (root / MARKETS).read_text(encoding="utf-8")


def test_enclosure_images_and_http_images(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/rss.xml", "rss-media.xml", RSS)
    root = make_root(tmp_path)
    report = import_feed(settings(root), url)
    assert front(root / MUSEUMS)["image"] == {
        "src": "https://cdn.example.org/images/2024/03/05/museum.jpg",
        "alt": "Museums stay open late for spring festival",  # no description: the title
    }
    assert "image" not in front(root / HARBOUR)
    assert (
        f"{url} entry 4 ('Harbour photo from an old server'): image 'http://insecure.example.org/harbour.jpg' "
        "left out: stories only embed absolute https images"
    ) in report.warnings


def test_an_entry_without_any_date_is_skipped_never_stamped_now(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    source = str(FIXTURES / "rss-media.xml")
    report = import_feed(settings(root), source)
    assert report.skipped == 1
    assert f"{source} entry 5 ('An entry with no date at all'): has no published or updated date; skipped" in (
        report.warnings
    )
    assert not any("undated" in (root / p).read_text(encoding="utf-8") for p in story_files(root))


# --- Atom and JSON Feed -----------------------------------------------------------------------------


def test_atom_feed_with_xml_base_xhtml_and_updated_only(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    report = import_feed(settings(root), str(FIXTURES / "atom.xml"))
    assert (report.written, report.failed) == (2, [])
    farmers = "stories/2024/03/05/les-agriculteurs-manifestent-a-bruxelles.md"
    climate = "stories/2024/03/05/vote-serre-au-parlement-sur-la-loi-climat.md"
    assert sorted(story_files(root)) == [farmers, climate]
    assert front(root / farmers) == {
        "title": "Les agriculteurs manifestent à Bruxelles",
        "published": "2024-03-05T08:15:00+01:00",
        "summary": "Des centaines de tracteurs ont convergé vers le quartier européen.",
        "section": "Europe",
        "url": "https://presse.example.fr/europe/2024/03/05/agriculteurs-bruxelles",
        "byline": "Claire Dubois",
        "image": {
            "src": "https://presse.example.fr/images/tracteurs.jpg",
            "alt": "Les agriculteurs manifestent à Bruxelles",
        },
        "tags": ["Europe", "Agriculture"],
        "lang": "fr",
    }
    assert "[l’accord commercial](https://presse.example.fr/europe/2024/02/20/accord-commercial)" in body(
        root / farmers
    )
    vote = front(root / climate)
    assert vote["published"] == "2024-03-05T07:05:00+00:00"  # <updated> stands in for a missing <published>
    assert "summary" not in vote  # Atom repeats the content as the summary; it is not one
    s = settings(root)
    story = next(x for x in load_stories(s.stories_dir, s.root, s.base_url).stories if x.path == climate)
    # "2024. Une année…" at the start of a paragraph is text, not an ordered list starting at 2024.
    assert [b.html.strip() for b in story.blocks] == [
        "<p>Le texte a été adopté par 312 voix contre 298.</p>",
        "<p>2024. Une année décisive.</p>",
    ]


def test_json_feed(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/feed.json", "feed.json", "application/feed+json")
    root = make_root(tmp_path)
    report = import_feed(settings(root), url)
    assert (report.written, report.skipped) == (2, 1)
    assert f"{url} item 3 ('A post without any date'): has no date_published or date_modified; skipped" in (
        report.warnings
    )
    chip = front(root / "stories/2024/03/05/new-chip-plant-breaks-ground.md")
    assert chip == {
        "title": "New chip plant breaks ground",
        "published": "2024-03-05T09:00:00-05:00",
        "summary": "The factory is expected to employ 3,000 people.",
        "section": "Technology",
        "url": "https://tech.example.com/2024/03/05/chip-plant",
        "byline": "Priya Natarajan, Tom Reyes",
        "image": {"src": "https://tech.example.com/img/plant.jpg", "alt": "New chip plant breaks ground"},
        "tags": ["Technology", "Industry"],
        "lang": "en-US",
    }
    assert body(root / "stories/2024/03/05/new-chip-plant-breaks-ground.md") == (
        "Construction began on Tuesday. [The subsidy](https://tech.example.com/2024/02/chips-act) covers a third.\n\n"
        "![The construction site](https://tech.example.com/img/plant-site.jpg)\n"
    )
    release = root / "stories/2024/03/05/open-source-release-ships-faster-builds.md"
    meta = front(release)
    assert meta["title"] == "Open-source release ships <faster> builds"  # plain text per JSON Feed: kept
    assert meta["published"] == "2024-03-05T11:30:00+00:00"
    assert meta["byline"] == "Tech Desk"  # the feed's authors when the item has none
    s = settings(root)
    story = next(x for x in load_stories(s.stories_dir, s.root, s.base_url).stories if x.id.endswith("builds"))
    assert [b.html.strip() for b in story.blocks] == [
        "<p>Version 2.0 is out.</p>",
        "<p>It uses 40% less memory &amp; builds *twice* as fast.</p>",
        "<p># not a heading</p>",
    ]


def test_folders_follow_the_newsletter_time_zone(tmp_path: Path) -> None:
    late = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Late news",
        "items": [
            {
                "id": "https://late.example.org/1",
                "url": "https://late.example.org/1",
                "title": "Late-night vote in Washington",
                "content_text": "The Senate voted.",
                "date_published": "2024-03-05T23:30:00-05:00",  # 05:30 on 6 March in Paris
            }
        ],
    }
    path = tmp_path / "late.json"
    path.write_text(json.dumps(late), encoding="utf-8")
    root = make_root(tmp_path)
    import_feed(settings(root), str(path))
    assert list(story_files(root)) == ["stories/2024/03/06/late-night-vote-in-washington.md"]


# --- bad input --------------------------------------------------------------------------------------


def test_malformed_xml_imports_what_the_parser_recovered(http_server: FixtureServer, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    source = http_server.fixture("/broken.xml", "broken.xml", "application/rss+xml")
    report = import_feed(settings(root), source)
    assert report.warnings == [
        f"{source}: malformed XML (line 8: not well-formed (invalid token)); imported what the parser recovered: "
        "2 entries"
    ]
    assert sorted(front(root / p)["title"] for p in story_files(root)) == [
        "Council approves new park",
        "Fish & chips shop wins award",
    ]
    assert_valid_stories(root, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a feed at all", "not a readable feed (line 1: syntax error)"),
        (
            b"<?xml version='1.0'?>\n<rss>\n<channel><title>x</titl></rss>",
            "not a readable feed (line 3: mismatched tag); no entry could be recovered",
        ),
        (b"<!DOCTYPE html><html><body><p>Hello</p></body></html>", "is a web page, not a feed"),
        (b"<root><thing>1</thing></root>", "not an RSS, Atom or JSON feed"),
        (b'{"version": "1", "items": []}', "JSON without a JSON Feed 'version'"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "JSON Feed 'items' must be a list"),
    ],
)
def test_documents_that_are_not_feeds_are_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "feed.txt"
    path.write_bytes(content)
    root = make_root(tmp_path)
    report = import_feed(settings(root), str(path))
    assert len(report.failed) == 1
    assert report.failed[0].startswith(f"{path}: {message}")
    assert story_files(root) == {}


CHARSET_FEED = """<?xml version="1.0"{declaration}?>
<rss version="2.0"><channel><title>Cuisine</title><link>https://cuisine.example.fr/</link>
<item><title>Crème brûlée à la « une », recette</title><link>https://cuisine.example.fr/creme</link>
<guid>https://cuisine.example.fr/creme</guid><pubDate>Tue, 05 Mar 2024 08:00:00 +0100</pubDate>
<description>Le dessert préféré des Français, façon grand-mère.</description></item></channel></rss>
"""


@pytest.mark.parametrize(
    ("declaration", "encoding", "header", "warned"),
    [
        (' encoding="utf-8"', "cp1252", "application/rss+xml", True),  # declared UTF-8, written in windows-1252
        ("", "cp1252", "application/rss+xml", True),  # no declaration at all, windows-1252 bytes
        (' encoding="iso-8859-1"', "utf-8", "text/xml; charset=iso-8859-1", False),  # labelled latin-1, is UTF-8
        (' encoding="iso-8859-1"', "iso-8859-1", "application/rss+xml", False),  # honest latin-1
    ],
)
def test_wrong_or_missing_charset_declarations(
    http_server: FixtureServer, tmp_path: Path, declaration: str, encoding: str, header: str, warned: bool
) -> None:
    data = CHARSET_FEED.format(declaration=declaration).encode(encoding)
    url = http_server.add("/cuisine.xml", data, content_type=header)
    root = make_root(tmp_path)
    report = import_feed(settings(root), url)
    assert report.failed == []
    meta = front(root / "stories/2024/03/05/creme-brulee-a-la-une-recette.md")
    assert meta["title"] == "Crème brûlée à la « une », recette"
    assert meta["summary"] == "Le dessert préféré des Français, façon grand-mère."
    assert any("windows-1252" in w for w in report.warnings) is warned


def test_relative_urls_without_any_base_are_dropped_not_guessed(tmp_path: Path) -> None:
    feed = """<?xml version="1.0"?><rss version="2.0"><channel><title>Local</title>
<item><title>Relative everything</title><link>/2024/03/05/relative</link>
<pubDate>Tue, 05 Mar 2024 08:00:00 +0100</pubDate>
<description><![CDATA[<p>See <a href="/other">the other story</a> and <img src="/i.jpg" alt="x">.</p>]]></description>
<enclosure url="/photo.jpg" type="image/jpeg"/></item></channel></rss>"""
    path = tmp_path / "local.xml"
    path.write_text(feed, encoding="utf-8")
    parsed = parse_feed(path.read_bytes(), source="local.xml", url=None)
    (item,) = parsed.items
    assert (item.url, item.image) == ("", None)
    assert item.summary == "See the other story and ."
    assert parsed.warnings == [
        "local.xml entry 1 ('Relative everything'): image '/photo.jpg' left out: stories only embed absolute https "
        "images"
    ]


def test_parse_errors_from_the_library_api_are_intake_errors() -> None:
    with pytest.raises(IntakeError, match=r"^x.json: not valid JSON \(line 1, column 2: Expecting property name"):
        parse_feed(b"{", source="x.json", url=None, media_type="application/feed+json")


# --- idempotence ------------------------------------------------------------------------------------


def test_reimporting_changes_nothing_even_when_the_feed_bytes_change(tmp_path: Path) -> None:
    source = tmp_path / "world.xml"
    original = (FIXTURES / "rss-media.xml").read_text(encoding="utf-8")
    source.write_text(original, encoding="utf-8")
    root = make_root(tmp_path)
    import_feed(settings(root), str(source))
    before = story_files(root)

    same = import_feed(settings(root), str(source))
    assert (same.written, same.updated, same.unchanged) == (0, 0, 4)
    assert same.sources == [f"{source}: unchanged since the last import"]

    # A new lastBuildDate changes the document but no entry: every entry is compared, none rewritten.
    source.write_text(original.replace("09:00:00 +0100</lastBuildDate>", "09:05:00 +0100</lastBuildDate>"), "utf-8")
    rebuilt = import_feed(settings(root), str(source))
    assert (rebuilt.written, rebuilt.updated, rebuilt.unchanged, rebuilt.skipped) == (0, 0, 4, 1)
    assert story_files(root) == before


def test_a_changed_entry_keeps_its_file_and_no_update_keeps_its_text(tmp_path: Path) -> None:
    source = tmp_path / "world.xml"
    original = (FIXTURES / "rss-media.xml").read_text(encoding="utf-8")
    source.write_text(original, encoding="utf-8")
    root = make_root(tmp_path)
    import_feed(settings(root), str(source))
    renamed = original.replace("Ceasefire holds as talks open in Astana", "Ceasefire holds as Astana talks open")
    source.write_text(renamed, encoding="utf-8")

    kept = import_feed(settings(root), str(source), update=False)
    assert (kept.kept, kept.updated) == (1, 0)
    assert [(a.kind, a.path) for a in kept.actions] == [("kept", CEASEFIRE)]
    assert front(root / CEASEFIRE)["title"] == "Ceasefire holds as talks open in Astana"

    updated = import_feed(settings(root), str(source))
    assert (updated.updated, updated.written) == (1, 0)
    # The file name was chosen once: a new headline rewrites the same file, it does not make a second one.
    assert front(root / CEASEFIRE)["title"] == "Ceasefire holds as Astana talks open"
    assert len(story_files(root)) == 4


def test_slug_collisions_never_overwrite_another_story(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    mine = root / CEASEFIRE
    mine.parent.mkdir(parents=True)
    hand_written = (
        "---\ntitle: Ceasefire holds as talks open in Astana\npublished: 2024-03-05T06:00:00+01:00\n---\nOurs.\n"
    )
    mine.write_text(hand_written, encoding="utf-8")
    twin = (FIXTURES / "rss-media.xml").read_text(encoding="utf-8")
    twin = twin.replace(
        "<item>\n    <title>Museums stay open late for spring festival</title>",
        "<item><title>Ceasefire holds as talks open in Astana</title>"
        "<link>https://other.example.org/astana</link><pubDate>Tue, 05 Mar 2024 12:00:00 +0100</pubDate></item>\n"
        "  <item>\n    <title>Museums stay open late for spring festival</title>",
    )
    source = tmp_path / "twin.xml"
    source.write_text(twin, encoding="utf-8")
    report = import_feed(settings(root), str(source))
    assert report.written == 5
    assert mine.read_text(encoding="utf-8") == hand_written
    assert front(root / CEASEFIRE.replace(".md", "-2.md"))["url"].endswith("ceasefire-holds-astana")
    assert front(root / CEASEFIRE.replace(".md", "-3.md"))["url"] == "https://other.example.org/astana"
    again = import_feed(settings(root), str(source.rename(tmp_path / "twin-again.xml")))
    assert (again.written, again.unchanged) == (0, 5)


def test_a_story_deleted_by_hand_stays_deleted(tmp_path: Path) -> None:
    source = tmp_path / "world.xml"
    original = (FIXTURES / "rss-media.xml").read_text(encoding="utf-8")
    source.write_text(original, encoding="utf-8")
    root = make_root(tmp_path)
    import_feed(settings(root), str(source))
    (root / MUSEUMS).unlink()
    source.write_text(original.replace("Twelve museums", "Fifteen museums"), encoding="utf-8")
    report = import_feed(settings(root), str(source))
    assert (report.written, report.updated, report.unchanged) == (0, 0, 4)
    assert [(a.kind, a.path) for a in report.actions] == [("deleted", MUSEUMS)]
    assert not (root / MUSEUMS).exists()


def test_a_lost_state_adopts_existing_files_instead_of_duplicating(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    source = str(FIXTURES / "rss-media.xml")
    import_feed(settings(root), source)
    before = story_files(root)
    shutil.rmtree(root / "data")
    report = import_feed(settings(root), source)
    assert (report.written, report.updated, report.unchanged) == (0, 0, 4)
    assert story_files(root) == before


def test_dry_run_writes_nothing_and_says_what_it_would_write(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    source = str(FIXTURES / "rss-media.xml")
    dry = import_feed(settings(root), source, dry_run=True)
    assert dry.dry_run
    assert sorted((a.kind, a.path) for a in dry.actions) == sorted(
        ("new", p) for p in (CEASEFIRE, MARKETS, MUSEUMS, HARBOUR)
    )
    assert story_files(root) == {}
    assert not (root / "data").exists()
    real = import_feed(settings(root), source)
    assert sorted(a.path for a in real.actions) == sorted(a.path for a in dry.actions)


def test_section_option_overrides_categories(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    import_feed(settings(root), str(FIXTURES / "rss-media.xml"), section="World")
    assert {front(root / p)["section"] for p in story_files(root)} == {"World"}
    assert front(root / CEASEFIRE)["tags"] == ["Middle East", "Diplomacy"]


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_damaged_state_file_is_one_clear_error(tmp_path: Path, dry_run: bool) -> None:
    root = make_root(tmp_path)
    (root / "data").mkdir()
    (root / "data/intake.sqlite").write_bytes(b"this is not a database, it was overwritten by mistake" * 100)
    with pytest.raises(IntakeError, match=r"intake.sqlite: not a usable import state \(file is not a database\)"):
        import_feed(settings(root), str(FIXTURES / "atom.xml"), dry_run=dry_run)
    assert story_files(root) == {}


def test_json_feed_in_the_charset_its_server_declares(http_server: FixtureServer, tmp_path: Path) -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1",
        "title": "Café du Commerce",
        "items": [
            {
                "id": "https://cafe.example.fr/1",
                "url": "https://cafe.example.fr/1",
                "title": "Réouverture du café",
                "content_text": "Après travaux.",
                "date_published": "2024-03-05T08:00:00+01:00",
                "author": {"name": "Hélène"},
            }
        ],
    }
    url = http_server.add(
        "/cafe.json",
        json.dumps(doc, ensure_ascii=False).encode("iso-8859-1"),
        content_type="application/json; charset=iso-8859-1",
    )
    root = make_root(tmp_path)
    assert import_feed(settings(root), url).written == 1
    meta = front(root / "stories/2024/03/05/reouverture-du-cafe.md")
    assert (meta["title"], meta["byline"]) == ("Réouverture du café", "Hélène")  # JSON Feed 1.0 'author'


def test_an_entry_repeated_in_the_same_feed_is_one_story(tmp_path: Path) -> None:
    item = (
        "<item><title>{title}</title><link>https://wire.example.org/a</link><guid>https://wire.example.org/a</guid>"
        "<pubDate>Tue, 05 Mar 2024 08:00:00 +0100</pubDate></item>"
    )
    feed = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
        + item.format(title="Storm closes the port")
        + item.format(title="Storm closes the port (old copy)")
        + "</channel></rss>"
    )
    path = tmp_path / "wire.xml"
    path.write_text(feed, encoding="utf-8")
    root = make_root(tmp_path)
    for dry_run in (True, False):
        report = import_feed(settings(root), str(path), dry_run=dry_run)
        assert (report.written, report.updated, report.skipped) == (1, 0, 1)
        assert f"{path} entry 2 ('Storm closes the port (old copy)'): repeats an earlier entry" in report.warnings[0]
    assert [front(root / p)["title"] for p in story_files(root)] == ["Storm closes the port"]
