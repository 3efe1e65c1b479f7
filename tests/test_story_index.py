"""The story index (data/story-index.sqlite): a build reads its own window's stories, not the archive.

Every change of a file is picked up on the next build — changed, added, deleted, renamed, changed with
a clock gone backwards — and a corrupt or unwritable index is rebuilt or done without, silently.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.edition import build, stories
from newsletter.edition.index import INDEX_FILE
from tests.helpers import write_story

DAY = date(2016, 12, 30)
IN_WINDOW = "2016-12-30T05:50:00+01:00"
ARCHIVE = "2012-03-04T10:00:00+01:00"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The story files a build reads in full (the real reader, counted)."""
    seen: list[str] = []
    real = stories.read_story

    def counting(path: Path, *args: object, **kwargs: object) -> object:
        seen.append(path.name)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stories, "read_story", counting)
    yield seen


def titles(root: Path) -> set[str]:
    return {s.title for s in build(load_settings(root, environ={}), DAY).edition.stories}


def test_only_the_window_is_read_and_every_change_is_seen(demo_root: Path, reads: list[str]) -> None:
    for i in range(30):
        write_story(demo_root, f"archive/a{i}.md", f"title: Archive {i}\npublished: {ARCHIVE}")
    first = titles(demo_root)
    assert not any(t.startswith("Archive") for t in first)
    assert (demo_root / "data" / INDEX_FILE).is_file()
    reads.clear()
    assert titles(demo_root) == first
    assert not any(name.startswith("a") and name[1:-3].isdigit() for name in reads)  # the archive is not read
    window_reads = len(reads)

    # Changed: an archived story moved into the window.
    write_story(demo_root, "archive/a3.md", f"title: Archive 3 again\npublished: {IN_WINDOW}")
    assert "Archive 3 again" in titles(demo_root)
    # Added.
    write_story(demo_root, "new.md", f"title: Brand new\npublished: {IN_WINDOW}")
    assert "Brand new" in titles(demo_root)
    # Renamed.
    (demo_root / "stories" / "new.md").rename(demo_root / "stories" / "renamed.md")
    assert "Brand new" in titles(demo_root)
    assert len([s for s in build(load_settings(demo_root, environ={}), DAY).edition.stories
                if s.title == "Brand new"]) == 1  # fmt: skip
    # Deleted.
    (demo_root / "stories" / "renamed.md").unlink()
    assert "Brand new" not in titles(demo_root)
    # Changed with the clock gone backwards: same size, an older modification time — read again all the same.
    path = demo_root / "stories" / "archive" / "a3.md"
    stat = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace("again", "AGAIN"), encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 3_600_000_000_000))
    assert "Archive 3 AGAIN" in titles(demo_root)
    reads.clear()
    titles(demo_root)
    assert len(reads) == window_reads + 1  # the window (with a3 now in it), nothing else


def test_a_corrupt_or_deleted_index_is_rebuilt_silently(demo_root: Path) -> None:
    write_story(demo_root, "archive/old.md", f"title: Old\npublished: {ARCHIVE}")
    expected = titles(demo_root)
    index = demo_root / "data" / INDEX_FILE
    index.write_bytes(b"this is not a database" * 100)
    assert titles(demo_root) == expected
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT count(*) FROM files").fetchone()[0] == len(list(demo_root.rglob("*.md")))
    index.unlink()
    assert titles(demo_root) == expected and index.is_file()


def test_a_broken_undated_file_still_counts_for_the_edition(demo_root: Path) -> None:
    write_story(demo_root, "undated.md", "title: No date\npublished: soon")
    result = build(load_settings(demo_root, environ={}), DAY, skip_invalid=True)
    assert [str(e) for e in result.skipped] == [
        "stories/undated.md: field 'published': not an ISO 8601 datetime: 'soon'"
    ]
