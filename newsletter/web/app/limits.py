"""Rate limits for the public forms: at most N requests per key in a sliding window.

Kept in memory, per worker process: with `--workers 4` each worker counts on its own, so the effective
limit is up to four times the setting. That bounds abuse well enough for a sign-up form; the reverse
proxy (nginx `limit_req`, Caddy `rate_limit`) is the place for a hard global limit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque


class SlidingWindow:
    """`hit(key)` → None when allowed (and counted), else the seconds until the next one would be."""

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> float | None:
        if self.limit <= 0:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
                if len(self._hits) > self.max_keys:  # forget the least recently seen keys first
                    self._hits.popitem(last=False)
            else:
                self._hits.move_to_end(key)
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1.0, hits[0] + self.window - now)
            hits.append(now)
            return None
