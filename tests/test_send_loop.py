"""The send loop against a real aiosmtpd that defers and drops: no message waits on another.

Deferred messages go back into a due-time queue while the connection moves on; retries interleave with
first tries; `max_defer` and a stop leave them pending with their tries recorded; a relay failing every
message the same way, or an outbox that cannot be written, stops the run at once with one line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery.ledger import Ledger, ledger_path
from newsletter.delivery.loop import DueQueue
from newsletter.delivery.progress import Progress
from newsletter.delivery.send import ledger_report, send_edition
from newsletter.delivery.sinks.base import Envelope, Outcome
from newsletter.delivery.sinks.memory import MemorySink
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.errors import DeliveryError
from tests.test_smtp_server import FaultHandler, SmtpTestServer, serve

DAY = date(2016, 12, 30)
SECRET = "loop-secret"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
def fault_server() -> Iterator[SmtpTestServer]:
    with serve(FaultHandler()) as server:
        yield server


def paper(root: Path, n: int, mailing: str) -> Path:
    (root / "newsletter.toml").write_text(f"[mailing]\n{mailing}\n", encoding="utf-8")
    lines = ["email,name"] + [f"r{i}@example.com,Reader {i}" for i in range(n)]
    (root / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def delivered(server: SmtpTestServer) -> list[str]:
    return [r.rcpt_tos[0] for r in server.received]


def ledger_rows(root: Path) -> dict[str, dict[str, Any]]:
    with Ledger(ledger_path(load_settings(root, environ={}), DAY)) as ledger:
        return {r["address"]: r for r in ledger.rows(limit=10_000)}


def test_a_deferred_message_does_not_hold_its_connection(demo_root: Path, fault_server: SmtpTestServer) -> None:
    """One connection, one message deferred for ~1 s: the other 29 go meanwhile, its retry comes after."""
    paper(demo_root, 30, "retry_base = 2.0\nretry_max = 2.0")
    fault_server.handler.script = {"r0@example.com": ["rcpt451"], "r1@example.com": ["451"]}
    settings = load_settings(demo_root, {"smtp.url": fault_server.url}, environ={})
    t0 = time.monotonic()
    report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    elapsed = time.monotonic() - t0
    got = delivered(fault_server)
    assert report.ok and report.sent == 30 and report.retried == 2
    assert sorted(got) == sorted(f"r{i}@example.com" for i in range(30)) and len(set(got)) == 30  # exactly once
    assert got[:28] == [f"r{i}@example.com" for i in range(2, 30)]  # nobody waited on r0 or r1
    assert set(got[28:]) == {"r0@example.com", "r1@example.com"}
    assert elapsed < 2.0 + 3.0  # one backoff (1–2 s with jitter), not one per deferred message in a row
    assert report.throttled == 0  # one recipient's 451 says nothing about the server's load
    rows = ledger_rows(demo_root)
    assert rows["r0@example.com"]["attempts"] == 2 and rows["r2@example.com"]["attempts"] == 1


def test_retries_interleave_with_first_tries(demo_root: Path, fault_server: SmtpTestServer) -> None:
    """At 100 msg/s, 60 messages take 0.6 s: retries due after 0.1–0.2 s go in between first tries."""
    paper(demo_root, 60, "retry_base = 0.2\nretry_max = 0.2")
    (demo_root / "newsletter.toml").write_text(
        "[mailing]\nretry_base = 0.2\nretry_max = 0.2\n[smtp]\nrate = 100\n", encoding="utf-8"
    )
    fault_server.handler.script = {f"r{i}@example.com": ["rcpt451"] for i in (0, 1, 2)}
    settings = load_settings(demo_root, {"smtp.url": fault_server.url}, environ={})
    report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    got = delivered(fault_server)
    assert report.ok and report.sent == 60 and len(got) == len(set(got)) == 60
    where = [got.index(f"r{i}@example.com") for i in (0, 1, 2)]
    # Delivered after other first tries went ahead of them, and well before the last: a retry neither
    # holds its connection nor waits for the end. (A loaded machine sends slower than the rate, so a retry
    # can come due after fewer first tries; the rate caps how many can pass before it.)
    assert all(1 <= w <= 45 for w in where), where
    assert [fault_server.handler.attempts[f"r{i}@example.com"] for i in (0, 1, 2)] == [2, 2, 2]


def test_a_message_whose_connection_broke_is_retried_at_once(demo_root: Path, fault_server: SmtpTestServer) -> None:
    """Dropped mid-DATA, or answered 421 (the server closes that connection): no verdict on the message, so
    no backoff (here 15–30 s) before its retry on another connection; a 451 about the message still waits."""
    paper(demo_root, 12, "retry_base = 30\nretry_max = 30")
    fault_server.handler.script = {"r2@example.com": ["drop"], "r5@example.com": ["421"]}
    settings = load_settings(demo_root, {"smtp.url": fault_server.url}, environ={})
    t0 = time.monotonic()
    report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    assert time.monotonic() - t0 < 12, report.summary()
    assert report.ok and report.sent == 12 and report.retried == 2
    assert sorted(delivered(fault_server)) == sorted(f"r{i}@example.com" for i in range(12))


def test_max_defer_leaves_a_message_pending_for_the_next_run(demo_root: Path, fault_server: SmtpTestServer) -> None:
    paper(demo_root, 12, "retry_base = 30\nretry_max = 60\nmax_defer = 5")
    fault_server.handler.script = {"r3@example.com": ["rcpt451"]}
    settings = load_settings(demo_root, {"smtp.url": fault_server.url}, environ={})
    t0 = time.monotonic()
    report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    assert time.monotonic() - t0 < 10  # the retry would be due past max_defer: not waited for
    assert (report.sent, report.pending, report.deferred) == (11, 1, 1)
    row = ledger_rows(demo_root)["r3@example.com"]
    assert (row["state"], row["attempts"], row["code"]) == ("pending", 1, 451)
    again = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    assert again.ok and again.sent_now == 1
    assert Counter(delivered(fault_server))["r3@example.com"] == 1


def test_sigterm_during_a_backoff_leaves_the_ledger_right(demo_root: Path, fault_server: SmtpTestServer) -> None:
    paper(demo_root, 20, "retry_base = 30\nretry_max = 30")
    fault_server.handler.script = {"r0@example.com": ["451"], "r5@example.com": ["rcpt451"]}
    cmd = [sys.executable, "-m", "newsletter", "send", "--root", str(demo_root), "--date", "2016-12-30"]
    cmd += ["--subscribers", "list.csv", "--smtp", fault_server.url, "--no-progress"]
    proc = subprocess.Popen(cmd, env={**os.environ, SECRET_ENV: SECRET}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while len(fault_server.received) < 18 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fault_server.received) == 18  # everyone but the two waiting for their retry
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert time.monotonic() - t0 < 5  # the 15–30 s backoff is not waited out
    assert proc.returncode == 4, err  # incomplete: run again
    assert b"Traceback" not in err and b"pending 2" in out
    rows = ledger_rows(demo_root)
    assert (rows["r0@example.com"]["state"], rows["r0@example.com"]["attempts"]) == ("pending", 1)
    assert rows["r0@example.com"]["code"] == 451 and rows["r5@example.com"]["code"] == 451
    assert sum(r["state"] == "sent" for r in rows.values()) == 18
    report = send_edition(load_settings(demo_root, {"smtp.url": fault_server.url}, environ={}), DAY,
                          subscribers="list.csv", progress=False)  # fmt: skip
    assert report.ok and report.sent_now == 2
    assert sorted(Counter(delivered(fault_server)).values()) == [1] * 20


def test_a_relay_that_cuts_every_message_stops_the_run(demo_root: Path, fault_server: SmtpTestServer) -> None:
    paper(demo_root, 60, "retry_base = 0.01\nretry_max = 0.02\nstop_after_same_failures = 20")
    fault_server.handler.script = {f"r{i}@example.com": ["drop"] * 10 for i in range(60)}
    args = ["send", "--root", str(demo_root), "--date", "2016-12-30", "--subscribers", "list.csv"]
    args += ["--smtp", fault_server.url, "--connections", "2", "--no-progress"]
    t0 = time.monotonic()
    result = CliRunner().invoke(cli, args, env={SECRET_ENV: SECRET})
    assert time.monotonic() - t0 < 30
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: the relay failed 20 messages in a row the same way, last reply: connection")
    assert "the rest stay pending" in lines[-1] and "Traceback" not in result.output
    assert fault_server.received == []
    tries = sum(fault_server.handler.attempts.values())
    assert 20 <= tries <= 22  # stopped at the 20th (plus what was in flight on the other connection)
    report = ledger_report(load_settings(demo_root, environ={}), DAY)
    assert report is not None and (report.sent, report.failed, report.pending) == (0, 0, 60)  # nothing lost
    with Ledger(ledger_path(load_settings(demo_root, environ={}), DAY)) as ledger:
        assert ledger.runs()[-1]["status"] == "relay failing"


def test_identical_permanent_refusals_stop_the_run_but_bounces_do_not(demo_root: Path) -> None:
    # The circuit breaker (tests/test_breaker.py) would pause both runs first: off, to see this rule alone.
    paper(demo_root, 40, "stop_after_same_failures = 5\nbreaker_policy_run = 0\nbreaker_window = 0")

    class SpamWall(MemorySink):
        def send(self, envelope: Envelope) -> Outcome:
            return Outcome("permanent", 554, f"554 5.7.1 <{envelope.recipient}> rejected as spam", stage="data")

    with pytest.raises(DeliveryError, match=r"failed 5 messages in a row the same way, last reply: 554 5\.7\.1"):
        send_edition(load_settings(demo_root, environ={}), DAY, subscribers="list.csv", sink=SpamWall(),
                     progress=False)  # fmt: skip

    class UnknownUsers(MemorySink):
        def send(self, envelope: Envelope) -> Outcome:
            return Outcome("permanent", 550, f"550 5.1.1 <{envelope.recipient}>: no such user", stage="rcpt")

    (demo_root / "data").rename(demo_root / "data-before")
    report = send_edition(load_settings(demo_root, environ={}), DAY, subscribers="list.csv", sink=UnknownUsers(),
                          progress=False)  # fmt: skip
    assert report.failed == 40 and report.pending == 0  # each address's own problem: the run goes on


def test_load_signals_are_told_from_one_recipients_deferral(demo_root: Path) -> None:
    paper(demo_root, 30, "retry_base = 0.01\nretry_max = 0.02")

    class Relay(MemorySink):
        def __init__(self) -> None:
            super().__init__()
            self.seen: Counter[str] = Counter()

        def send(self, envelope: Envelope) -> Outcome:
            self.seen[envelope.recipient] += 1
            if self.seen[envelope.recipient] == 1 and envelope.recipient in ("r3@example.com", "r4@example.com"):
                return Outcome("transient", 451, "451 4.7.1 greylisted", stage="rcpt")
            if self.seen[envelope.recipient] == 1 and envelope.recipient == "r10@example.com":
                return Outcome("transient", 452, "452 4.3.1 insufficient system storage", stage="mail")
            if self.seen[envelope.recipient] == 1 and envelope.recipient == "r20@example.com":
                return Outcome("transient", 421, "421 4.7.0 try later", stage="data")
            return super().send(envelope)

    report = send_edition(load_settings(demo_root, environ={}), DAY, subscribers="list.csv", sink=Relay(),
                          progress=False)  # fmt: skip
    assert report.ok and report.retried == 4
    assert report.throttled == 2  # the 4xx to MAIL FROM and the 421; not the two greylisted recipients


def test_a_local_sink_is_sent_to_from_the_loops_own_thread_retries_and_all(
    demo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inline sink gets no worker threads; deferrals still come back, even past a full retry backlog."""
    import newsletter.delivery.loop as loop

    monkeypatch.setattr(loop, "RETRY_BACKLOG", 3)  # a backlog the loop itself must work off before going on
    paper(demo_root, 25, "retry_base = 0.01\nretry_max = 0.02")

    class Greylisting(MemorySink):
        def __init__(self) -> None:
            super().__init__()
            self.seen: Counter[str] = Counter()
            self.threads: set[str] = set()

        def send(self, envelope: Envelope) -> Outcome:
            self.threads.add(threading.current_thread().name)
            self.seen[envelope.recipient] += 1
            if self.seen[envelope.recipient] == 1:  # every first try is deferred
                return Outcome("transient", 451, "451 4.7.1 greylisted, come back later", stage="rcpt")
            return super().send(envelope)

    sink = Greylisting()
    assert sink.inline and sink.concurrency == 1
    report = send_edition(load_settings(demo_root, environ={}), DAY, subscribers="list.csv", sink=sink,
                          progress=False)  # fmt: skip
    assert (report.sent, report.retried, report.pending, report.failed) == (25, 25, 0, 0)
    assert sorted(e.recipient for e in sink.sent) == sorted(f"r{i}@example.com" for i in range(25))
    assert sink.threads == {threading.current_thread().name}  # no worker thread was started
    assert set(sink.seen.values()) == {2}


