"""How much looking at a mailing's pause costs a send on SQLite: `send_edition` to the null sink with the
pause looked at every 64 messages and 0.1 s, every 500 messages and 0.1 s (what a SQLite sender does),
and every 500 messages only (before), interleaved in the same run.

python bench/run.py pause
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from bench_edition import _twenty_story_root

from newsletter.config import load_settings
from newsletter.delivery import rows as rows_module
from newsletter.delivery.send import send_edition
from newsletter.delivery.sinks.memory import NullSink
from newsletter.delivery.unsubscribe import SECRET_ENV

DAY = date(2016, 12, 30)
READERS = 20_000
RUNS = 3


def _once(root: Path, every: int, look: float, n: int) -> float:
    rows_module.PAUSE_EVERY_SQLITE, rows_module.PAUSE_LOOK = every, look
    (root / "data").mkdir(exist_ok=True)
    for path in (root / "data").glob("ledger*"):
        if path.is_dir():
            for f in path.iterdir():
                f.unlink()
    settings = load_settings(root, environ={})
    started = time.perf_counter()
    report = send_edition(settings, DAY, subscribers="subscribers.csv", sink=NullSink(), progress=False)
    took = time.perf_counter() - started
    assert report.sent == n, report.sent
    return took


def figures() -> Iterator[tuple[str, float, str]]:
    os.environ.setdefault(SECRET_ENV, "bench-secret-not-a-real-one")
    saved = rows_module.PAUSE_EVERY_SQLITE, rows_module.PAUSE_LOOK
    with tempfile.TemporaryDirectory() as tmp:
        root = _twenty_story_root(Path(tmp))
        lines = ["email"] + [f"reader{i}@example.org" for i in range(READERS)]
        (root / "subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        often, now, before = [], [], []
        for _ in range(RUNS):  # interleaved, so a busy moment of the machine hits each
            often.append(_once(root, 64, 0.1, READERS))
            now.append(_once(root, 500, 0.1, READERS))
            before.append(_once(root, 500, 1e9, READERS))
    rows_module.PAUSE_EVERY_SQLITE, rows_module.PAUSE_LOOK = saved
    o, a, b = statistics.median(often), statistics.median(now), statistics.median(before)
    yield f"send {READERS} to the null sink, pause looked at every 64 messages and 0.1 s", o, "s"
    yield f"send {READERS} to the null sink, pause looked at every 500 messages and 0.1 s (now)", a, "s"
    yield f"send {READERS} to the null sink, pause looked at every 500 messages (before)", b, "s"
    yield "ratio every 64 / before", o / b, "x"
    yield "ratio now / before", a / b, "x"
