"""The web archive: every page the emails link to exists, the lists, private stories and editions,
incremental rebuilds, and the no-dead-link walk over every email and page."""

from __future__ import annotations

import email
import json
import os
import re
import shutil
from datetime import date, timedelta
from email import policy
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag

import feedparser
import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.edition import build, write_edition
from newsletter.web import publish_edition, rebuild_site
from newsletter.web.site import file_for
from tests.helpers import placeholder_png, write_story
from tests.helpers.uitext import english_left, visible_text

BASE = "https://newsletter.example.org"
DAY = "2016-12-30"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "href" and value:
                self.hrefs.append(value)
            if name == "id" and value:
                self.ids.add(value)


def links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def add_editions(root: Path) -> None:
    """A second edition (a story without a url, a private one) and a third one (private by config)."""
    write_story(
        root,
        "2016/12/31/no-url-story.md",
        'title: "A story with no page of its own elsewhere"\npublished: 2016-12-30T09:00:00+01:00\n'
        'summary: "Standfirst."\nsection: World\npriority: 3',
        "First paragraph of the full body.\n\nSecond paragraph.\n\nThird, only on its page.\n",
    )
    write_story(
        root,
        "2016/12/31/private-story.md",
        'title: "An internal note"\npublished: 2016-12-30T10:00:00+01:00\npriority: 5\nprivate: true',
    )
    write_story(
        root,
        "2017/01/01/hidden.md",
        'title: "Only for subscribers"\npublished: 2016-12-31T10:00:00+01:00\nsummary: "Not in the lists."',
    )
    (root / "newsletter.toml").write_text('[site]\nprivate = ["2017-01-01"]\n', encoding="utf-8")


def walk_dead_links(root: Path) -> tuple[int, list[str]]:
    """Every href under base_url in every email (.eml HTML and text parts) and every page of site/ →
    (links checked, those that resolve to no file)."""
    settings = load_settings(root)
    checked, dead = 0, []
    documents: list[tuple[str, str]] = []
    for eml in sorted((root / "outbox").rglob("*.eml")):
        msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
        for part in msg.walk():
            if part.get_content_type() == "text/html":
                documents.append((str(eml), part.get_content()))  # type: ignore[attr-defined]
            elif part.get_content_type() == "text/plain":
                text = part.get_content()  # type: ignore[attr-defined]
                documents.append((str(eml), "".join(f'<a href="{u}">' for u in re.findall(r"https?://\S+", text))))
    for html in sorted((root / "site").rglob("*.html")):
        documents.append((str(html), html.read_text(encoding="utf-8")))
    for xml in ("feed.xml", "sitemap.xml"):
        text = (root / "site" / xml).read_text(encoding="utf-8")
        documents.append(
            (
                xml,
                "".join(
                    f'<a href="{u}">' for u in re.findall(r"<loc>([^<]+)</loc>|href=\"([^\"]+)\"", text) for u in u if u
                ),
            )
        )
    for where, html in documents:
        for href in links(html).hrefs:
            url, fragment = urldefrag(href)
            if not url.startswith(BASE):
                continue
            if url.startswith((f"{BASE}/u/", f"{BASE}/manage/")) or url in (f"{BASE}/subscribe",):
                continue  # answered by the web app, not a file
            checked += 1
            target = file_for(settings, url)
            if target is None or not target.is_file():
                dead.append(f"{where}: {href}")
            elif fragment and fragment not in links(target.read_text(encoding="utf-8")).ids:
                dead.append(f"{where}: {href} (no id {fragment!r})")
    return checked, dead


