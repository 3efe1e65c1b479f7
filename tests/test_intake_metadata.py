"""Article pages as news sites write them: the instant, section, title and metadata the page states, and
only the article. The pages under fixtures/intake/pages were written for these tests, each after a
pattern met on real sites (JSON-LD @graph, a modified time first, microdata, a CMS-name <title>, …);
expected.json says what a reader should get from each."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from newsletter.intake import import_page
from newsletter.intake.convert import parse_datetime
from newsletter.intake.metadata import cut_site_name, parse_instant
from tests.test_intake_server import FIXTURES, body, front, make_root, settings, story_files

PAGES = FIXTURES / "pages"
EXPECTED: dict[str, dict[str, Any]] = {
    k: v for k, v in json.loads((PAGES / "expected.json").read_text(encoding="utf-8")).items() if k.endswith(".html")
}


def _import(tmp_path: Path, name: str, config: str = "", **options: Any) -> tuple[Any, dict[str, Any], str]:
    root = make_root(tmp_path, config)
    report = import_page(settings(root), str(PAGES / name), **options)
    assert report.failed == []
    (path,) = story_files(root)
    return report, front(root / path), body(root / path)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_page_gives_what_it_states_and_only_the_article(tmp_path: Path, name: str) -> None:
    want = EXPECTED[name]
    report, meta, text = _import(tmp_path, name)
    assert meta["published"] == want["published"]
    assert meta.get("section") == want["section"]
    assert meta["title"] == want["title"]
    for key in ("url", "summary", "byline", "tags"):
        if key in want:
            assert meta.get(key) == want[key], key
    if "image" in want:
        assert meta["image"]["src"] == want["image"]
    for phrase in want["article"]:
        assert phrase in text, phrase
    whole = (PAGES / name).read_text(encoding="utf-8")
    for phrase in want["boilerplate"]:
        assert phrase in whole, f"{phrase!r} is not in the page: the check would prove nothing"
        assert phrase not in text, phrase
    dated = [w for w in report.warnings if "only a date" in w]
    assert len(dated) == (1 if want.get("date_only") else 0)


def test_a_keyword_list_is_never_the_section_and_at_most_five_tags(tmp_path: Path) -> None:
    _report, meta, _text = _import(tmp_path, "de-graph-keywords.html")
    assert meta["section"] == "Wirtschaft"  # the breadcrumb, not "Werft, Hafen, Ausbildung, …"
    assert meta["tags"] == ["Werft", "Hafen", "Ausbildung", "Lehrlinge", "Schiffbau"]


def test_without_any_section_the_configured_default_applies(tmp_path: Path) -> None:
    _report, meta, _text = _import(tmp_path, "en-twitter-jsonld.html")
    assert "section" not in meta  # the story's own default ("News") then applies
    _report, meta, _text = _import(tmp_path / "b", "en-twitter-jsonld.html", '[intake]\nsection = "Coast"\n')
    assert meta["section"] == "Coast"
    _report, meta, _text = _import(tmp_path / "c", "de-graph-keywords.html", '[intake]\nsection = "Coast"\n')
    assert meta["section"] == "Wirtschaft"  # a default does not replace what the page states
    _report, meta, _text = _import(tmp_path / "d", "de-graph-keywords.html", section="Region")
    assert meta["section"] == "Region"  # --section does


def test_a_breadcrumb_class_on_the_body_is_not_a_trail(tmp_path: Path) -> None:
    page = tmp_path / "body-class.html"
    page.write_text(
        '<html lang="en"><head><title>Harbour reopens</title>'
        '<meta property="article:published_time" content="2024-03-05T07:45:00+01:00"></head>'
        '<body class="has-breadcrumb"><nav><a href="/">Home</a> <a href="/sport/">Sport</a></nav><article>'
        "<h1>Harbour reopens</h1>"
        + "<p>The harbour master said repair crews had worked through the night to clear the breakwater, and "
        "that fishing boats would be allowed back to the inner basin from Thursday morning.</p>"
        * 3
        + '</article><footer><a href="/legal">Legal notice</a></footer></body></html>',
        encoding="utf-8",
    )
    root = make_root(tmp_path)
    assert import_page(settings(root), str(page)).failed == []
    (path,) = story_files(root)
    assert "section" not in front(root / path)


def test_published_option_overrides_a_date_only_page_without_a_warning(tmp_path: Path) -> None:
    given = parse_datetime("2024-07-08T06:10:00-03:00")
    report, meta, _text = _import(tmp_path, "pt-date-only.html", published=given)
    assert meta["published"] == "2024-07-08T06:10:00-03:00"
    assert report.warnings == []


def test_a_page_in_japanese_is_an_article_and_measured_in_characters(tmp_path: Path) -> None:
    _report, meta, text = _import(tmp_path, "ja-article.html")
    assert meta["lang"] == "ja"
    assert text.startswith("かつて「シャッター街」と呼ばれた")


def test_a_modified_time_is_never_the_published_one(tmp_path: Path) -> None:
    page = tmp_path / "modified-only.html"
    page.write_text(
        '<html lang="en"><head><title>Harbour reopens</title>'
        '<meta property="article:modified_time" content="2024-03-06T10:00:00+01:00">'
        '<script type="application/ld+json">{"@type": "NewsArticle", "dateModified": "2024-03-06T10:00:00+01:00"}'
        "</script></head><body><article><h1>Harbour reopens</h1>"
        '<p><time class="updated" datetime="2024-03-06T10:00:00+01:00">Updated 6 March</time></p>'
        '<p class="date"><time datetime="2024-03-05T07:45:00+01:00">5 March, 07:45</time></p>'
        + "<p>The harbour master said repair crews had worked through the night to clear the breakwater, and "
        "that fishing boats would be allowed back to the inner basin from Thursday morning.</p>"
        * 3
        + "</article></body></html>",
        encoding="utf-8",
    )
    root = make_root(tmp_path)
    report = import_page(settings(root), str(page))
    assert report.failed == [] and report.warnings == []
    (path,) = story_files(root)
    assert front(root / path)["published"] == "2024-03-05T07:45:00+01:00"


@pytest.mark.parametrize(
    "meta",
    [
        '<meta name="datePublished" content="2024-03-05T07:45:00+01:00">',
        '<meta name="parsely-pub-date" content="2024-03-05T06:45:00Z">',
        '<meta name="DC.date.issued" content="2024-03-05T07:45:00+01:00">',
        '<meta itemprop="datePublished" content="2024-03-05T07:45:00+01:00">',
    ],
)
def test_published_date_metas_other_sites_use(tmp_path: Path, meta: str) -> None:
    page = tmp_path / "meta.html"
    page.write_text(
        f'<html lang="en"><head><title>Harbour reopens</title>{meta}'
        '<meta name="date" content="2024-03-09"></head><body><article><h1>Harbour reopens</h1>'
        + "<p>The harbour master said repair crews had worked through the night to clear the breakwater, and "
        "that fishing boats would be allowed back to the inner basin from Thursday morning.</p>"
        * 3
        + "</article></body></html>",
        encoding="utf-8",
    )
    root = make_root(tmp_path)
    report = import_page(settings(root), str(page))
    assert report.failed == [] and report.warnings == []
    (path,) = story_files(root)
    assert parse_datetime(front(root / path)["published"]) == parse_datetime("2024-03-05T07:45:00+01:00")


def test_a_cms_name_title_gives_way_to_the_heading(tmp_path: Path) -> None:
    page = tmp_path / "cms.html"
    page.write_text(
        '<html lang="en"><head><title>WordPress</title>'
        '<meta property="article:published_time" content="2024-03-05T07:45:00+01:00"></head><body><article>'
        "<h1>Night ferry returns to the island</h1>"
        + "<p>The night ferry to the island runs again from Monday, the operator said, after a winter in which "
        "passengers had to wait for the first morning crossing.</p>" * 3 + "</article></body></html>",
        encoding="utf-8",
    )
    root = make_root(tmp_path)
    assert import_page(settings(root), str(page)).failed == []
    (path,) = story_files(root)
    assert front(root / path)["title"] == "Night ferry returns to the island"


@pytest.mark.parametrize(
    ("title", "names", "expected"),
    [
        ("Storm closes the pier | The Japan Times", ["The Japan Times"], "Storm closes the pier"),
        ("Sciopero dei treni - La Stampa", ["la stampa"], "Sciopero dei treni"),
        ("Rheinbote: Werft stellt ein", ["Rheinbote"], "Werft stellt ein"),
        ("Left - Right: a debate | Gazette", ["Gazette"], "Left - Right: a debate"),
        ("Left - Right", ["Gazette"], "Left - Right"),  # no site name: nothing cut
        ("Gazette", ["Gazette"], "Gazette"),  # nothing would be left
    ],
)
def test_site_names_are_cut_only_when_they_match(title: str, names: list[str], expected: str) -> None:
    assert cut_site_name(title, names) == expected


@pytest.mark.parametrize(
    ("text", "iso", "has_time"),
    [
        ("2024-03-05T07:05:00+01:00", "2024-03-05T07:05:00+01:00", True),
        ("2024-03-05T07:05:00.000+0100", "2024-03-05T07:05:00+01:00", True),
        ("2024-03-05 07:05:00 +0100", "2024-03-05T07:05:00+01:00", True),
        ("2024-03-05T06:05:00Z", "2024-03-05T06:05:00+00:00", True),
        ("2024-03-05T07:05", "2024-03-05T07:05:00", True),
        ("2024-03-05", "2024-03-05T00:00:00", False),
        ("Tue, 05 Mar 2024 07:05:00 +0100", "2024-03-05T07:05:00+01:00", True),
    ],
)
def test_instants_keep_their_offsets(text: str, iso: str, has_time: bool) -> None:
    moment, timed = parse_instant(text)
    assert moment is not None and moment.isoformat() == iso and timed is has_time


def test_a_mojibake_page_is_refused_with_one_line(tmp_path: Path) -> None:
    text = (
        "<html lang='fr'><head><meta charset='utf-8'><title>Les vendanges précoces inquiètent les vignerons</title>"
        "<meta property='article:published_time' content='2024-09-02T08:00:00+02:00'></head><body><article>"
        "<h1>Les vendanges précoces inquiètent les vignerons</h1>"
        + "<p>Dans le Bordelais, les vignerons ont commencé la récolte avec près de trois semaines d'avance, et "
        "la sécheresse de l'été a concentré les sucres ; l'acidité fait défaut, préviennent les œnologues.</p>"
        * 3
        + "</article></body></html>"
    )
    page = tmp_path / "garbled.html"
    page.write_bytes(text.encode("utf-8").decode("cp1252", errors="replace").encode("utf-8"))  # saved twice
    root = make_root(tmp_path)
    report = import_page(settings(root), str(page))
    assert len(report.failed) == 1
    assert re.fullmatch(
        re.escape(str(page)) + r": the text looks garbled \('.+'…\): the document's encoding is wrong and could not be "
        r"recognised; nothing imported",
        report.failed[0],
    )
    assert story_files(root) == {}


# --- our rules on what the extractor lets through ----------------------------------------------------


@pytest.mark.parametrize(
    ("html", "kept"),
    [
        # a list of other headlines, and the heading that introduced it
        (
            '<p>Story.</p><h3>Related</h3><ul><li><a href="/a">Other story</a></li>'
            '<li><a href="/b">Another</a></li></ul>',
            "<p>Story.</p>",
        ),
        # a list of the article's own points, with a link in one item, stays
        (
            '<ul><li>Boats return <a href="/t">Thursday</a></li><li>Ferry on Friday</li></ul>',
            '<ul><li>Boats return <a href="/t">Thursday</a></li><li>Ferry on Friday</li></ul>',
        ),
        ('<p>Story.</p><p>Lire aussi : <a href="/x">Autre article</a></p>', "<p>Story.</p>"),
        ("<p>Story.</p><p>Anzeige</p>", "<p>Story.</p>"),
        ("<p>Story.</p><p>Subscribe to our morning briefing</p>", "<p>Story.</p>"),
        # a thumbnail linking to another story goes; a photo linking to its own larger copy stays
        ('<p><a href="/other-story"><img src="/t/thumb.jpg" alt=""></a> Story.</p>', "<p> Story.</p>"),
        (
            '<p><a href="/img/big/photo.jpg"><img src="/img/photo.jpg" alt="Photo"></a></p>',
            '<p><a href="/img/big/photo.jpg"><img src="/img/photo.jpg" alt="Photo"></a></p>',
        ),
        ('<p><img src="/icons/share.png" width="24" height="24" alt="">Story.</p>', "<p>Story.</p>"),
        ("<p>By Jane Doe · 07:05</p><p>Story.</p>", "<p>Story.</p>"),
        ("<p>Read more about the plan in the council's own report, published in May.</p>", None),
    ],
)
def test_what_the_extractor_lets_through_is_pruned(html: str, kept: str | None) -> None:
    from newsletter.intake.clean import prune_article

    out = prune_article(html)
    if kept is None:  # a sentence that starts like a "read more" prompt but is the article's text
        assert out == html
    else:
        assert re.sub(r"^<div>|</div>$", "", out) == kept


def test_a_clutter_class_never_removes_the_article_itself() -> None:
    import lxml.html

    from newsletter.intake.clean import prune_page

    tree = lxml.html.fromstring(
        '<html><body><div class="promo-wrapper"><h1>Title</h1><p>The whole article is in here.</p></div>'
        '<div class="related"><a href="/a">Other</a></div></body></html>'
    )
    prune_page(tree)
    assert tree.xpath("//h1/text()") == ["Title"] and not tree.xpath("//*[@class='related']")


def test_a_page_in_another_charset_than_declared_is_read_in_the_real_one(tmp_path: Path) -> None:
    rows = [line.split("|") for line in (FIXTURES / "feeds" / "ru.txt").read_text(encoding="utf-8").splitlines()]
    paragraphs = "".join(f"<p>{title}. {text}</p>" for title, text in rows * 2)
    page = tmp_path / "ru.html"
    page.write_bytes(
        (
            '<html lang="ru"><head><meta charset="iso-8859-1"><title>Городской совет утвердил план</title>'
            '<meta property="article:published_time" content="2024-03-05T09:00:00+03:00"></head><body><article>'
            f"<h1>Городской совет утвердил план</h1>{paragraphs}</article></body></html>"
        ).encode("windows-1251")
    )
    root = make_root(tmp_path)
    report = import_page(settings(root), str(page))
    assert report.failed == []
    assert report.warnings == [f"{page}: declared ISO-8859-1 but is windows-1251; read as windows-1251"]
    (path,) = story_files(root)
    assert front(root / path)["title"] == "Городской совет утвердил план"
    assert rows[0][1] in body(root / path)
