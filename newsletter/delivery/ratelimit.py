"""The send rate: spaced sends, lowered only when the server says it is loaded, recovering by the second.

What counts as a signal about the *server's* load (`RateLimiter.throttle`): a 421 (the server closes the
connection), a 4xx to MAIL FROM or at connect (it refuses new work), or a run of deferrals across many
different recipients. One recipient's 451 at RCPT or at the end of DATA (greylisting, a full mailbox) says
nothing about the server and only goes into that run-count (`RateLimiter.deferral`).

The response is AIMD, as in TCP: a decrease of the rate on a signal — x0.85 at most every 5 `hold`
seconds for a signal among mostly successes, x0.5 at most every `hold` seconds when signals are a large
share of the recent tries or come as a run (the effect of a decrease takes a moment to show) — then an
additive increase of a tenth of the ceiling for every second, back at the ceiling after a quiet minute.
A trickle of signals thus keeps the rate near its ceiling, a storm of them brings it down fast, and it
never sticks at the floor once the signals stop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

STREAK = 8  # deferrals of this many different recipients in a row, with no success between: the server is loaded
WINDOW = 50  # tries looked at for the share of load signals
SEVERE = 0.2  # a share of load signals at or above this halves the rate instead of taking a quarter off
MILD_FACTOR, SEVERE_FACTOR = 0.85, 0.5
MILD_HOLDS = 5  # a lone signal lowers the rate at most every 5 `hold`s: a trickle of 421s (a relay recycling
# its connections) must not keep the rate down, a storm of them (a large share: severe) halves it every `hold`
SLACK = 0.1  # seconds of unused sending slots that may still be used (a burst of at most rate / 10)
QUIET_RESET = 60.0  # seconds without a signal: straight back to the ceiling


class RateLimiter:
    """Spaces sends to at most `rate` per second (None: no limit) and adapts to the server's load signals.

    With no configured rate the first signal sets the ceiling at the rate then being achieved; once the
    rate is back at it, the limit is lifted again. `clock` is injectable for tests.
    """

    def __init__(
        self, rate: float = 0.0, *, floor: float = 1.0, hold: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_rate = rate if rate > 0 else None
        self.rate = self.max_rate
        self.floor = floor
        self.hold = hold
        self.throttles = 0  # load signals seen (each may or may not have lowered the rate)
        self.lowest = self.rate
        self._clock = clock
        self._ceiling = self.max_rate
        self._achieved = 0.0  # with no configured rate: the best rate seen before a signal (rates seen while
        # limited are lower, and taking them as the ceiling would ratchet it down signal after signal)
        self._next = 0.0
        self._recent: deque[float] = deque(maxlen=64)  # times of the last successes
        self._window: deque[bool] = deque(maxlen=WINDOW)  # recent tries: True for a load signal
        self._streak: set[str] = set()  # recipients deferred since the last success
        self._lowered_at = -1e18
        self._signal_at = -1e18
        self._step_at = 0.0
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
            now = self._clock()
            self._recover(now)
            if self.rate is None:
                return not stop.is_set()
            # A slot nobody took (every connection was busy) may be taken late, up to SLACK seconds: else
            # the achieved rate falls well below the limit whenever the server's pace varies.
            at = max(now - SLACK, self._next)
            self._next = at + 1.0 / self.rate
        delay = at - now
        return not stop.wait(delay) if delay > 0 else not stop.is_set()

    def success(self) -> None:
        with self._lock:
            now = self._clock()
            self._recent.append(now)
            self._window.append(False)
            self._streak.clear()
            self._recover(now)

    def deferral(self, recipient: str) -> None:
        """One recipient deferred (4xx at RCPT or DATA): a load signal only as part of a long enough run."""
        with self._lock:
            self._window.append(False)
            self._streak.add(recipient.lower())
            if len(self._streak) < STREAK:
                return
            self._streak.clear()
            self._lower(self._clock(), severe=True)

    def throttle(self) -> None:
        """The server signalled load (421, 4xx to MAIL FROM or at connect)."""
        with self._lock:
            self._window.append(True)
            share = sum(self._window) / len(self._window)
            self._lower(self._clock(), severe=len(self._window) >= 10 and share >= SEVERE)

    def _lower(self, now: float, *, severe: bool) -> None:
        self.throttles += 1
        self._signal_at = now
        if now - self._lowered_at < (self.hold if severe else MILD_HOLDS * self.hold):
            return  # the same episode: the last decrease has not had time to show
        if self.rate is None:
            self._achieved = max(self._achieved, self.observed() or 10.0)
        current = self.rate or self._achieved
        if self._ceiling is None:
            self._ceiling = max(self.floor, current)
        self.rate = max(self.floor, current * (SEVERE_FACTOR if severe else MILD_FACTOR))
        self._lowered_at = self._step_at = now
        self._next = now + 1.0 / self.rate
        self.lowest = self.rate if self.lowest is None else min(self.lowest, self.rate)

    def _recover(self, now: float) -> None:
        """Additive increase: a tenth of the ceiling per second since the last step; all of it after a quiet minute."""
        if self.rate is None or self._ceiling is None or self.rate >= self._ceiling:
            return
        if now - self._signal_at >= QUIET_RESET:
            self.rate = self._ceiling
        else:
            seconds = now - self._step_at
            if seconds < 1.0:
                return
            self.rate = min(self._ceiling, self.rate + self._ceiling / 10 * int(seconds))
            self._step_at += int(seconds)
        if self.rate >= self._ceiling and self.max_rate is None:
            self.rate = None  # back where we were: lift the limit
            self._ceiling = None