def test_build_writes_the_web_side_of_its_edition(demo_root: Path) -> None:
    out = run("build", "--root", str(demo_root))
    assert "web archive: 1 edition(s)" in out
    site = demo_root / "site"
    for rel in (
        "editions/2016-12-30/index.html",
        "index.html",
        "latest/index.html",
        "feed.xml",
        "sitemap.xml",
        "robots.txt",
        "404.html",
        "unsubscribe/index.html",
        "assets/site.css",
        "2016/12/30/syrian-regime-emboldened-ahead-of-russia-backed-peace-talks/index.html",
    ):
        assert (site / rel).is_file(), rel
    page = (site / "editions/2016-12-30/index.html").read_text(encoding="utf-8")
    # The same stories, in the email's order.
    manifest = json.loads((demo_root / "outbox/2016-12-30/manifest.json").read_text(encoding="utf-8"))
    titles = [s["title"] for s in manifest["stories"]]
    positions = [page.index(t.replace("’", "’")) for t in titles]
    assert positions == sorted(positions)
    for needle in (
        '<html lang="en" dir="ltr">',
        f'<link rel="canonical" href="{BASE}/editions/{DAY}/">',
        '<meta property="og:description" content="Victory in Aleppo',
        # The lead's photo as published with the archive: a rendition under images/, named by content.
        '<meta property="og:image" content="https://newsletter.example.org/images/',
        '<meta name="twitter:card" content="summary_large_image">',
        "<header",
        "<main",
        "<article",
    ):
        assert needle in page, needle
    assert "<script" not in page and "Good morning" not in page  # no script, nothing personal
    css = (site / "assets/site.css").read_text(encoding="utf-8")
    assert "prefers-color-scheme: dark" in css


def test_story_pages_carry_the_full_body_and_private_stays_out_of_the_lists(demo_root: Path) -> None:
    add_editions(demo_root)
    for day in ("2016-12-30", "2016-12-31", "2017-01-01"):
        run("build", "--root", str(demo_root), "--date", day)
    site = demo_root / "site"
    # A story without a url: the email links to its page, which has the whole body (the email an excerpt).
    html = (demo_root / "outbox/2016-12-31/newsletter.html").read_text(encoding="utf-8")
    story_url = f"{BASE}/2016/12/31/no-url-story"
    assert f'href="{story_url}"' in html
    page = (site / "2016/12/31/no-url-story/index.html").read_text(encoding="utf-8")
    assert "Third, only on its page." in page and f'<link rel="canonical" href="{story_url}">' in page
    private_page = (site / "2016/12/31/private-story/index.html").read_text(encoding="utf-8")
    assert '<meta name="robots" content="noindex">' in private_page
    sitemap = (site / "sitemap.xml").read_text(encoding="utf-8")
    feed = feedparser.parse((site / "feed.xml").read_bytes())
    index = (site / "index.html").read_text(encoding="utf-8")
    assert story_url in sitemap and "private-story" not in sitemap
    assert "2017-01-01" not in sitemap and "2017-01-01" not in index
    assert [e.link for e in feed.entries] == [f"{BASE}/editions/2016-12-31/", f"{BASE}/editions/{DAY}/"]
    assert "An internal note" not in json.dumps([e.content for e in feed.entries])
    assert "Third, only on its page." in feed.entries[0].content[0].value  # full content
    assert not feed.bozo
    # latest/ skips the private edition; the private edition's page exists (its email links to it).
    assert f"url={BASE}/editions/2016-12-31/" in (site / "latest/index.html").read_text(encoding="utf-8")
    assert (site / "editions/2017-01-01/index.html").is_file()
    # Newest first.
    assert index.index("2016-12-31") < index.index("2016-12-30")


