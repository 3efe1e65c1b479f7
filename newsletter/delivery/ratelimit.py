"""The send rate: spaced sends, halved when the server throttles, climbing back with every success."""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimiter:
    """Spaces sends to at most `rate` per second (0: no limit) and backs off when the server throttles.

    A throttling reply halves the rate (starting from the rate actually achieved when there was no
    limit); every success then raises it by 5 % until it is back at the configured rate — or, with no
    configured rate, back at the rate that was being achieved when the throttling began, where the
    limit is lifted again.
    """

    def __init__(self, rate: float = 0.0, *, floor: float = 1.0) -> None:
        self.max_rate = rate if rate > 0 else None
        self.rate = self.max_rate
        self.floor = floor
        self.throttles = 0
        self.lowest = self.rate
        self._ceiling = self.max_rate
        self._next = 0.0
        self._recent: deque[float] = deque(maxlen=64)
        self._lock = threading.Lock()

    def observed(self) -> float | None:
        """Successes per second over the last few dozen."""
        if len(self._recent) < 2 or self._recent[-1] <= self._recent[0]:
            return None
        return (len(self._recent) - 1) / (self._recent[-1] - self._recent[0])

    def wait(self, stop: threading.Event) -> bool:
        """Block until the next send may start; False when `stop` was set meanwhile."""
        with self._lock:
            if self.rate is None:
                return not stop.is_set()
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + 1.0 / self.rate
        delay = at - now
        return not stop.wait(delay) if delay > 0 else not stop.is_set()

    def success(self) -> None:
        with self._lock:
            self._recent.append(time.monotonic())
            if self.rate is None or self._ceiling is None:
                return
            if self.rate < self._ceiling:
                self.rate = min(self._ceiling, self.rate * 1.05)
            if self.rate >= self._ceiling and self.max_rate is None:
                self.rate = None  # back where we were: lift the limit
                self._ceiling = None

    def throttle(self) -> None:
        with self._lock:
            current = self.rate or self.observed() or 10.0
            if self.max_rate is None and self._ceiling is None:
                self._ceiling = max(self.floor, current)
            self.rate = max(self.floor, current / 2)
            self._next = time.monotonic() + 1.0 / self.rate
            self.throttles += 1
            self.lowest = self.rate if self.lowest is None else min(self.lowest, self.rate)
