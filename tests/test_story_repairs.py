"""Only the edition's own stories matter, and no character or body can break the morning email.

A broken file outside the window changes nothing; inside it, `build` stays strict unless --skip-invalid
while `send` sends what can be shown and names what it left out. Every C0/C1 control and non-character
is removed as a story is read (a form feed becomes a paragraph break); over-large or over-deep bodies
are refused before they are sanitised; a compile error that still happens names the story.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery.send import send_edition
from newsletter.delivery.sinks.memory import MemorySink
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.edition import build, load_stories, render_edition, select_edition
from newsletter.edition.stories import parse_story
from newsletter.errors import TemplateError
from tests.helpers import write_story

DAY = date(2016, 12, 30)
IN_WINDOW = "2016-12-30T05:45:00+01:00"
BASE = "https://newsletter.example.org"

# Every character XML/HTML cannot carry: C0 but tab/LF/CR (and FF/VT, which become breaks), DEL, C1,
# the non-characters of every plane.
C0 = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"]
C1 = [chr(c) for c in range(0x7F, 0xA0)]
NONCHARS = [chr(c) for c in range(0xFDD0, 0xFDF0)] + [chr(p << 16 | 0xFFFE) for p in range(17)]
NONCHARS += [chr(p << 16 | 0xFFFF) for p in range(17)]
UNSHOWABLE = [c for c in C0 + C1 + NONCHARS if c != "\x00"]  # NUL marks a binary file: left out, tested apart


def built_html_and_text(root: Path) -> tuple[str, str]:
    out = root / "outbox" / "2016-12-30"
    return (out / "newsletter.html").read_text(encoding="utf-8"), (out / "newsletter.txt").read_text(encoding="utf-8")


def test_a_broken_file_outside_the_window_changes_nothing(demo_root: Path) -> None:
    runner = CliRunner()
    before = runner.invoke(cli, ["build", "--root", str(demo_root), "--date", "2016-12-30"])
    assert before.exit_code == 0, before.output
    html_before, text_before = built_html_and_text(demo_root)
    manifest_before = json.loads((demo_root / "outbox" / "2016-12-30" / "manifest.json").read_text("utf-8"))
    # 2010: an image without alt, and a story with no title (which cannot be shown at all).
    write_story(demo_root, "old.md", "title: Old\npublished: 2010-06-01T08:00:00+02:00\nimage:\n  src: /a.jpg")
    write_story(demo_root, "older.md", "title: ''\npublished: 2010-06-02T08:00:00+02:00")
    after = runner.invoke(cli, ["build", "--root", str(demo_root), "--date", "2016-12-30"])
    assert after.exit_code == 0, after.output
    assert "old.md" not in after.output  # not this edition's business
    html_after, text_after = built_html_and_text(demo_root)
    assert html_after == html_before and text_after == text_before
    manifest = json.loads((demo_root / "outbox" / "2016-12-30" / "manifest.json").read_text("utf-8"))
    assert manifest["skipped"] == [] and manifest["stories"] == manifest_before["stories"]
    # `check` still lists every file.
    checked = runner.invoke(cli, ["check", "--root", str(demo_root), "--date", "2016-12-30"])
    assert checked.exit_code == 1
    assert "stories/older.md: field 'title': must not be empty" in checked.stderr
    assert "stories/old.md: field 'image.alt': missing" in checked.stderr


def test_inside_the_window_build_is_strict_but_send_sends_what_can_be_shown(
    demo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "repairs-secret")
    write_story(demo_root, "broken.md", f"title: ''\npublished: {IN_WINDOW}")
    runner = CliRunner()
    strict = runner.invoke(cli, ["build", "--root", str(demo_root), "--date", "2016-12-30"])
    assert strict.exit_code == 1
    assert strict.stderr.splitlines() == [
        "stories/broken.md: field 'title': must not be empty",
        "Error: 1 problem(s) in 1 story file(s); fix them or pass --skip-invalid",
    ]
    (demo_root / "list.csv").write_text("email,name\nann@example.com,Ann\nbob@example.com,Bob\n", encoding="utf-8")
    sink = MemorySink()
    report = send_edition(load_settings(demo_root, environ={}), DAY, subscribers="list.csv", sink=sink,
                          progress=False)  # fmt: skip
    assert report.ok and report.sent == 2 and len(sink.sent) == 2
    assert report.stories_skipped == ["stories/broken.md: field 'title': must not be empty"]
    assert "1 story(ies) left out" in report.summary()
    sent = runner.invoke(cli, ["send", "--root", str(demo_root), "--date", "2016-12-30", "--subscribers",
                               "list.csv", "--no-progress"], env={SECRET_ENV: "repairs-secret"})  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert "story left out: stories/broken.md: field 'title': must not be empty" in sent.stderr


@pytest.mark.parametrize("where", ["body", "title", "summary"])
def test_every_unshowable_character_is_removed_as_the_story_is_read(demo_root: Path, where: str) -> None:
    junk = "".join(UNSHOWABLE)
    title = f"Clean{junk}title" if where == "title" else "Clean title"
    summary = f"A{junk}summary" if where == "summary" else "A summary"
    body = f"First paragraph{junk}end.\n\nSecond\x0cthird paragraph.\n" if where == "body" else "Body.\n"
    (demo_root / "stories" / "junk.md").write_bytes(
        f'---\ntitle: "{title}"\npublished: {IN_WINDOW}\nsummary: "{summary}"\n---\n{body}'.encode(
            "utf-8", "surrogatepass"
        )
    )
    result = CliRunner().invoke(cli, ["build", "--root", str(demo_root), "--date", "2016-12-30"])
    assert result.exit_code == 0, result.output
    html, text = built_html_and_text(demo_root)
    for c in UNSHOWABLE:
        assert c not in html and c not in text, hex(ord(c))
    loaded = load_stories(demo_root / "stories", demo_root, BASE)
    story = next(s for s in loaded.stories if s.path == "stories/junk.md")
    assert story.title == "Clean title" or story.title.replace(" ", "") == "Cleantitle"
    if where == "body":
        paragraphs = ["".join(b.html) for b in story.blocks]
        assert any("Second" in p and "third" not in p for p in paragraphs)  # the form feed broke the paragraph
        assert any("third paragraph" in p for p in paragraphs)


def test_yaml_escaped_non_characters_in_fields_are_removed_too() -> None:
    raw = f'---\ntitle: "A\\uFFFEB\\x01C"\npublished: {IN_WINDOW}\nsummary: "S\\uFFFFT"\n---\nBody.\n'.encode()
    story, errors, _ = parse_story(raw, "stories/x.md", "x", BASE)
    assert errors == [] and story is not None
    assert story.title == "AB C" and story.summary == "ST"


def test_huge_and_deep_bodies_are_refused_before_sanitising() -> None:
    deep = "<div>" * 100_000 + "x" + "</div>" * 100_000
    t0 = time.monotonic()
    story, errors, _ = parse_story(f"---\ntitle: T\npublished: {IN_WINDOW}\n---\n{deep}".encode(), "stories/d.md",
                                   "d", BASE)  # fmt: skip
    assert time.monotonic() - t0 < 2.0
    assert story is None and [str(e) for e in errors] == [
        "stories/d.md: the body's HTML nests 100000 levels deep (at most 100)"
    ]
    big = ("word " * 420_000).encode()
    story, errors, _ = parse_story(b"---\ntitle: T\npublished: " + IN_WINDOW.encode() + b"\n---\n" + big,
                                   "stories/b.md", "b", BASE)  # fmt: skip
    assert story is None and [str(e) for e in errors] == [
        "stories/b.md: the body is 2.1 MB, more than a story may have (2 MB)"
    ]
    fine = "<div>" * 100 + "x" + "</div>" * 100
    story, errors, _ = parse_story(f"---\ntitle: T\npublished: {IN_WINDOW}\n---\n{fine}".encode(), "stories/f.md",
                                   "f", BASE)  # fmt: skip
    assert story is not None and errors == []


def test_a_compile_error_names_the_story(demo_root: Path) -> None:
    settings = load_settings(demo_root, environ={})
    edition = build(settings, DAY).edition
    # A character the reader would have removed, put back by hand: the template cannot take it.
    victim = edition.stories[1]
    stories = [dataclasses.replace(s, title=s.title + "\x01") if s is victim else s for s in edition.stories]
    with pytest.raises(TemplateError) as caught:
        render_edition(select_edition(stories, DAY, settings), settings)
    assert str(caught.value).startswith(f"{victim.path}: breaks the email template (")
