"""Article pages → one clean story: the article and nothing of the news site around it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.edition.stories import load_stories, read_story
from newsletter.intake import import_feed, import_page
from newsletter.intake.convert import parse_datetime
from tests.helpers import DEMO_STORY, copy_demo_stories
from tests.test_intake_server import FIXTURES, FixtureServer, body, front, make_root, serve, settings, story_files

CANONICAL = "https://news.example.org/en/20161230-syria-regime-emboldened-russia-backed-peace-talks"
SYRIA = "stories/2016/12/30/syrian-regime-emboldened-ahead-of-russia-backed-peace-talks.md"

# Everything around the article in the fixture: navigation, skip link, adverts, share bars, the newsletter
# promo, related and most-read links, the cookie banner, the app promo, breadcrumb, tags, footer.
BOILERPLATE = [
    "Skip to main content",
    "Main menu",
    "Africa",
    "Americas",
    "Watch live",
    "Search the site",
    "Advertising",
    "Advertisement",
    "ads.example.net",
    "Sponsored",
    "winter deals",
    "Share",
    "Facebook",
    "Twitter",
    "WhatsApp",
    "Copy link",
    "Daily newsletter",
    "Receive essential international news every morning",
    "Subscribe",
    "Your email",
    "Read more",
    "Nationwide Syria ceasefire takes effect",
    "Aleppo evacuation complete",
    "Kazakhstan ready to host",
    "Most read",
    "Paris steps up New Year security",
    "Obama expels 35 Russian diplomats",
    "cookies",
    "Accept all",
    "Refuse all",
    "Manage my cookie settings",
    "Download the France 24 app",
    "Take international news everywhere",
    "Home ›",
    "About us",
    "Legal notice",
    "All rights reserved",
    "dataLayer",
    "alert(",
    "Issued on",
]


@pytest.fixture
def http_server() -> Iterator[FixtureServer]:
    yield from serve()


def plain(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def article_page(*, head: str = "", lang: str = "en", title: str = "Harbour reopens after storm repairs") -> str:
    paragraphs = "".join(
        f"<p>Paragraph {n}: the harbour master said repair crews had worked through the night to clear the "
        f"breakwater, and that fishing boats would be allowed back to the inner basin from Thursday morning.</p>"
        for n in range(1, 5)
    )
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>{head}</head>'
        f'<body><nav><a href="/">Home</a> <a href="/local/">Local</a></nav><main><article><h1>{title}</h1>'
        f'{paragraphs}<p>More in <a href="/local/harbour-history">our harbour history</a>.</p>'
        f"</article></main><footer>© Example Gazette</footer></body></html>"
    )


# --- the cluttered news page ------------------------------------------------------------------------


def test_cluttered_news_page_becomes_the_article_and_nothing_else(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/en/20161230-syria.html", "article-cluttered.html", "text/html; charset=utf-8")
    root = make_root(tmp_path)
    report = import_page(settings(root), url)
    assert (report.written, report.failed, report.warnings) == (1, [], [])
    assert list(story_files(root)) == [SYRIA]
    assert front(root / SYRIA) == {
        "title": "Syrian regime emboldened ahead of Russia-backed peace talks",
        "published": "2016-12-30T05:30:00+01:00",
        "summary": "Victory in Aleppo has strengthened President Bashar al-Assad’s hand ahead of planned peace talks "
        "brokered by Russia, Syria expert Hilal Khashan tells FRANCE 24, noting that regime change in Damascus "
        "is no longer on the agenda.",
        "section": "Syria",
        "url": CANONICAL,
        "byline": "FRANCE 24",
        "image": {
            # The page's relative og:image, made absolute against its canonical address.
            "src": "https://news.example.org/media/2016/12/30/assad-parliament.jpg",
            "alt": "Syrian President Bashar al-Assad waving before addressing the new parliament in Damascus on "
            "June 7, 2016.",
        },
        "tags": ["Syria", "Russia", "Turkey"],
        "lang": "en",
    }
    text = (root / SYRIA).read_text(encoding="utf-8")
    for phrase in BOILERPLATE:
        assert phrase not in text, phrase
    # The body reads exactly like the article: the same paragraphs as the hand-cleaned demo story.
    s = settings(root)
    (imported,) = load_stories(s.stories_dir, s.root, s.base_url).stories
    demo_root = root.parent / "demo"
    copy_demo_stories(demo_root / "stories")
    demo, errors, _ = read_story(demo_root / "stories" / DEMO_STORY, demo_root, demo_root / "stories", s.base_url)
    assert demo is not None and errors == []
    assert [plain(b.html) for b in imported.blocks] == [plain(b.html) for b in demo.blocks]
    assert "[Astana](https://news.example.org/en/tag/astana/)" in body(root / SYRIA)


def test_the_same_page_again_is_not_downloaded_twice(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/article.html", "article-cluttered.html", "text/html", etag='"a1"')
    root = make_root(tmp_path)
    assert import_page(settings(root), url).written == 1
    before = story_files(root)
    again = import_page(settings(root), url)
    assert (again.written, again.updated, again.unchanged) == (0, 0, 1)
    assert http_server.hits("/article.html")[1]["if-none-match"] == '"a1"'
    assert story_files(root) == before


def test_a_page_after_the_feed_entry_of_the_same_article_updates_that_story(tmp_path: Path) -> None:
    feed = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>F24</title>
<item><title>Syrian regime emboldened ahead of peace talks</title><link>{CANONICAL}</link>
<guid>{CANONICAL}</guid><pubDate>Fri, 30 Dec 2016 05:30:00 +0100</pubDate>
<description>Victory in Aleppo has strengthened Assad's hand.</description></item></channel></rss>"""
    (tmp_path / "f24.xml").write_text(feed, encoding="utf-8")
    root = make_root(tmp_path)
    import_feed(settings(root), str(tmp_path / "f24.xml"))
    (first,) = story_files(root)
    report = import_page(settings(root), str(FIXTURES / "article-cluttered.html"))
    assert (report.written, report.updated) == (0, 1)
    assert list(story_files(root)) == [first]  # the story keeps the file the feed gave it
    assert front(root / first)["title"] == "Syrian regime emboldened ahead of Russia-backed peace talks"
    assert body(root / first).startswith("Building on a ceasefire brokered this week")


