"""Outcomes written in batches: one transaction per ~50 ms or 300 results instead of one per message.

Both ledgers (SQLite and PostgreSQL) record through a `ResultBuffer`. The window is the trade: a crash
loses at most the records of one window — those recipients are still pending and are resent with the
same Message-ID — and in exchange the ledger stops being the ceiling of a big send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

FLUSH_SECONDS = 0.05  # how long a result may wait before its transaction
FLUSH_ROWS = 300  # or how many results make one transaction at once

# One recorded outcome: its kind (a key of the store's SQL table) and the statement's parameters.
Result = tuple[str, tuple[Any, ...]]


class ResultBuffer:
    """Outcomes gathered and written in one transaction when FLUSH_SECONDS or FLUSH_ROWS is reached.

    `write(items)` must apply the items in order inside one transaction. A background thread flushes the
    time window; the caller's thread flushes a full buffer; `close()` flushes what is left. A failed
    background write is raised by the next `add`, `flush` or `close`, so no outcome is dropped silently.
    """

    def __init__(self, write: Callable[[list[Result]], None]) -> None:
        self._write = write
        self._items: list[Result] = []
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._error: BaseException | None = None

    def add(self, kind: str, params: tuple[Any, ...]) -> None:
        self._raise()
        with self._cond:
            self._items.append((kind, params))
            full = len(self._items) >= FLUSH_ROWS
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="ledger-flush", daemon=True)
                self._thread.start()
            self._cond.notify()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write everything gathered so far (the caller then reads its own writes)."""
        self._raise()
        with self._write_lock:
            with self._cond:
                items, self._items = self._items, []
            if items:
                self._write(items)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            time.sleep(FLUSH_SECONDS)  # let the window fill: one transaction for all that arrives meanwhile
            try:
                self.flush()
            except BaseException as exc:  # kept for the send loop's thread, which can act on it
                self._error = exc
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
