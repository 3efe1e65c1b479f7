"""Progress of a send: a rich bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any


class Progress:
    """A rich progress bar (rate, ETA) on a terminal; a plain line every 10 % or 10 s otherwise.

    `enabled`: True forces the bar, False shows nothing, None picks by whether stderr is a terminal.
    """

    def __init__(self, enabled: bool | None, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.done = 0
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
                TextColumn("{task.fields[rate]} msg/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, rate="0")
        else:
            self._plain = True

    def advance(self) -> None:
        with self._lock:
            self.done += 1
            now = time.monotonic()
            rate = self.done / (now - self.start) if now > self.start else 0.0
            if self._bar is not None:
                self._bar.update(self._task, advance=1, rate=f"{rate:.0f}")
            elif self._plain:
                pct = self.done * 100 // self.total
                if pct >= self._last_pct + 10 or now - self._last_line >= 10 or self.done == self.total:
                    eta = (self.total - self.done) / rate if rate else 0
                    print(
                        f"{self.label}: {self.done}/{self.total} ({pct}%), {rate:.0f} msg/s, ETA {eta:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    self._last_line, self._last_pct = now, pct - pct % 10

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
