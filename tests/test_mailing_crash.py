"""Crash safety: real `newsletter send` processes killed with SIGKILL at several points, then rerun.

Every subscriber must end up with the edition (0 missing), and a kill may duplicate at most the
messages in flight at that instant (one per SMTP connection) plus the results of one ledger flush window
(outcomes are written every ~50 ms): the messages the server accepted in the moments before the kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import load_settings
from newsletter.delivery.batching import FLUSH_SECONDS
from newsletter.delivery.ledger import Ledger, ledger_path
from newsletter.delivery.unsubscribe import SECRET_ENV
from tests.test_smtp_server import SmtpTestServer, StoreHandler, serve

SECRET = "crash-secret"
N = 40
WINDOW = FLUSH_SECONDS * 6  # a flush window with room for a loaded machine's scheduling


class HoldingHandler(StoreHandler):
    """Stores each message, then (for the `hold_at`-th one) waits before replying: that message is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_at: int | None = None
        self.held = threading.Event()
        self.times: list[float] = []

    def recent(self, seconds: float) -> int:
        """Messages received in the last `seconds` (their outcome may still sit in a flush window)."""
        now = time.monotonic()
        return sum(1 for t in self.times if now - t <= seconds)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.store(envelope)
        self.times.append(time.monotonic())
        if self.hold_at is not None and len(self.received) >= self.hold_at:
            self.hold_at = None
            self.held.set()
            await asyncio.sleep(60)  # the client is killed meanwhile; the test server is stopped at the end
        return "250 2.0.0 OK queued"


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with serve(HoldingHandler()) as s:
        yield s


def send_cmd(root: Path, url: str, connections: int) -> list[str]:
    return [
        sys.executable, "-m", "newsletter", "send", "--root", str(root), "--date", "2016-12-30",
        "--subscribers", "list.csv", "--smtp", url, "--connections", str(connections), "--no-progress",
    ]  # fmt: skip


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_sigkill_at_several_points_then_rerun(demo_root: Path, server: SmtpTestServer) -> None:
    root = demo_root
    lines = ["email,name"] + [f"k{i:02d}@example.com,Reader {i}" for i in range(N)]
    (root / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, SECRET_ENV: SECRET}
    handler: HoldingHandler = server.handler
    ledger_file = ledger_path(load_settings(root, environ={}), __import__("datetime").date(2016, 12, 30))
    in_flight_budget = 0

    def start(connections: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            send_cmd(root, server.url, connections), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def kill(proc: subprocess.Popen[str]) -> int:
        """SIGKILL; the messages whose outcome may not have reached the ledger yet (one flush window)."""
        window = handler.recent(WINDOW)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        return window

    # 1. Killed as soon as the ledger exists: while enrolling the list, or right at the first message.
    proc = start(1)
    wait_for(ledger_file.exists)
    in_flight_budget += 1 + kill(proc)

    # 2. Killed mid-transaction: the 5th message has been received but not yet acknowledged.
    handler.hold_at = 5
    handler.held.clear()
    proc = start(1)
    wait_for(handler.held.is_set)
    time.sleep(WINDOW)  # the 4 acknowledged ones reach the ledger within a flush window, sender blocked or not
    in_flight_budget += 1 + kill(proc)
    held = handler.received[-1].rcpt_tos[0]
    with Ledger(ledger_file) as ledger:
        assert ledger.state_of(held) == "pending"  # never acknowledged, so it will be sent again
        assert ledger.counts().sent >= 4

    # 3. Three connections, killed while one of them waits for its reply (the others may be mid-send too).
    handler.hold_at = len(handler.received) + 8
    handler.held.clear()
    proc = start(3)
    wait_for(handler.held.is_set)
    in_flight_budget += 3 + kill(proc)

    # 4. Killed at an arbitrary instant of a busy send (between a reply and its ledger commit, perhaps).
    target = len(handler.received) + 7
    proc = start(2)
    wait_for(lambda: len(handler.received) >= target or proc.poll() is not None)
    if proc.poll() is None:
        in_flight_budget += kill(proc)
    in_flight_budget += 2

    # The ledger survived every kill: it opens, and what it calls sent really arrived.
    with Ledger(ledger_file) as ledger:
        counts = ledger.counts()
        sent_rows = {r["address"] for r in ledger.rows("sent", limit=N)}
    received = Counter(r.rcpt_tos[0] for r in handler.received)
    assert sent_rows <= set(received), "the ledger says sent but the server never got it"
    assert counts.total == N

    # 5. The rerun completes.
    final = subprocess.run(send_cmd(root, server.url, 2), env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert "pending 0" in final.stdout

    received = Counter(r.rcpt_tos[0] for r in handler.received)
    missing = {f"k{i:02d}@example.com" for i in range(N)} - set(received)
    duplicates = sum(n - 1 for n in received.values())
    assert missing == set()
    assert 2 <= duplicates <= in_flight_budget, (duplicates, in_flight_budget)  # the two held ones at least
    # Resent at least once; a later kill inside its record's flush window may resend it again (within budget).
    assert received[held] >= 2
    with Ledger(ledger_file) as ledger:
        assert ledger.counts().sent == N
        runs = ledger.runs()
    assert [r["status"] for r in runs][-1] == "done"
    assert sum(r["status"] == "running" for r in runs) >= 3  # the killed runs never finished
    # A held (in-flight) message is resent: its duplicate carries the same Message-ID, so mailboxes fold them.
    for address, n in received.items():
        if n > 1:
            ids = {r.message["Message-ID"] for r in handler.received if r.rcpt_tos[0] == address}
            assert len(ids) == 1
