"""Operations overhead: what the Prometheus counting costs the send loop, beside the loop without it.

- `Stats.add` per message outcome without a hook (the reference) and with the metrics hook counting into
  a shared multiprocess folder; the ratio is the figure to watch.
- One `/metrics` exposition of a folder after a 200,000-message run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from newsletter import metrics
from newsletter.config import load_settings
from newsletter.delivery.loop import Stats

N = 200_000


def _adds(hook: metrics.MessageCounter | None) -> float:
    stats = Stats()
    stats.hook = hook
    started = time.perf_counter()
    for _ in range(N):
        stats.add("sent")
    return (time.perf_counter() - started) / N * 1e6


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "newsletter.toml").write_text('[metrics]\ndir = "metrics"\n', encoding="utf-8")
        metrics.setup(load_settings(root, environ={}))
        plain, hooked = [], []
        for _ in range(3):
            counter = metrics.message_counter("bench.example.org", "2016-12-30", "en", N)
            plain.append(_adds(None))
            hooked.append(_adds(counter))
            counter.close()
        yield "ops.stats_add_without_metrics.median", statistics.median(plain), "us/msg"
        yield "ops.stats_add_with_metrics.median", statistics.median(hooked), "us/msg"
        yield "ops.metrics_overhead_ratio", statistics.median(hooked) / statistics.median(plain), "x"
        scrapes = []
        for _ in range(3):
            started = time.perf_counter()
            metrics.exposition()
            scrapes.append((time.perf_counter() - started) * 1e3)
        yield "ops.metrics_exposition.median", statistics.median(scrapes), "ms"
