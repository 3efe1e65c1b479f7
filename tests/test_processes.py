"""Several sender processes over one mailing (`send --processes N`): every reader once, on both backends.

A real aiosmtpd relay counts what arrives and on which connection; the senders are forked children of
the test's own `send_edition`. A child killed with SIGKILL ends the run with one line; the rerun sends
the rest, duplicating at most what that child had in flight plus one flush window of records.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import load_settings
from newsletter.delivery.batching import FLUSH_SECONDS
from newsletter.delivery.options import MailingOptions
from newsletter.delivery.processes import process_count
from newsletter.delivery.send import send_edition
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.errors import DeliveryError
from tests.test_smtp_server import SmtpTestServer, StoreHandler, serve

DAY = date(2016, 12, 30)
CONNECTIONS = 2
WINDOW = FLUSH_SECONDS * 6  # a flush window with room for a loaded machine's scheduling


class Counting(StoreHandler):
    """Stores each message with the connection it came on; `delay` slows each reply down."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.peers: set[Any] = set()
        self.times: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.store(envelope)
        self.peers.add(session.peer)
        self.times.append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 OK queued"

    def recent(self, seconds: float) -> int:
        now = time.monotonic()
        return sum(1 for t in self.times if now - t <= seconds)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "processes-secret")


def _list(root: Path, n: int) -> None:
    lines = ["email,name"] + [f"reader{i:04d}@example.com,Reader {i}" for i in range(n)]
    (root / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _send(root: Path, server: SmtpTestServer, database_url: str, processes: int) -> Any:
    settings = load_settings(root, environ={"NEWSLETTER_DATABASE_URL": database_url} if database_url else {})
    return send_edition(
        settings,
        DAY,
        subscribers="list.csv",
        smtp=server.url,
        connections=CONNECTIONS,
        processes=processes,
        progress=False,
    )


@pytest.fixture
def relay() -> Iterator[SmtpTestServer]:
    with serve(Counting()) as server:
        yield server


def test_two_processes_send_each_reader_once(demo_root: Path, relay: SmtpTestServer, database_url: str) -> None:
    # PostgreSQL senders claim 500 rows at a time (ledger_pg.py): enough rows for both to get a claim.
    n = 1100 if database_url else 120
    _list(demo_root, n)
    report = _send(demo_root, relay, database_url, processes=2)
    assert (report.sent_now, report.sent, report.pending, report.failed) == (n, n, 0, 0), report.summary()
    counts = Counter(r.rcpt_tos[0] for r in relay.received)
    assert counts == Counter({f"reader{i:04d}@example.com": 1 for i in range(n)})
    # Two processes, each with connections of its own to the relay.
    assert report.processes == 2 and len(relay.handler.peers) >= 2
    again = _send(demo_root, relay, database_url, processes=2)
    assert (again.sent_now, len(relay.received)) == (0, n)  # a rerun sends nothing twice


@pytest.mark.parametrize("bar", [True, None], ids=["rich bar", "plain lines"])
def test_the_parent_shows_one_progress_count_that_reaches_the_total(
    demo_root: Path,
    relay: SmtpTestServer,
    bar: bool | None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each sender process counts into shared memory; the parent shows the sum on its one bar (or, off a
    terminal, in its plain lines), and the last one shown is every message."""
    monkeypatch.setenv("COLUMNS", "200")  # the bar's whole line, not cut at 80 characters
    n = 150
    _list(demo_root, n)
    settings = load_settings(demo_root, environ={})
    report = send_edition(
        settings, DAY, subscribers="list.csv", smtp=relay.url, connections=CONNECTIONS, processes=2, progress=bar
    )
    assert report.processes == 2 and report.sent_now == n
    shown = capsys.readouterr().err
    assert f"{n}/{n}" in shown and f"sent {n}, deferred 0, failed 0" in shown, shown
    if bar is None:
        assert shown.strip().splitlines()[-1].startswith(f"sending {DAY}: {n}/{n} (100%)"), shown


def test_a_killed_sender_process_costs_only_its_messages_in_flight(demo_root: Path) -> None:
    n = 400
    _list(demo_root, n)
    handler = Counting(delay=0.01)
    killed: list[int] = []
    at_kill: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 60
        while len(handler.received) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        child = multiprocessing.active_children()[0]
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        at_kill.append(handler.recent(WINDOW))
        killed.append(child.pid)

    with serve(handler) as server:
        killer = threading.Thread(target=kill_one)
        killer.start()
        with pytest.raises(DeliveryError, match=r"sender process \d of 2 died \(signal 9\).*rerun"):
            _send(demo_root, server, "", processes=2)
        killer.join()
        handler.delay = 0.0
        report = _send(demo_root, server, "", processes=2)
    assert killed and report.pending == 0 and report.sent == n, report.summary()
    counts = Counter(r.rcpt_tos[0] for r in handler.received)
    assert set(counts) == {f"reader{i:04d}@example.com" for i in range(n)}
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= CONNECTIONS + at_kill[0], (duplicates, at_kill)


def test_how_many_processes() -> None:
    options = MailingOptions()
    cores = os.cpu_count() or 1
    assert process_count(None, options, smtp=True, pending=1_000_000) == cores
    assert process_count(None, options, smtp=True, pending=10) == 1  # a small mailing is not worth a fork
    assert process_count(None, options, smtp=False, pending=1_000_000) == 1  # the outbox is one disk
    assert process_count(3, options, smtp=False, pending=10) == 3
    assert process_count(None, MailingOptions(processes=4), smtp=True, pending=10) == 4
