"""The sign-in rate limit: after `attempts` failures for one user name, or from one client address,
within `window` seconds, sign-ins for it are refused (without checking the password) until the oldest
failure leaves the window. A success does not reset the address's count: a guesser who also knows one
password gains nothing.

Kept in memory per server process, like the public forms' limits (web/app/limits.py); the key space is
bounded, oldest keys forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque


class LoginLimit:
    def __init__(self, attempts: int, window: float, max_keys: int = 100_000) -> None:
        self.attempts = attempts
        self.window = window
        self.max_keys = max_keys
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> deque[float]:
        fails = self._fails.get(key)
        if fails is None:
            fails = self._fails[key] = deque()
            if len(self._fails) > self.max_keys:
                self._fails.popitem(last=False)
        while fails and fails[0] <= now - self.window:
            fails.popleft()
        return fails

    def wait(self, *keys: str, now: float | None = None) -> float:
        """Seconds until any of `keys` may try again; 0 when all may now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [
                fails[0] + self.window - now
                for fails in (self._live(k, now) for k in keys)
                if len(fails) >= self.attempts
            ]
        return max(waits, default=0.0)

    def failed(self, *keys: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in keys:
                self._live(key, now).append(now)
                self._fails.move_to_end(key)

    def forget(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)
