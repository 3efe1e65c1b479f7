"""Outcomes written in batches: one transaction per ~50 ms or a few hundred results instead of one per message.

Both ledgers (SQLite and PostgreSQL) record through a `ResultBuffer`. The window is the trade: a crash
loses at most the records of one window (the last ~50 ms, never more than FLUSH_ROWS results) — those
recipients are still pending and are resent with the same Message-ID — and in exchange the ledger stops
being the ceiling of a big send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

FLUSH_SECONDS = 0.05  # how long a result may wait before its transaction
FLUSH_ROWS = 300  # the most results ever unwritten (gathering plus being written): a crash loses no more

# One recorded outcome: its kind (a key of the store's SQL table) and the statement's parameters.
Result = tuple[str, tuple[Any, ...]]


class ResultBuffer:
    """Outcomes gathered and written in one transaction when FLUSH_SECONDS or FLUSH_ROWS is reached.

    `write(items)` must apply the items in order inside one transaction. A writer thread flushes the time
    window. Where a write mostly waits on a server (`behind=True`: PostgreSQL), the writer also starts a
    transaction once half of FLUSH_ROWS have gathered, so the next ones gather while it commits, and `add`
    waits while FLUSH_ROWS are unwritten. Otherwise (SQLite, whose writes are CPU work in this process)
    the caller's thread writes a full buffer itself: handing it over would only cost thread switches.
    `flush()` writes everything gathered so far before it returns; `close()` too, and stops the writer.
    A failed write is raised by the next `add`, `flush` or `close`, so no outcome is dropped silently.
    """

    def __init__(self, write: Callable[[list[Result]], None], *, behind: bool = False) -> None:
        self._write = write
        self._behind = behind
        self._batch = FLUSH_ROWS // 2 if behind else FLUSH_ROWS  # what makes the writer start at once
        self._items: list[Result] = []
        self._writing = 0  # results taken by a write that has not committed yet
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._error: BaseException | None = None

    def add(self, kind: str, params: tuple[Any, ...]) -> None:
        self._raise()
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="ledger-flush", daemon=True)
                self._thread.start()
            writer = self._behind and self._thread is not None and not self._closed and self._thread.is_alive()
            while writer and len(self._items) + self._writing >= FLUSH_ROWS and self._error is None:
                self._cond.wait(FLUSH_SECONDS)
            self._items.append((kind, params))
            gathered = len(self._items)
            if gathered == 1 or (self._behind and gathered == self._batch):  # what the writer waits for
                self._cond.notify_all()
            full = gathered >= FLUSH_ROWS and not writer
        self._raise()
        if full:  # not written behind, or no writer any more: write them here
            self.flush()

    def flush(self) -> None:
        """Write everything gathered so far (the caller then reads its own writes)."""
        self._raise()
        with self._write_lock:
            with self._cond:
                items, self._items = self._items, []
                self._writing = len(items)
            try:
                if items:
                    self._write(items)
            finally:
                with self._cond:
                    self._writing = 0
                    self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                # Let the window fill: one transaction for what arrives in FLUSH_SECONDS (or a batch).
                deadline = time.monotonic() + FLUSH_SECONDS
                while not self._closed and len(self._items) < self._batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._closed:
                    return  # close() writes the rest
            try:
                self.flush()
            except BaseException as exc:  # kept for the send loop's thread, which can act on it
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()


def runs_of(items: list[Result]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Consecutive results of one kind, together: executemany per group, the order kept."""
    kind: str | None = None
    group: list[tuple[Any, ...]] = []
    for k, params in items:
        if k != kind and group:
            yield kind or "", group
            group = []
        kind = k
        group.append(params)
    if group:
        yield kind or "", group
