"""Scheduler figures: run-time arithmetic, the runs table, a stray fire, daemon start-up and shut-down."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from newsletter import schedule as sched
from newsletter.config import load_settings
from newsletter.edition.select import window


def _median(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class _Sent:
    sent, failed, skipped, retried, pending, complete = 1, 0, 0, 0, 0, True


def _send(settings: Any, day: date, *, stop: threading.Event | None = None) -> _Sent:
    return _Sent()


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "paper"
        (root / "stories").mkdir(parents=True)
        (root / "newsletter.toml").write_text('[schedule]\nat = "06:00"\n', encoding="utf-8")
        settings = load_settings(root, environ={})
        config = sched.read_config(settings)
        trigger = config.trigger()
        start = datetime(2027, 1, 1, tzinfo=UTC)
        yield "next_runs_365_days", _median(lambda: sched.next_runs(trigger, start, 365), 5) * 1000, "ms"
        yield "latest_fire", _median(lambda: sched.latest_fire(trigger, start), 50) * 1000, "ms"

        store = sched.RunStore(sched.store_path(settings))
        days = iter(date(2000, 1, 1) + timedelta(days=n) for n in range(100_000))

        def claim_and_finish() -> None:
            day = next(days)
            store.claim(day, start, "bench:1", start)
            store.finish(day, sched.State.COMPLETED, start, "sent 1")

        yield "runs_claim_and_finish", _median(claim_and_finish, 50) * 1000, "ms"

        day = date(2027, 3, 29)
        _start, end = window(day, settings)
        (root / "stories" / "a.md").write_text(
            f'---\ntitle: "A"\npublished: {(end - timedelta(hours=2)).isoformat()}\n---\nBody.\n', encoding="utf-8"
        )
        morning_at = datetime(2027, 3, 29, 4, 0, 30, tzinfo=UTC)  # 06:00:30 Paris
        morning = sched.Morning(settings, config, send=_send, clock=lambda: morning_at, store=store)
        assert morning.fire().outcome == sched.Outcome.COMPLETED
        yield "stray_fire_already_done", _median(morning.fire, 50) * 1000, "ms"

        def start_and_stop() -> None:
            daemon = sched.Daemon(settings, config, send=_send, install_signals=False)
            thread = threading.Thread(target=daemon.run)
            thread.start()
            daemon.started.wait(30)
            daemon.request_stop("bench")
            thread.join(30)

        yield "daemon_start_to_stop", _median(start_and_stop, 5) * 1000, "ms"
