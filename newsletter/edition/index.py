"""The story index: each story file's publication time, so a build parses only its own window's stories.

    data/story-index.sqlite   path · size · mtime_ns → published (ISO 8601, or NULL when unreadable)

A build walks `stories/` with `stat` only; a file whose size and modification time (nanoseconds) match
its row is not opened, any other is read up to the end of its front matter and its row replaced, and
rows of files gone are deleted. Equality, not order, decides freshness, so a file changed with a clock
that went backwards, or restored from a backup, is read again all the same. A missing, corrupt or
unwritable index is no error: it is rebuilt silently, or (a read-only `data/`) the walk reads every
front matter without remembering it.

Cost: one `stat` per file per build, and reading front matter (not whole stories) once per change.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from .stories import FRONT_MATTER, read_published

INDEX_FILE = "story-index.sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS stories (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
    "mtime_ns INTEGER NOT NULL, published TEXT)"
)
_PUBLISHED_LINE = re.compile(rb"^published:", re.M)


def walk(stories_dir: Path) -> list[tuple[Path, os.stat_result]]:
    """Every visible `*.md` under `stories_dir` with its stat, in a stable order (as `find_story_files`)."""
    found: list[tuple[Path, os.stat_result]] = []
    if not stories_dir.is_dir():
        return found
    for folder, dirs, files in os.walk(stories_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".md") and not name.startswith("."):
                path = Path(folder, name)
                with contextlib.suppress(OSError):
                    st = path.stat()
                    found.append((path, st))
    found.sort(key=lambda item: item[0].relative_to(stories_dir).parts)
    return found


def front_matter_published(path: Path) -> datetime | None:
    """The publication time from a file's front matter alone; None when it cannot be read."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    try:
        text = head.decode("utf-8", "replace").replace("\r\n", "\n")
    except ValueError:
        return None
    match = FRONT_MATTER.match(text)
    return read_published(match.group(1) or "") if match else None


class StoryIndex:
    """Publication times by file, kept in `data/story-index.sqlite`; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            self._db = None
            if isinstance(exc, sqlite3.OperationalError) and not self.path.is_file():
                return  # cannot even be created (a read-only data/): work without remembering
            with contextlib.suppress(OSError, sqlite3.Error):  # corrupt, or not a database: start again
                self.path.unlink()
                for extra in ("-wal", "-shm", "-journal"):
                    Path(f"{self.path}{extra}").unlink(missing_ok=True)
                self._db = self._connect()
        except OSError:
            self._db = None  # a read-only or missing data/: work without remembering

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        try:
            db.execute(_SCHEMA)
            db.execute("SELECT path, size, mtime_ns, published FROM stories LIMIT 1").fetchall()
        except sqlite3.Error:
            db.close()
            raise
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> StoryIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def published(
        self, stories_dir: Path, *, on_file: Callable[[], None] | None = None
    ) -> list[tuple[Path, datetime | None]]:
        """Every story file with its publication time (None: unreadable), the index refreshed on the way."""
        files = walk(stories_dir)
        known: dict[str, tuple[int, int, str | None]] = {}
        if self._db is not None:
            try:
                known = {p: (s, m, pub) for p, s, m, pub in self._db.execute("SELECT * FROM stories")}
            except sqlite3.Error:
                known = {}
        out: list[tuple[Path, datetime | None]] = []
        changed: list[tuple[str, int, int, str | None]] = []
        for path, st in files:
            key = path.relative_to(stories_dir).as_posix()
            row = known.pop(key, None)
            if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns:
                out.append((path, datetime.fromisoformat(row[2]) if row[2] else None))
            else:
                moment = front_matter_published(path)
                out.append((path, moment))
                changed.append((key, st.st_size, st.st_mtime_ns, moment.isoformat() if moment else None))
            if on_file is not None:
                on_file()
        self._save(changed, list(known))
        return out

    def _save(self, changed: list[tuple[str, int, int, str | None]], gone: list[str]) -> None:
        if self._db is None or not (changed or gone):
            return
        try:
            with contextlib.closing(self._db.cursor()) as cur:
                cur.execute("BEGIN IMMEDIATE")
                cur.executemany("INSERT OR REPLACE INTO stories VALUES (?, ?, ?, ?)", changed)
                cur.executemany("DELETE FROM stories WHERE path = ?", [(p,) for p in gone])
                cur.execute("COMMIT")
        except sqlite3.Error:  # full disk, read-only, locked for long: the next build reads them again
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
