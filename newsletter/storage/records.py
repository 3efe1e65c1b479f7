"""Run bookkeeping shared by the scheduler's runs table and the delivery ledger.

Both keep "who is running this, and did it finish?": a run is claimed by an owner (`host:pid`), finished
with a state, and a run still marked running whose owner is gone is stale — it crashed — and may be taken
over. Both also hold an exclusive lock file while they work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Callable
from pathlib import Path

from ..errors import LockedError


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
