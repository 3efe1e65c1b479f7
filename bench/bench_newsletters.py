"""Several newsletters on one reader base: is enrolling one newsletter's readers as fast as with one?

Two SQLite reader bases of the same N readers (default 1,000,000; NEWSLETTER_BENCH_READERS to change):
- one newsletter: every reader confirmed, subscribed to `daily` (the single `[list]` install);
- three newsletters: the same readers, subscribed to `daily` (all), `weekly` (every other reader) and
  `breaking` (every third), overlapping.
Each figure is the median of 3 runs, side by side, and their ratio:
- `enrol`: the readers `send` enrols for `daily` (`store_source(settings)`: the joined, paged query of
  `ReaderBase.enrolled`, each row made into a `Subscriber`), what a send of that edition reads first;
- `enrol weekly`: the same for the weekly (half the readers) on the three-newsletter base, for scale.

    python bench/run.py newsletters
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from newsletter.config import load_settings
from newsletter.delivery import store_source
from newsletter.letters import chosen_settings
from newsletter.storage import open_readers

READERS = int(os.environ.get("NEWSLETTER_BENCH_READERS", "1000000"))
NOW = "2016-12-29T10:00:00+00:00"
THREE = """
[newsletters.daily]
name = "Daily"
[newsletters.weekly]
name = "Weekly"
rhythm = "weekly"
day = "friday"
[newsletters.breaking]
name = "Breaking"
rhythm = "on-demand"
"""


def _base(root: Path, config: str, letters: dict[str, int]) -> None:
    """A reader base of READERS confirmed readers; reader i subscribed to each newsletter whose step divides i."""
    (root / "stories").mkdir(parents=True)
    (root / "newsletter.toml").write_text(config, encoding="utf-8")
    with open_readers(load_settings(root, environ={})):
        pass  # the schema, as the product makes it
    db = sqlite3.connect(root / "data" / "subscribers.sqlite")
    with db:
        db.executemany(
            "INSERT INTO subscribers (key, email, name, locale, status, created_at, confirmed_at, updated_at) "
            "VALUES (?, ?, 'R', 'en', 'confirmed', ?, ?, ?)",
            ((f"r{i}@example.org", f"r{i}@example.org", NOW, NOW, NOW) for i in range(READERS)),
        )
        for letter, step in letters.items():
            db.executemany(
                "INSERT INTO subscriptions (reader_key, newsletter, status, created_at, updated_at, confirmed_at) "
                "VALUES (?, ?, 'confirmed', ?, ?, ?)",
                ((f"r{i}@example.org", letter, NOW, NOW, NOW) for i in range(0, READERS, step)),
            )
        db.executemany(  # a few suppressed readers, as a real base has
            "INSERT INTO suppression (key, address, reason, source, created_at) VALUES (?, ?, 'bounced', 'bench', ?)",
            ((f"r{i}@example.org", f"r{i}@example.org", NOW) for i in range(7, READERS, 1000)),
        )
    db.close()


def _enrol(root: Path, newsletter: str) -> tuple[float, int]:
    settings = next(s for s in chosen_settings(load_settings(root, environ={}), None) if s.newsletter == newsletter)
    started = time.perf_counter()
    count = sum(1 for _ in store_source(settings))
    return time.perf_counter() - started, count


def _median(root: Path, newsletter: str) -> tuple[float, int]:
    runs = [_enrol(root, newsletter) for _ in range(3)]
    return statistics.median(t for t, _ in runs), runs[0][1]


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-newsletters-") as tmp:
        one, three = Path(tmp) / "one", Path(tmp) / "three"
        _base(one, "", {"daily": 1})
        _base(three, THREE, {"daily": 1, "weekly": 2, "breaking": 3})
        alone, n_alone = _median(one, "daily")
        shared, n_shared = _median(three, "daily")
        assert n_alone == n_shared, (n_alone, n_shared)
        yield f"enrol daily, one newsletter ({n_alone} readers)", alone, "s"
        yield f"enrol daily, three newsletters ({n_shared} readers)", shared, "s"
        yield "enrol daily: three / one", shared / alone, "x"
        weekly, n_weekly = _median(three, "weekly")
        yield f"enrol weekly, three newsletters ({n_weekly} readers)", weekly, "s"