def test_no_dead_link_in_any_email_or_page(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_editions(demo_root)
    for day in ("2016-12-30", "2016-12-31", "2017-01-01"):
        run("build", "--root", str(demo_root), "--date", day)
    (demo_root / "subscribers.csv").write_text("email,name\nann@example.org,Ann\n", encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "s3cret-for-tests")
    run("send", "--root", str(demo_root), "--date", "2016-12-31", "--subscribers", "subscribers.csv")
    assert list((demo_root / "outbox/2016-12-31/mail").glob("*.eml"))
    checked, dead = walk_dead_links(demo_root)
    assert dead == []
    assert checked > 100


def test_a_build_rewrites_only_its_own_pages_and_the_lists(demo_root: Path) -> None:
    add_editions(demo_root)
    run("build", "--root", str(demo_root), "--date", DAY)
    site = demo_root / "site"
    first = {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}
    settings = load_settings(demo_root)
    result = build(settings, date(2016, 12, 31))
    write_edition(result)
    report = publish_edition(settings, result.manifest, result.edition.stories)
    written = {p.relative_to(site).as_posix() for p in report.written if p.is_relative_to(site)}
    assert written == {
        "editions/2016-12-31/index.html",
        "2016/12/31/no-url-story/index.html",
        "2016/12/31/private-story/index.html",
        "index.html",
        "latest/index.html",
        "feed.xml",
        "sitemap.xml",
    }
    for path, mtime in first.items():
        if path.relative_to(site).as_posix() not in written:
            assert path.stat().st_mtime_ns == mtime, path


def test_index_is_paginated_and_site_rebuilds_everything(empty_root: Path) -> None:
    settings = load_settings(empty_root)
    start = date(2017, 3, 1)
    for n in range(23):
        day = start + timedelta(days=n)
        write_story(empty_root, f"s/{n}.md", f'title: "Story {n}"\npublished: {day.isoformat()}T04:00:00+01:00')
    for n in range(23):
        result = build(settings, start + timedelta(days=n))
        write_edition(result)
    report = rebuild_site(settings)
    assert report.editions == 23 and report.warnings == []
    site = empty_root / "site"
    first = (site / "index.html").read_text(encoding="utf-8")
    second = (site / "page/2/index.html").read_text(encoding="utf-8")
    assert "Story 22" in first and "Story 3" in first and "Story 2<" not in first
    assert "Story 2" in second and "Story 0" in second
    assert f'href="{BASE}/page/2/" rel="next"' in first and f'href="{BASE}/" rel="prev"' in second
    again = rebuild_site(settings)
    assert again.written == [] and again.unchanged > 0  # nothing changed: nothing rewritten
    files = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    shutil.rmtree(site)
    shared = rebuild_site(settings, processes=3)  # the editions shared out among worker processes
    assert shared.editions == 23 and shared.warnings == []
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == files
    out = run("site", "--root", str(empty_root))
    assert "23 edition(s), 0 file(s) written" in out


def test_a_story_url_on_a_reserved_path_gets_no_page(empty_root: Path) -> None:
    write_story(
        empty_root,
        "a.md",
        f'title: "Feed"\npublished: 2017-03-01T04:00:00+01:00\nurl: {BASE}/feed.xml',
    )
    settings = load_settings(empty_root)
    result = build(settings, date(2017, 3, 1))
    report = publish_edition(settings, result.manifest, result.edition.stories)
    assert report.warnings == [
        f"stories/a.md: field 'url': {BASE}/feed.xml is a path the archive uses; no page written"
    ]
    assert b"<feed" in (empty_root / "site/feed.xml").read_bytes()


def test_each_language_edition_has_its_part_of_the_archive(languages_root: Path) -> None:
    run("build", "--root", str(languages_root))
    site = languages_root / "site"
    for prefix in ("", "fr/", "ar/"):
        assert (site / prefix / "editions/2016-12-30/index.html").is_file(), prefix
        assert (site / prefix / "index.html").is_file() and (site / prefix / "feed.xml").is_file()
    arabic = (site / "ar/editions/2016-12-30/index.html").read_text(encoding="utf-8")
    assert 'lang="ar" dir="rtl"' in arabic and f'href="{BASE}/ar/editions/2016-12-30/"' in arabic
    robots = (site / "robots.txt").read_text(encoding="utf-8")
    assert f"Sitemap: {BASE}/fr/sitemap.xml" in robots
    checked, dead = walk_dead_links(languages_root)
    assert dead == [] and checked > 50
    assert "3 edition(s)" in run("site", "--root", str(languages_root))


@pytest.mark.parametrize("lang", ["fr", "ar"])
def test_archive_pages_of_a_language_edition_have_no_english_interface_string(languages_root: Path, lang: str) -> None:
    run("build", "--root", str(languages_root))
    folder = languages_root / "site" / lang
    stories = sorted(p for p in folder.glob("2*/**/index.html"))
    assert stories, f"no story page under site/{lang}/"
    pages = {
        "edition": folder / "editions/2016-12-30/index.html",
        "story": stories[0],
        "index": folder / "index.html",
        "unsubscribe": folder / "unsubscribe/index.html",
        "404": folder / "404.html",
    }
    direction = "rtl" if lang == "ar" else "ltr"
    for name, path in pages.items():
        html = path.read_text(encoding="utf-8")
        assert f'<html lang="{lang}" dir="{direction}">' in html, (lang, name)
        # Story text is the story's own (marked with its lang when it differs): only the interface is checked.
        interface = re.sub(r'<article[^>]* lang="(?!' + lang + r')[^"]*".*?</article>', " ", html, flags=re.S)
        assert english_left(visible_text(interface), lang) == [], (lang, name)
        assert f'name="lang" value="{lang}"' in html or name == "unsubscribe", (lang, name)
    expected = {"fr": ("Toutes les éditions", "Se désabonner"), "ar": ("جميع الأعداد", "إلغاء الاشتراك")}[lang]
    index = pages["index"].read_text(encoding="utf-8")
    assert all(words in index for words in expected)
    assert f"/subscribe?lang={lang}" in index
    # The default edition keeps its English pages, at the root.
    english = (languages_root / "site" / "404.html").read_text(encoding="utf-8")
    assert '<html lang="en" dir="ltr">' in english and "Page not found" in english


def test_site_renders_again_only_the_editions_whose_inputs_changed(empty_root: Path) -> None:
    settings = load_settings(empty_root)
    start = date(2017, 3, 1)
    stories = []
    for n in range(4):
        day = start + timedelta(days=n)
        stories.append(write_story(empty_root, f"s/{n}.md", f'title: "Story {n}"\npublished: {day}T04:00:00+01:00'))
        write_edition(build(settings, day))
    first = rebuild_site(settings)
    assert (first.editions, first.skipped) == (4, 0) and first.written
    again = rebuild_site(settings)
    assert (again.editions, again.skipped, again.written) == (4, 4, [])
    # Not even read: a story changed behind the key's back (same size, same modification time) goes unseen.
    site = empty_root / "site"
    page = site / "editions" / "2017-03-02" / "index.html"
    text, st = stories[1].read_text(encoding="utf-8"), stories[1].stat()
    stories[1].write_text(text.replace("Story 1", "Story X"), encoding="utf-8")
    os.utime(stories[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert rebuild_site(settings).skipped == 4 and "Story X" not in page.read_text(encoding="utf-8")
    # Edited (a new modification time): that edition alone is rendered again, then the lists that show it.
    stories[1].write_text(text.replace("Story 1", "Story Y"), encoding="utf-8")
    os.utime(stories[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    edited = rebuild_site(settings)
    assert (edited.editions, edited.skipped) == (4, 3) and "Story Y" in page.read_text(encoding="utf-8")
    assert {p.relative_to(site).as_posix() for p in edited.written if p.is_relative_to(site)} >= {
        "editions/2017-03-02/index.html",
        "index.html",
    }
    # A page gone from site/ brings its edition back; a template edited brings every edition back.
    page.unlink()
    assert rebuild_site(settings).skipped == 3 and page.is_file()
    (empty_root / "templates").mkdir(exist_ok=True)
    (empty_root / "templates" / "notes.txt").write_text("a designer's note\n", encoding="utf-8")
    assert rebuild_site(load_settings(empty_root)).skipped == 0
    # A photo under stories/ (its published name follows its bytes) brings every edition back too.
    assert rebuild_site(load_settings(empty_root)).skipped == 4
    (empty_root / "stories" / "photo.png").write_bytes(placeholder_png(4, 3))
    assert rebuild_site(load_settings(empty_root)).skipped == 0
