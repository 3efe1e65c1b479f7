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
import sqlite3
from datetime import datetime
from pathlib import Path

from .stories import FRONT_MATTER, read_published

INDEX_FILE = "story-index.sqlite"
# `published` is seconds since the epoch (UTC): comparing numbers, not parsing 20,000 dates per build.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
    "mtime_ns INTEGER NOT NULL, published REAL)"
)


def scan(stories_dir: Path) -> list[tuple[str, int, int]]:
    """(path relative to `stories_dir`, size, mtime_ns) of every visible `*.md` below it: `stat` only,
    plain strings (no Path objects: this runs over the whole archive on every build)."""
    found: list[tuple[str, int, int]] = []
    stack = [("", str(stories_dir))]
    while stack:
        prefix, folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    stack.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.name.endswith(".md") and entry.is_file():
                    st = entry.stat()
                    found.append((prefix + entry.name, st.st_size, st.st_mtime_ns))
            except OSError:
                continue
    return found


def walk(stories_dir: Path) -> list[Path]:
    """Every visible `*.md` under `stories_dir`, in the order `find_story_files` gives (folder by folder)."""
    return [stories_dir / rel for rel in sorted((r for r, _, _ in scan(stories_dir)), key=lambda r: r.split("/"))]


def front_matter_published(path: Path) -> datetime | None:
    """The publication time from a file's front matter alone; None when it cannot be read."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    text = head.decode("utf-8", "replace").replace("\r\n", "\n")
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
            db.execute("SELECT path, size, mtime_ns, published FROM files LIMIT 1").fetchall()
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

    def published(self, stories_dir: Path) -> list[tuple[str, float | None]]:
        """Every story file (path relative to `stories_dir`) with its publication time as a UTC timestamp
        (None: unreadable), the index refreshed on the way."""
        files = scan(stories_dir)
        known: dict[str, tuple[int, int, float | None]] = {}
        if self._db is not None:
            try:
                known = {p: (s, m, pub) for p, s, m, pub in self._db.execute("SELECT * FROM files")}
            except sqlite3.Error:
                known = {}
        out: list[tuple[str, float | None]] = []
        changed: list[tuple[str, int, int, float | None]] = []
        for rel, size, mtime_ns in files:
            row = known.pop(rel, None)
            if row is not None and row[0] == size and row[1] == mtime_ns:
                out.append((rel, row[2]))
                continue
            moment = front_matter_published(stories_dir / rel)
            stamp = moment.timestamp() if moment is not None else None
            out.append((rel, stamp))
            changed.append((rel, size, mtime_ns, stamp))
        self._save(changed, list(known))
        return out

    def _save(self, changed: list[tuple[str, int, int, float | None]], gone: list[str]) -> None:
        if self._db is None or not (changed or gone):
            return
        try:
            with contextlib.closing(self._db.cursor()) as cur:
                cur.execute("BEGIN IMMEDIATE")
                cur.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", changed)
                cur.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in gone])
                cur.execute("COMMIT")
        except sqlite3.Error:  # full disk, read-only, locked for long: the next build reads them again
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
