"""Faults: a fault-injecting aiosmtpd (4xx, 5xx, dropped connections, throttling, a server that goes away)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery.ledger import Ledger, ledger_path
from newsletter.delivery.send import RateLimiter, ledger_report, send_edition
from newsletter.delivery.sinks.base import Envelope, Outcome
from newsletter.delivery.sinks.memory import MemorySink
from newsletter.delivery.suppression import SuppressionList, suppression_path
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.errors import DeliveryError
from tests.test_smtp_server import FaultHandler, SmtpTestServer, StoreHandler, serve

DAY = date(2016, 12, 30)
SECRET = "faults-secret"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
def fault_server() -> Iterator[SmtpTestServer]:
    with serve(FaultHandler()) as server:
        yield server


@pytest.fixture
def paper(demo_root: Path) -> Path:
    # Quick retries: the backoff logic is the same, only the waits are short.
    (demo_root / "newsletter.toml").write_text(
        "[mailing]\nmax_attempts = 3\nretry_base = 0.01\nretry_max = 0.05\n", encoding="utf-8"
    )
    lines = ["email,name"] + [f"r{i}@example.com,Reader {i}" for i in range(12)]
    (demo_root / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return demo_root


def test_transient_and_permanent_failures_land_in_the_ledger(paper: Path, fault_server: SmtpTestServer) -> None:
    handler: FaultHandler = fault_server.handler
    handler.script = {
        "r0@example.com": ["450", "450"],  # sent on the third try
        "r1@example.com": ["drop"],  # connection dropped mid-DATA: reconnect, retry
        "r2@example.com": ["550"],  # no such user: failed, and suppressed as a bounce
        "r3@example.com": ["554"],  # rejected as spam: failed, not suppressed
        "r4@example.com": ["rcpt451"],  # refused at RCPT for now
        "r5@example.com": ["450", "450", "450", "450"],  # still failing after 3 tries: stays pending
    }
    settings = load_settings(paper, {"smtp.url": fault_server.url, "smtp.connections": 2}, environ={})
    report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    assert (report.sent, report.failed, report.pending, report.deferred) == (9, 2, 1, 1)
    assert report.retried == 2 + 1 + 1 + 2
    assert not report.complete and not report.ok
    assert sorted(report.failures) == [
        "r2@example.com: 550 5.1.1 No such user here",
        "r3@example.com: 554 5.7.1 Message rejected as spam",
    ]
    delivered = [r.rcpt_tos[0] for r in fault_server.received]
    assert sorted(delivered) == sorted(
        {f"r{i}@example.com" for i in range(12)} - {"r2@example.com", "r3@example.com", "r5@example.com"}
    )
    assert len(delivered) == len(set(delivered))

    with Ledger(ledger_path(settings, DAY)) as ledger:
        rows = {r["address"]: r for r in ledger.rows(limit=100)}
    assert rows["r0@example.com"]["state"] == "sent" and rows["r0@example.com"]["attempts"] == 3
    assert rows["r1@example.com"]["attempts"] == 2
    assert (rows["r2@example.com"]["state"], rows["r2@example.com"]["code"]) == ("failed", 550)
    assert rows["r2@example.com"]["reply"] == "550 5.1.1 No such user here"
    assert (rows["r5@example.com"]["state"], rows["r5@example.com"]["code"]) == ("pending", 450)
    assert rows["r5@example.com"]["attempts"] == 3
    assert all(r["sent_at"] for r in rows.values() if r["state"] == "sent")
    with SuppressionList(suppression_path(settings)) as suppression:
        assert "r2@example.com" in suppression and "r3@example.com" not in suppression
        assert suppression.get("r2@example.com")[0] == "bounced"  # type: ignore[index]

    # The rerun retries only the pending one; nothing sent is sent again, failures are not retried.
    again = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    assert (again.sent, again.sent_now, again.failed, again.pending) == (10, 1, 2, 0)
    assert again.complete and not again.ok
    delivered = [r.rcpt_tos[0] for r in fault_server.received]
    assert len(delivered) == len(set(delivered)) == 10
    assert handler.attempts["r2@example.com"] == 1  # a 5xx is never retried


def test_exit_codes_tell_cron_what_happened(paper: Path, fault_server: SmtpTestServer) -> None:
    handler: FaultHandler = fault_server.handler
    handler.script = {"r3@example.com": ["554"], "r5@example.com": ["450"] * 4}
    args = ["send", "--root", str(paper), "--date", "2016-12-30", "--subscribers", "list.csv"]
    args += ["--smtp", fault_server.url]
    first = CliRunner().invoke(cli, args, env={SECRET_ENV: SECRET})
    assert first.exit_code == 4, first.output  # something still pending: run again
    assert "r3@example.com: 554 5.7.1 Message rejected as spam" in first.stderr
    assert "failed 1" in first.stdout and "pending 1" in first.stdout and "retried 2" in first.stdout
    second = CliRunner().invoke(cli, args, env={SECRET_ENV: SECRET})
    assert second.exit_code == 3, second.output  # all attempted, one refused for good
    status = CliRunner().invoke(cli, ["status", "--root", str(paper), "--date", "2016-12-30", "--failed"])
    assert status.exit_code == 3  # complete, with failures
    assert "failed: r3@example.com: 554 5.7.1" in status.stdout and "complete, with failures" in status.stdout


def test_only_server_load_signals_lower_the_rate(paper: Path, fault_server: SmtpTestServer) -> None:
    lines = ["email,name"] + [f"t{i}@example.com,T {i}" for i in range(60)]
    (paper / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # One 421 (the server is loaded), and per-recipient deferrals that say nothing about its load.
    fault_server.handler.script = {"t2@example.com": ["421"], "t3@example.com": ["454"], "t4@example.com": ["451"]}
    fault_server.handler.script |= {"t5@example.com": ["rcpt451"], "t6@example.com": ["450"]}
    settings = load_settings(paper, {"smtp.url": fault_server.url}, environ={})
    report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    assert report.ok and report.sent == 60 and report.retried == 5
    assert report.throttled == 1  # the 421 only
    assert report.rate_lowest is not None and report.rate_lowest >= 1.0

    # With a configured rate, a lone 421 takes 15 % off it, not half.
    (paper / "newsletter.toml").write_text(
        "[mailing]\nmax_attempts = 3\nretry_base = 0.01\nretry_max = 0.05\n[smtp]\nrate = 200\n", encoding="utf-8"
    )
    lines = ["email,name"] + [f"u{i}@example.com,U {i}" for i in range(60)]
    (paper / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fault_server.handler.script = {"u1@example.com": ["421"]} | {f"u{i}@example.com": ["rcpt451"] for i in range(3, 7)}
    settings = load_settings(paper, {"smtp.url": fault_server.url}, environ={})
    report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    assert report.ok and report.throttled == 1
    assert report.rate_lowest == pytest.approx(170.0)
    assert report.rate_final is not None and 170.0 <= report.rate_final <= 200.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_lowers_on_load_and_recovers_by_the_second() -> None:
    stop = threading.Event()
    limiter = RateLimiter(50)
    t0 = time.monotonic()
    for _ in range(31):
        assert limiter.wait(stop)
    assert time.monotonic() - t0 >= 25 / 50 * 0.9  # thirty intervals of 20 ms, less the 0.1 s of slack

    clock = Clock()
    limiter = RateLimiter(40, clock=clock)
    limiter.throttle()
    assert limiter.rate == 34  # a lone signal: 15 % off
    limiter.throttle()
    assert limiter.rate == 34 and limiter.throttles == 2  # the same episode: not lowered twice
    clock.now += 2.5
    limiter.throttle()
    assert limiter.rate == 34  # a lone signal lowers the rate at most every five seconds…
    clock.now += 3.0
    limiter.throttle()
    assert limiter.rate == pytest.approx(28.9) and limiter.lowest == pytest.approx(28.9)
    clock.now += 1.0
    limiter.success()
    assert limiter.rate == pytest.approx(32.9)  # …and a tenth of the ceiling comes back per second…
    clock.now += 1.0
    limiter.success()
    assert limiter.rate == pytest.approx(36.9)
    clock.now += 2.0
    limiter.success()
    assert limiter.rate == 40  # …up to the configured rate, not above

    # One recipient deferred again and again is not the server's load; many different ones in a row are.
    clock.now += 100
    for _ in range(30):
        limiter.deferral("greylisted@example.com")
        limiter.success()
    assert limiter.rate == 40 and limiter.throttles == 4
    for i in range(8):
        limiter.deferral(f"r{i}@example.com")
    assert limiter.rate == 20  # a run across many recipients: halved

    # Never stuck at the floor: after a storm, a quiet minute brings back the full rate.
    floor = RateLimiter(2, clock=clock)
    for _ in range(20):
        clock.now += 1.0
        floor.throttle()
    assert floor.rate == 1.0  # never below one message a second
    clock.now += 61
    floor.success()
    assert floor.rate == 2

    # With no configured rate, the ceiling is the rate achieved before the signal; the limit lifts again.
    unlimited = RateLimiter(0, clock=clock)
    assert unlimited.rate is None and unlimited.wait(stop)
    for _ in range(10):
        clock.now += 0.01
        unlimited.success()
    unlimited.throttle()
    assert unlimited.rate == pytest.approx(85.0)
    clock.now += 1.0
    unlimited.success()
    assert unlimited.rate == pytest.approx(95.0)
    clock.now += 1.0
    unlimited.success()
    assert unlimited.rate is None
    for _ in range(64):  # slower for a while (the rate seen while limited, say): not taken as the new ceiling
        clock.now += 0.05
        unlimited.success()
    unlimited.throttle()
    assert unlimited.rate == pytest.approx(85.0)
    stop.set()
    slow = RateLimiter(0.2)
    slow.wait(threading.Event())
    t0 = time.monotonic()
    assert slow.wait(stop) is False and time.monotonic() - t0 < 1


def test_server_going_away_mid_run_is_an_error_and_nothing_is_lost(paper: Path) -> None:
    lines = ["email,name"] + [f"g{i}@example.com,G {i}" for i in range(40)]
    (paper / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    server = SmtpTestServer(StoreHandler()).start()
    settings = load_settings(paper, {"smtp.url": server.url, "smtp.rate": 100}, environ={})

    def stop_after_ten() -> None:
        while len(server.received) < 10:
            time.sleep(0.005)
        server.stop()

    killer = threading.Thread(target=stop_after_ten)
    killer.start()
    with pytest.raises(DeliveryError, match="cannot reach SMTP server"):
        send_edition(settings, DAY, subscribers="list.csv", progress=False)
    killer.join()
    got = [r.rcpt_tos[0] for r in server.received]
    report = ledger_report(settings, DAY)
    assert report is not None and report.sent == len(got) and report.sent + report.pending == 40
    with Ledger(ledger_path(settings, DAY)) as ledger:
        last = ledger.runs()[-1]
        assert last["status"] == "unreachable" and last["sent"] == len(got)  # what the failed run did, recorded
    # A new server (same port): the rerun sends the rest, each exactly once.
    with serve(StoreHandler()) as again:
        settings = load_settings(paper, {"smtp.url": again.url}, environ={})
        report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
        rest = [r.rcpt_tos[0] for r in again.received]
    assert report.ok and report.sent == 40
    assert sorted(got + rest) == sorted(f"g{i}@example.com" for i in range(40))


def test_unreachable_sink_stops_the_run_early(paper: Path) -> None:
    """A sink that loses its server after five messages: the loop gives up after its retries, not after 12."""

    class Flaky(MemorySink):
        calls = 0

        def send(self, envelope: Envelope) -> Outcome:
            self.calls += 1
            if len(self.sent) >= 5:
                return Outcome("transient", None, "cannot reach SMTP server smtp://x: refused", reachable=False)
            return super().send(envelope)

    sink = Flaky()
    with pytest.raises(DeliveryError, match="after 3 tries"):
        send_edition(load_settings(paper, environ={}), DAY, subscribers="list.csv", sink=sink, progress=False)
    assert len(sink.sent) == 5 and sink.calls == 8
    report = ledger_report(load_settings(paper, environ={}), DAY)
    assert report is not None and (report.sent, report.pending) == (5, 7)


def test_a_bug_in_a_sink_is_not_swallowed(paper: Path) -> None:
    class Broken(MemorySink):
        def send(self, envelope: Envelope) -> Outcome:
            raise RuntimeError("boom")

    sink = Broken(concurrency=3)
    with pytest.raises(RuntimeError, match="boom"):
        send_edition(load_settings(paper, environ={}), DAY, subscribers="list.csv", sink=sink, progress=False)
    report = ledger_report(load_settings(paper, environ={}), DAY)
    assert report is not None and report.sent == 0 and report.pending == 12


def test_copy_paper_for_reuse(paper: Path, tmp_path: Path) -> None:
    """The ledger folder can live elsewhere ([mailing] ledger_dir); sends there are independent."""
    other = tmp_path / "other"
    shutil.copytree(paper, other)
    (other / "newsletter.toml").write_text('[mailing]\nledger_dir = "state/ledgers"\n', encoding="utf-8")
    settings = load_settings(other, environ={})
    report = send_edition(settings, DAY, subscribers="list.csv", sink=MemorySink(), progress=False)
    assert report.ok and (other / "state" / "ledgers" / "2016-12-30.sqlite").is_file()
