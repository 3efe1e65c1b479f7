"""Progress of a send: a rich bar on a terminal, plain log lines otherwise.

With several sender processes (processes.py) each child counts into its own slot of a `SharedCounts`
(shared memory made before the fork: no message per message, no lock between processes) and the parent
shows their sum on its one bar (`Progress.show`), a few times a second and once more at the end.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_FIELDS = 5  # done, sent, failed, pending, retrying


class Progress:
    """A rich progress bar on a terminal; a plain line every 10 % or 10 s otherwise.

    Both show the rate (one decimal: a throttled run's 0.4 msg/s is not "0"), and how many messages
    were sent, are deferred (waiting for a retry, or left pending for the next run) and failed.
    `enabled`: True forces the bar, False shows nothing, None picks by whether stderr is a terminal.
    """

    def __init__(
        self, enabled: bool | None, total: int, label: str, *, report: Callable[[Progress], None] | None = None
    ) -> None:
        """`report`: called with this object after each change (a sender process's `SharedCounts` slot)."""
        self.total = total
        self.label = label
        self.done = 0
        self.sent = self.failed = self.pending = self.retrying = 0
        self._report = report
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Any = None
        self._plain = False
        self._last_line = self.start
        self._last_pct = 0
        if enabled is False or total == 0:
            return
        if enabled or sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} msg/s · {task.fields[counts]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, rate="0.0", counts=self.counts())
        else:
            self._plain = True

    def counts(self) -> str:
        return f"sent {self.sent}, deferred {self.retrying + self.pending}, failed {self.failed}"

    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.sent / elapsed if elapsed > 0 else 0.0

    def waiting(self, delta: int) -> None:
        """A message went into (+1) or out of (-1) the retry queue."""
        with self._lock:
            self.retrying += delta
            if self._report is not None:
                self._report(self)

    def advance(self, kind: str = "sent") -> None:
        """One message is done for this run: "sent", "failed" or "deferred" (left pending)."""
        with self._lock:
            self.done += 1
            if kind == "sent":
                self.sent += 1
            elif kind == "failed":
                self.failed += 1
            else:
                self.pending += 1
            if self._report is not None:
                self._report(self)
            self._refresh()

    def show(self, counts: tuple[int, ...]) -> None:
        """Counts made elsewhere (the sender processes, summed): (done, sent, failed, pending, retrying)."""
        with self._lock:
            before = self.done
            self.done, self.sent, self.failed, self.pending, self.retrying = counts
            if self.done != before or self._bar is not None:
                self._refresh()

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate():.1f}", counts=self.counts())
        elif self._plain:
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        pct = self.done * 100 // self.total
        if pct >= self._last_pct + 10 or now - self._last_line >= 10 or self.done == self.total:
            rate = self.rate()
            eta = f", ETA {(self.total - self.done) / rate:.0f} s" if rate else ""
            print(
                f"{self.label}: {self.done}/{self.total} ({pct}%), {rate:.1f} msg/s, {self.counts()}{eta}",
                file=sys.stderr,
                flush=True,
            )
            self._last_line, self._last_pct = now, pct - pct % 10

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class SharedCounts:
    """One slot of counts per sender process, in memory shared across a fork (made before it)."""

    def __init__(self, parts: int) -> None:
        self.parts = parts
        self._values = multiprocessing.get_context("fork").RawArray("q", parts * _FIELDS)

    def reporter(self, k: int) -> Callable[[Progress], None]:
        """What child k's `Progress(report=…)` calls: its counts into its slot (only it writes there)."""
        base = k * _FIELDS

        def report(progress: Progress) -> None:
            counts = (progress.done, progress.sent, progress.failed, progress.pending, progress.retrying)
            self._values[base : base + _FIELDS] = counts

        return report

    def total(self) -> tuple[int, ...]:
        """The sum over every process: (done, sent, failed, pending, retrying)."""
        values = self._values[:]
        return tuple(sum(values[f::_FIELDS]) for f in range(_FIELDS))
