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
from test_smtp_server import FaultHandler, SmtpTestServer, StoreHandler, serve

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery.ledger import Ledger, ledger_path
from newsletter.delivery.send import RateLimiter, ledger_report, send_edition
from newsletter.delivery.sinks.base import Envelope, Outcome
from newsletter.delivery.sinks.memory import MemorySink
from newsletter.delivery.suppression import SuppressionList, suppression_path
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.errors import DeliveryError

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
    assert "failed: r3@example.com: 554 5.7.1" in status.stdout and "complete, with failures" in status.stdout


def test_throttling_lowers_the_rate_which_climbs_back(paper: Path, fault_server: SmtpTestServer) -> None:
    lines = ["email,name"] + [f"t{i}@example.com,T {i}" for i in range(60)]
    (paper / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fault_server.handler.script = {"t2@example.com": ["421"], "t3@example.com": ["454"], "t4@example.com": ["451"]}
    settings = load_settings(paper, {"smtp.url": fault_server.url}, environ={})
    report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    assert report.ok and report.sent == 60 and report.retried == 3
    assert report.throttled == 3
    assert report.rate_lowest is not None and report.rate_lowest >= 1.0  # it was limited for a while…
    assert report.rate_final is None  # …and the limit was lifted again once replies recovered

    # With a configured rate the limit halves, then climbs back to that rate.
    (paper / "newsletter.toml").write_text(
        "[mailing]\nmax_attempts = 3\nretry_base = 0.01\nretry_max = 0.05\n[smtp]\nrate = 200\n", encoding="utf-8"
    )
    lines = ["email,name"] + [f"u{i}@example.com,U {i}" for i in range(60)]
    (paper / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fault_server.handler.script = {"u1@example.com": ["421"]}
    settings = load_settings(paper, {"smtp.url": fault_server.url}, environ={})
    report = send_edition(settings, DAY, subscribers="list.csv", progress=False)
    assert report.ok and report.throttled == 1
    assert report.rate_lowest == pytest.approx(100.0)
    assert report.rate_final == pytest.approx(200.0)


def test_rate_limiter() -> None:
    stop = threading.Event()
    limiter = RateLimiter(50)
    t0 = time.monotonic()
    for _ in range(11):
        assert limiter.wait(stop)
    assert time.monotonic() - t0 >= 10 / 50 * 0.9  # ten intervals of 20 ms
    limiter.throttle()
    assert limiter.rate == 25
    limiter.throttle()
    assert limiter.rate == 12.5 and limiter.lowest == 12.5
    for _ in range(100):
        limiter.success()
    assert limiter.rate == 50  # back at the configured rate, not above
    unlimited = RateLimiter(0)
    assert unlimited.rate is None and unlimited.wait(stop)
    for _ in range(10):
        unlimited.success()
        time.sleep(0.002)
    unlimited.throttle()
    assert unlimited.rate is not None and unlimited.rate > 1
    for _ in range(200):
        unlimited.success()
    assert unlimited.rate is None
    floor = RateLimiter(2)
    for _ in range(10):
        floor.throttle()
    assert floor.rate == 1.0  # never below one message a second
    stop.set()
    assert not RateLimiter(0.5).wait(stop) or True  # an already-set stop returns at once
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
