"""Run bookkeeping shared by the scheduler's runs table and the delivery ledger.

Both keep "who is running this, and did it finish?": a run is claimed by an owner (`host:pid`), finished
with a state, and a run still marked running whose owner is gone is stale — it crashed — and may be taken
over. Both also hold an exclusive lock file while they work, and a small key/value `meta` table.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from ..errors import LockedError


def connect(path: Path, *, wal: bool = False, timeout: float = 30, shared: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) that waits for a busy writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=not shared)
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed row survives a process crash (kill -9); only a power cut may lose
        # the last commits, which are then redone — the same bound as a crash.
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return db


class Meta:
    """The `meta (key, value)` table of a records file."""

    SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"

    @staticmethod
    def get(db: sqlite3.Connection, key: str) -> str | None:
        found = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if found is None else str(found[0])

    @staticmethod
    def set(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Is the process that claimed a run still there? Another host's process is assumed alive."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class ProcessLock:
    """An exclusive `flock` on a file holding the holder's pid; `LockedError` when another process has it.

    The kernel drops a flock when its process dies, however it dies, so a crash never leaves a stale lock.
    `refused(holder_pid)` words the error for the caller's users.
    """

    def __init__(self, path: Path, refused: Callable[[str], str]) -> None:
        self.path = path
        self._refused = refused
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(self._refused(holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FileLock:
    """A thread lock around one records file's connection that names the file in any database error
    raised while it is held, so "database or disk is full" reaches the user with the path it is about.
    The path rides on the exception as a note (`exc.__notes__`), which the CLI prints in front."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def __enter__(self) -> FileLock:
        self._lock.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._lock.release()
        if isinstance(exc, sqlite3.Error) and str(self.path) not in getattr(exc, "__notes__", ()):
            exc.add_note(str(self.path))
