"""Tests never depend on the checkout's own content: the guard of tests/helpers/hermetic.py sees a test
that reads the editor's stories/, data/, outbox/, site/ or newsletter.toml, and the copy helpers take the
demo and nothing an editor added beside it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DEMO_STORY, REPO, copy_demo_stories, hermetic, make_demo_root


def test_every_test_runs_under_the_guard() -> None:
    assert hermetic.installed()


def test_the_guard_sees_reads_of_the_editor_folders() -> None:
    with hermetic.caught() as seen:
        list((REPO / "stories").iterdir())
        (REPO / "newsletter.toml").read_bytes()
        with pytest.raises(sqlite3.OperationalError):
            sqlite3.connect(f"file:{REPO / 'data' / 'no-such.sqlite'}?mode=ro", uri=True)
        with pytest.raises(FileNotFoundError):
            (REPO / "site" / "no-such.html").read_text()
        with pytest.raises(FileNotFoundError):
            (REPO / "outbox" / "2016-12-30" / "no-such.eml").read_bytes()
    assert [line.split()[0] for line in seen] == ["os.listdir", "open", "sqlite3.connect", "open", "open"]


def test_the_guard_sees_newsletter_started_in_the_checkout() -> None:
    """`newsletter build` run from the checkout (no --root) builds the editor's newest edition."""
    missing = str(REPO / "no-such-folder" / "newsletter")  # the guard sees the start; nothing runs
    with hermetic.caught() as seen:
        for args in (["build"], ["-m", "newsletter", "build", "--root", str(REPO)], ["send", "--root=."]):
            with pytest.raises(FileNotFoundError):
                subprocess.run([missing, *args], cwd=REPO, capture_output=True)
        subprocess.run([sys.executable, "-m", "newsletter", "--version"], cwd=REPO, capture_output=True, check=True)
        subprocess.run([sys.executable, "-m", "newsletter"], cwd=REPO, capture_output=True)  # the help: no folder read
    assert len(seen) == 3 and all("runs newsletter in the checkout" in line for line in seen)


def test_a_test_that_touched_them_fails() -> None:
    hermetic.seen.append(f"open {REPO / 'stories' / 'x.md'}")
    with pytest.raises(pytest.fail.Exception, match=r"touched the checkout's own editor files.*stories/x\.md"):
        hermetic.check()
    assert hermetic.seen == []


def test_the_copy_helpers_take_only_the_demo(tmp_path: Path) -> None:
    with hermetic.caught() as seen:
        copy_demo_stories(tmp_path / "en")
        root = make_demo_root(tmp_path / "all", languages=True)
    assert seen == []
    english = sorted(p.relative_to(tmp_path / "en").as_posix() for p in (tmp_path / "en").rglob("*.md"))
    assert english[0] == DEMO_STORY.as_posix() and len(english) == 7
    assert all(name.startswith("samples/") and name.count("/") == 1 for name in english[1:])
    languages = {p.parent.name for p in (root / "stories" / "samples").rglob("*.md")}
    assert languages == {"samples", "fr", "ar"} and (root / "newsletter.toml").is_file()


def test_reading_a_copy_is_not_reading_the_checkout(demo_root: Path) -> None:
    with hermetic.caught() as seen:
        (demo_root / "stories" / DEMO_STORY).read_text(encoding="utf-8")
    assert seen == []