def test_due_queue_hands_out_due_retries_first_then_fresh_then_ends() -> None:
    stop = threading.Event()
    now = [100.0]
    queue = DueQueue(stop, fresh_limit=10, clock=lambda: now[0])
    envelope = Envelope("a@example.org", "b@example.org", b"x")
    rows = [type("R", (), {"id": i})() for i in range(4)]
    for row in rows[:3]:
        assert queue.put(row, envelope)  # type: ignore[arg-type]
    first = queue.take()
    assert first is not None and first.row is rows[0]
    queue.defer(first, 5.0)
    second = queue.take()
    assert second is not None and second.row is rows[1]  # the retry is not due: the next fresh one
    queue.done()
    now[0] += 6
    retry = queue.take()
    assert retry is not None and retry.row is rows[0]  # due now: before the fresh one
    queue.done()
    queue.close()
    last = queue.take()
    assert last is not None and last.row is rows[2]
    queue.done()
    assert queue.take() is None  # nothing fresh, nothing deferred, nothing in flight


def test_progress_line_shows_one_decimal_and_the_counts(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(None, 4, "sending 2016-12-30")  # stderr is not a terminal here: plain lines
    progress.start -= 10.0  # as if the run had started ten seconds ago
    progress.waiting(+1)
    progress.advance("sent")
    progress.advance("failed")
    progress.waiting(-1)
    progress.advance("deferred")
    progress.advance("sent")
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("sending 2016-12-30: 4/4 (100%), 0.2 msg/s, sent 2, deferred 1, failed 1")


# --- local write failures: a small tmpfs (read-only, or full) where the outbox writes -------------------


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[None]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for this test: {mounted.stderr.decode().strip()}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize(("options", "reason"), [("ro,size=1m", "Read-only file system"),
                                                 ("size=96k", "No space left on device")])  # fmt: skip
def test_an_outbox_that_cannot_be_written_stops_the_run_at_once(demo_root: Path, options: str, reason: str) -> None:
    paper(demo_root, 40, "retry_base = 5")
    mail = demo_root / "outbox" / "2016-12-30" / "mail"
    with tmpfs(mail, options):
        t0 = time.monotonic()
        args = ["send", "--root", str(demo_root), "--date", "2016-12-30", "--subscribers", "list.csv"]
        result = CliRunner().invoke(cli, [*args, "--no-progress"], env={SECRET_ENV: SECRET})
        assert time.monotonic() - t0 < 10  # not retried with backoff: no retry can help
        assert result.exit_code == 1, result.output
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"Error: {mail}: cannot write ") and f"({reason})" in last
        assert "Traceback" not in result.output
        written = sorted(p.name for p in mail.iterdir())
        assert all(not name.startswith(".") for name in written)  # no temp file left behind
    report = ledger_report(load_settings(demo_root, environ={}), DAY)
    assert report is not None and report.sent == len(written) and report.sent + report.pending == 40
    with Ledger(ledger_path(load_settings(demo_root, environ={}), DAY)) as ledger:
        assert ledger.runs()[-1]["status"] == "write error"
    again = send_edition(load_settings(demo_root, environ={}), DAY, subscribers="list.csv", progress=False)
    assert again.ok and again.sent == 40  # room again: the rest go, each once