# --- bad pages --------------------------------------------------------------------------------------


def test_a_page_with_no_article_is_a_clear_error(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    source = str(FIXTURES / "not-an-article.html")
    report = import_page(settings(root), source)
    assert len(report.failed) == 1
    assert re.fullmatch(
        re.escape(source) + r": no article found in the page \((only \d+ words? of main text|no main text)\); "
        r"is it an article page\?",
        report.failed[0],
    )
    assert story_files(root) == {}


def test_a_page_without_a_date_needs_one_given(tmp_path: Path) -> None:
    page = tmp_path / "undated.html"
    page.write_text(article_page(), encoding="utf-8")
    root = make_root(tmp_path)
    report = import_page(settings(root), str(page))
    assert report.failed == [
        f"{page}: no publication date found in the page; give one with --published 2024-03-05T07:30:00+01:00"
    ]
    given = parse_datetime("2024-03-05T07:30:00+01:00")
    ok = import_page(settings(root), str(page), published=given, canonical="https://gazette.example.org/harbour")
    assert ok.written == 1
    path = root / "stories/2024/03/05/harbour-reopens-after-storm-repairs.md"
    assert front(path)["published"] == "2024-03-05T07:30:00+01:00"
    assert front(path)["url"] == "https://gazette.example.org/harbour"
    assert "[our harbour history](https://gazette.example.org/local/harbour-history)" in body(path)
    assert body(path).startswith("Paragraph 1: the harbour master said")  # the <h1> is the title, not the body


def test_article_structure_survives_as_markdown(tmp_path: Path) -> None:
    para = (
        "<p>The harbour master said repair crews had worked through the night to clear the breakwater, and that "
        "fishing boats would be allowed back to the inner basin from Thursday morning, weather permitting.</p>"
    )
    page = tmp_path / "structured.html"
    page.write_text(
        '<html lang="en"><head><title>Harbour reopens - Gazette</title><meta property="og:title" '
        'content="Harbour reopens"><link rel="canonical" href="https://gazette.example.org/harbour">'
        '<meta property="article:published_time" content="2024-03-05T07:45:00+01:00"></head><body><article>'
        f"<h1>Harbour reopens</h1>{para}<h2>What the crews found</h2>{para}"
        '<figure><img src="/img/breakwater.jpg" alt="The breakwater at low tide"></figure><p>After the picture.</p>'
        "<blockquote><p>“We have never seen damage like this,” she said.</p></blockquote>"
        f"<ul><li>Boats return Thursday</li><li>Ferry on Friday</li></ul>{para}</article></body></html>",
        encoding="utf-8",
    )
    root = make_root(tmp_path)
    assert import_page(settings(root), str(page)).written == 1
    (path,) = story_files(root)
    text = body(root / path)
    assert not text.startswith("#")
    assert "\n\n## What the crews found\n\n" in text
    assert (
        "\n\n![The breakwater at low tide](https://gazette.example.org/img/breakwater.jpg)\n\nAfter the picture.\n\n"
    ) in text
    assert (
        "\n\n> “We have never seen damage like this,” she said.\n\n- Boats return Thursday\n- Ferry on Friday\n\n"
        in text
    )


@pytest.mark.parametrize(
    ("meta", "published", "what"),
    [
        ('<meta property="article:published_time" content="2024-03-05">', "2024-03-05T00:00:00+01:00", "only a date"),
        (
            '<meta property="article:published_time" content="2024-03-05T07:45:00">',
            "2024-03-05T07:45:00+01:00",
            "a time without a UTC offset",
        ),
    ],
)
def test_dates_without_offsets_are_read_in_the_newsletter_time_zone_and_said(
    tmp_path: Path, meta: str, published: str, what: str
) -> None:
    page = tmp_path / "local-time.html"
    page.write_text(article_page(head=meta), encoding="utf-8")
    root = make_root(tmp_path)
    report = import_page(settings(root), str(page))
    assert report.warnings == [
        f"{page}: the page gives {what}; published set to {published} (use --published to correct it)"
    ]
    (path,) = story_files(root)
    assert front(root / path)["published"] == published


def test_a_saved_page_without_an_address_drops_relative_links_and_is_still_idempotent(tmp_path: Path) -> None:
    page = tmp_path / "saved.html"
    page.write_text(
        article_page(head='<meta property="article:published_time" content="2024-03-05T07:45:00+01:00">'),
        encoding="utf-8",
    )
    root = make_root(tmp_path)
    assert import_page(settings(root), str(page)).written == 1
    (path,) = story_files(root)
    meta = front(root / path)
    assert "url" not in meta
    text = body(root / path)
    assert "More in our harbour history." in text  # the words stay; a link to nowhere does not
    assert "](" not in text
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # new bytes, same article
    again = import_page(settings(root), str(page))
    assert (again.written, again.unchanged) == (0, 1)


FRENCH = """<!DOCTYPE html><html lang="fr"><head>{meta}<title>Les vendanges précoces inquiètent les vignerons</title>
<meta property="article:published_time" content="2024-09-02T08:00:00+02:00"></head><body>
<nav><a href="/">Accueil</a></nav><article><h1>Les vendanges précoces inquiètent les vignerons</h1>
<p>Dans le Bordelais, les vignerons ont commencé la récolte avec près de trois semaines d'avance. « Nous n'avons
jamais vu ça », déplore une productrice de Saint-Émilion, inquiète pour la qualité des raisins.</p>
<p>La sécheresse de l'été a concentré les sucres, mais l'acidité fait défaut, préviennent les œnologues. Les
coopératives espèrent néanmoins un millésime honorable, à condition que la météo reste clémente.</p>
<p>Pour les saisonniers, arrivés plus tôt que prévu, l'hébergement reste un casse-tête. Les mairies ont ouvert des
gymnases.</p></article></body></html>"""


@pytest.mark.parametrize(
    ("meta", "encoding", "content_type"),
    [
        ('<meta charset="utf-8">', "cp1252", "text/html"),  # declared UTF-8, saved in windows-1252
        ("", "cp1252", "text/html"),  # no declaration anywhere
        ('<meta charset="iso-8859-1">', "utf-8", "text/html; charset=iso-8859-1"),  # labelled latin-1, is UTF-8
        ('<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">', "cp1252", "text/html"),
    ],
)
def test_pages_with_wrong_or_missing_charsets(
    http_server: FixtureServer, tmp_path: Path, meta: str, encoding: str, content_type: str
) -> None:
    url = http_server.add("/vendanges.html", FRENCH.format(meta=meta).encode(encoding), content_type=content_type)
    root = make_root(tmp_path)
    report = import_page(settings(root), url)
    assert report.failed == []
    (path,) = story_files(root)
    assert path == "stories/2024/09/02/les-vendanges-precoces-inquietent-les-vignerons.md"
    assert front(root / path)["title"] == "Les vendanges précoces inquiètent les vignerons"
    text = body(root / path)
    assert "« Nous n'avons jamais vu ça », déplore une productrice de Saint-Émilion" in text
    assert "œnologues" in text


def test_an_http_main_image_is_left_out_with_a_warning(tmp_path: Path) -> None:
    head = (
        '<meta property="article:published_time" content="2024-03-05T07:45:00+01:00">'
        '<meta property="og:image" content="http://gazette.example.org/harbour.jpg">'
        '<link rel="canonical" href="https://gazette.example.org/harbour">'
    )
    page = tmp_path / "http-image.html"
    page.write_text(article_page(head=head), encoding="utf-8")
    root = make_root(tmp_path)
    report = import_page(settings(root), str(page))
    assert report.warnings == [
        f"{page}: image 'http://gazette.example.org/harbour.jpg' left out: stories only embed absolute https images"
    ]
    (path,) = story_files(root)
    assert "image" not in front(root / path)
    assert front(root / path)["url"] == "https://gazette.example.org/harbour"
