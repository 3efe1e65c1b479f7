"""`newsletter import` as a user runs it: real subprocesses against the local HTTP server, then build and check."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from tests.test_intake_server import FIXTURES, RSS, FixtureServer, make_root, serve, story_files

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def http_server() -> Iterator[FixtureServer]:
    yield from serve()


def newsletter(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_import_then_build_renders_the_imported_stories(http_server: FixtureServer, tmp_path: Path) -> None:
    feed = http_server.fixture("/world/rss.xml", "rss-media.xml", RSS, etag='"w1"')
    page = http_server.fixture("/en/syria.html", "article-cluttered.html", "text/html; charset=utf-8")
    root = make_root(tmp_path)

    first = newsletter("import", "feed", feed, "--root", root)
    assert first.returncode == 0, first.stderr
    assert "new           stories/2024/03/05/ceasefire-holds-as-talks-open-in-astana.md" in first.stdout
    assert f"{feed}: 4 new, 1 skipped" in first.stdout
    assert "entry 5 ('An entry with no date at all'): has no published or updated date; skipped" in first.stderr

    again = newsletter("import", "feed", feed, "--root", root)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{feed}: not modified since the last import (HTTP 304)\n"

    saved = newsletter("import", "--root", root, "page", page, "--section", "Middle East")
    assert saved.returncode == 0, saved.stderr
    assert len(story_files(root)) == 5

    check = newsletter("check", "--root", root, "--date", "2024-03-06")
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("OK: 5 stories")

    build = newsletter("build", "--root", root, "--date", "2024-03-06")
    assert build.returncode == 0, build.stderr
    html = (root / "outbox/2024-03-06/newsletter.html").read_text(encoding="utf-8")
    text = (root / "outbox/2024-03-06/newsletter.txt").read_text(encoding="utf-8")
    for title in (
        "Ceasefire holds as talks open in Astana",
        "Breaking: Markets rally as rates hold",
        "Museums stay open late for spring festival",
        "Harbour photo from an old server",
    ):
        assert title in html
        assert title in text
    assert "https://cdn.example.org/images/2024/03/05/astana-talks.jpg" in html
    assert "<script" not in html.lower()

    build = newsletter("build", "--root", root, "--date", "2016-12-30")
    assert build.returncode == 0, build.stderr
    html = (root / "outbox/2016-12-30/newsletter.html").read_text(encoding="utf-8")
    assert "Syrian regime emboldened ahead of Russia-backed peace talks" in html
    assert "Middle East" in html
    assert "Daily newsletter" not in html and "cookies" not in html


def test_import_with_no_argument_imports_the_configured_feeds(tmp_path: Path) -> None:
    root = make_root(
        tmp_path,
        '[[intake.feeds]]\nurl = "feeds/atom.xml"\n\n[[intake.feeds]]\nurl = "feeds/world.xml"\nsection = "World"\n',
    )
    (root / "feeds").mkdir()
    (root / "feeds/atom.xml").write_bytes((FIXTURES / "atom.xml").read_bytes())
    (root / "feeds/world.xml").write_bytes((FIXTURES / "rss-media.xml").read_bytes())
    runner = CliRunner()

    dry = runner.invoke(cli, ["import", "--root", str(root), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would write   stories/2024/03/05/les-agriculteurs-manifestent-a-bruxelles.md" in dry.stdout
    assert "Dry run: 6 new and 0 updated stories would be written; nothing was." in dry.stdout
    assert story_files(root) == {}

    real = runner.invoke(cli, ["import", "--root", str(root)])
    assert real.exit_code == 0, real.output
    assert "feeds/atom.xml: 2 new" in real.stdout
    assert "feeds/world.xml: 4 new, 1 skipped" in real.stdout
    assert len(story_files(root)) == 6

    again = runner.invoke(cli, ["import", "--root", str(root), "--no-update"])
    assert again.exit_code == 0, again.output
    assert "feeds/atom.xml: unchanged since the last import" in again.stdout


def test_failures_exit_1_after_the_other_sources_are_imported(tmp_path: Path) -> None:
    root = make_root(tmp_path, '[[intake.feeds]]\nurl = "missing.xml"\n\n[[intake.feeds]]\nurl = "atom.xml"\n')
    (root / "atom.xml").write_bytes((FIXTURES / "atom.xml").read_bytes())
    result = CliRunner().invoke(cli, ["import", "--root", str(root)])
    assert result.exit_code == 1
    assert "missing.xml: no such file" in result.stderr
    assert "Error: 1 problem(s) while importing; see above" in result.stderr
    assert len(story_files(root)) == 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("", "no sources configured: add [[intake.feeds]]"),
        ('[[intake.feeds]]\nsection = "World"\n', "[[intake.feeds]] #1: 'url' is required"),
        ('[[intake.feeds]]\nurl = "a.xml"\nsectoin = "World"\n', "[[intake.feeds]] #1: unknown key 'sectoin'"),
        ('[intake]\ntimeout = "soon"\n', "[intake]: 'timeout' (seconds) must be a number from 0.05 to 600"),
        ("[intake]\nfeeds = 3\n", "[intake]: 'feeds' must be a list of tables"),
    ],
)
def test_configuration_problems_are_one_line(tmp_path: Path, config: str, message: str) -> None:
    root = make_root(tmp_path, config)
    result = CliRunner().invoke(cli, ["import", "--root", str(root)])
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_page_options_are_checked(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    page = str(FIXTURES / "article-cluttered.html")
    bad_date = CliRunner().invoke(cli, ["import", "page", page, "--root", str(root), "--published", "yesterday"])
    assert bad_date.exit_code == 2
    assert "'yesterday' is not a date and time with an offset" in bad_date.stderr
    bad_url = CliRunner().invoke(cli, ["import", "page", page, "--root", str(root), "--url", "ftp://x.org/a"])
    assert bad_url.exit_code == 2
    assert "must be an absolute http/https URL" in bad_url.stderr
    assert story_files(root) == {}


def test_help_and_readme() -> None:
    runner = CliRunner()
    for args in (["import"], ["import", "feed"], ["import", "page"]):
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output and "--root" in result.output and "--dry-run" in result.output
    section = (REPO / "docs" / "intake.md").read_text(encoding="utf-8")
    for phrase in ("newsletter import feed", "newsletter import page", "[[intake.feeds]]", "--no-update", "data/"):
        assert phrase in section
