"""Enrolment from the reader base: what a send reads before its first message, beside the query it replaced.

python bench/run.py readers        (BENCH_READERS_N=1000000 for the full size; default 200,000)

- The reference: every `confirmed` row of `subscribers`, a page of 1,000 at a time by id (the enrolment
  query before the reader base).
- The send's query now (`ReaderBase.enrolled`): confirmed, not paused, a confirmed subscription to the
  newsletter, not suppressed — one joined query, paged the same way. 1 % of the readers bounced.
- Both on the same SQLite file in the same run, medians of 3; the ratio is the figure to watch.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from newsletter.storage import ReaderBase
from newsletter.storage.readerbase import open_reader_base_file

N = int(os.environ.get("BENCH_READERS_N", "200000"))


def _fill(base: ReaderBase, n: int) -> None:
    now = "2026-12-01T06:00:00+00:00"
    db = base.db
    with db.transaction():
        db.many(
            "INSERT INTO subscribers (key, email, name, locale, status, created_at, updated_at, confirmed_at) "
            "VALUES (?, ?, 'Reader', 'fr', 'confirmed', ?, ?, ?)",
            ((f"r{i}@example.org", f"r{i}@example.org", now, now, now) for i in range(n)),
        )
        db.many(
            "INSERT INTO subscriptions (reader_key, newsletter, status, created_at, updated_at) "
            "VALUES (?, 'daily', 'confirmed', ?, ?)",
            ((f"r{i}@example.org", now, now) for i in range(n)),
        )
        db.many(
            "INSERT INTO suppression (key, address, reason, source, created_at) VALUES (?, ?, 'bounced', 'bench', ?)",
            ((f"r{i}@example.org", f"r{i}@example.org", now) for i in range(0, n, 100)),
        )
        # As a bounce leaves them: the reader bounced, the subscription ended.
        db.execute("UPDATE subscribers SET status = 'bounced' WHERE key IN (SELECT key FROM suppression)")
        db.execute("UPDATE subscriptions SET status = 'unsubscribed' WHERE reader_key IN (SELECT key FROM suppression)")


def _time(read: Iterator[object]) -> tuple[float, int]:
    started = time.perf_counter()
    count = sum(1 for _ in read)
    return time.perf_counter() - started, count


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        base = ReaderBase(open_reader_base_file(Path(tmp) / "subscribers.sqlite"))
        _fill(base, N)
        before, after = [], []
        for _ in range(3):
            seconds, _count = _time(base.subscribers.records("confirmed"))
            before.append(seconds)
            seconds, count = _time(base.enrolled(today="2026-12-07"))
            after.append(seconds)
            assert count == N - len(range(0, N, 100))
        base.close()
    yield "readers.enrol_status_only.median", statistics.median(before), "s"
    yield "readers.enrol_reader_base.median", statistics.median(after), "s"
    yield "readers.enrol_ratio", statistics.median(after) / statistics.median(before), "x"
