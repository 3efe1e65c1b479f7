"""The scheduler with the real mailing pipeline: real SMTP servers (aiosmtpd), real ledgers, and the real
daemon as a subprocess (`python -m newsletter schedule`) stopped with SIGTERM.

The edition sent is the one dated today (in the schedule's zone), so each test writes a story into
today's window in a fresh folder rather than relying on the demo stories of 2016.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from newsletter import schedule as sched
from newsletter.cli import cli
from newsletter.config import Settings, load_settings
from newsletter.delivery.send import ledger_report, send_edition
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.edition.select import window
from newsletter.schedule import RunStore, State
from tests.test_smtp_server import SmtpTestServer, StoreHandler, serve

PARIS = ZoneInfo("Europe/Paris")
SECRET = "schedule-e2e-secret-not-for-production"
SUBSCRIBERS = [f"reader{n:02d}@example.org" for n in range(12)]


def make_paper(tmp_path: Path, smtp_url: str, at: str, edition: date) -> Settings:
    """A newsletter folder scheduled at `at` (Paris), a subscriber list, and a story in `edition`'s window."""
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True)
    (root / "subscribers.csv").write_text(
        "email,name\n" + "".join(f"{a},Reader {n}\n" for n, a in enumerate(SUBSCRIBERS)), encoding="utf-8"
    )
    (root / "newsletter.toml").write_text(
        'timezone = "Europe/Paris"\n\n'
        f'[schedule]\nat = "{at}"\nretry_delay = "2s"\n\n'
        f'[smtp]\nurl = "{smtp_url}"\n\n'
        '[mailing]\nsubscribers = "subscribers.csv"\nmax_attempts = 2\nretry_base = 0.1\n',
        encoding="utf-8",
    )
    settings = load_settings(root, environ={})
    start, _end = window(edition, settings)
    (root / "stories" / "morning.md").write_text(
        f'---\ntitle: "What happened overnight"\npublished: {(start + timedelta(hours=1)).isoformat()}\n'
        "section: World\n---\nThe story the scheduler sends this morning.\n",
        encoding="utf-8",
    )
    return settings


def today() -> date:
    return datetime.now(PARIS).date()


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {**clean, SECRET_ENV: SECRET}


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll until `condition()` is true; the waits are for real deliveries, not for a clock."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def daemon(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "schedule", "--root", str(root)],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err


def recipients(server: SmtpTestServer) -> list[str]:
    with server.handler.lock:
        return sorted(r for record in server.handler.received for r in record.rcpt_tos)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    """A real aiosmtpd on 127.0.0.1 storing what it receives. (Overrides conftest's, which asks aiosmtpd 1.4
    for port 0 and fails its start-up self-check; test_smtp_server's servers pick a free port first.)"""
    with serve(StoreHandler()) as server:
        yield server


class SlowHandler(StoreHandler):
    """Takes 0.3 s per message, so a stop lands in the middle of a send."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.3)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp_server() -> Iterator[SmtpTestServer]:
    with serve(SlowHandler()) as server:
        yield server


def seconds_ahead(n: int) -> tuple[str, datetime]:
    fire = (datetime.now(PARIS) + timedelta(seconds=n)).replace(microsecond=0)
    return fire.strftime("%H:%M:%S"), fire


# --- the daemon, end to end -------------------------------------------------------------------------


def test_daemon_sends_todays_edition_once_then_stops_cleanly(tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    at, fire = seconds_ahead(6)
    day = fire.date()
    settings = make_paper(tmp_path, smtp_server.url, at, day)
    proc = daemon(settings.root)
    try:
        wait_for(lambda: len(recipients(smtp_server)) >= len(SUBSCRIBERS), 60, "the edition to be delivered")
        # A second scheduler on the same folder refuses to start, with one clear line.
        second = subprocess.run(
            [sys.executable, "-m", "newsletter", "schedule", "--root", str(settings.root)],
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert second.stderr.strip().startswith(
            f"Error: another `newsletter schedule` is already running for {settings.root} (pid {proc.pid}"
        )
        assert len(second.stderr.strip().splitlines()) == 1
        store = RunStore(sched.store_path(settings))
        wait_for(lambda: (row := store.get(day)) is not None and row.state == State.COMPLETED, 30, "the run's end")
    finally:
        code, err = stop(proc)
    assert code == 0, err
    row = RunStore(sched.store_path(settings)).get(day)
    assert row is not None and row.started_at is not None and row.started_at >= fire  # it waited for its second
    assert recipients(smtp_server) == sorted(SUBSCRIBERS)  # each reader once
    subjects = {r.message["Subject"] for r in smtp_server.received}
    assert len(subjects) == 1
    report = ledger_report(settings, day)
    assert report is not None and report.complete and report.ok
    assert (report.sent, report.pending, report.failed) == (len(SUBSCRIBERS), 0, 0)
    assert f"edition {day}: run started (scheduled {fire.isoformat()}, attempt 1)" in err
    assert f"edition {day}: completed in " in err and f"sent {len(SUBSCRIBERS)}, failed 0" in err
    assert "scheduler stopped (SIGTERM)" in err
    assert "Traceback" not in err


def test_sigterm_mid_send_keeps_the_ledger_and_a_restart_resumes(
    tmp_path: Path, slow_smtp_server: SmtpTestServer
) -> None:
    server = slow_smtp_server
    at, fire = seconds_ahead(4)
    day = fire.date()
    settings = make_paper(tmp_path, server.url, at, day)
    proc = daemon(settings.root)
    try:
        wait_for(lambda: len(recipients(server)) >= 2, 60, "the first messages")
    finally:
        code, err = stop(proc)
    assert code == 0, err
    report = ledger_report(settings, day)
    assert report is not None
    delivered = recipients(server)
    assert 2 <= len(delivered) < len(SUBSCRIBERS)
    assert report.sent == len(delivered) and report.sent + report.pending == len(SUBSCRIBERS)  # consistent
    row = RunStore(sched.store_path(settings)).get(day)
    assert row is not None and row.state == State.INTERRUPTED
    assert "message(s) pending" in err and "scheduler stopped (SIGTERM)" in err
    # Back within the grace period: the daemon resumes the edition and sends only the rest.
    proc = daemon(settings.root)
    try:
        wait_for(lambda: len(recipients(server)) >= len(SUBSCRIBERS), 60, "the rest of the edition")
        store = RunStore(sched.store_path(settings))
        wait_for(lambda: (r := store.get(day)) is not None and r.state == State.COMPLETED, 30, "the run's end")
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert recipients(server) == sorted(SUBSCRIBERS)  # nobody twice
    assert f"catching up edition {day}" in err and "attempt 2, resuming a stopped run" in err
    final = ledger_report(settings, day)
    assert final is not None and final.ok and final.sent == len(SUBSCRIBERS)


# --- --run-now with the real pipeline ---------------------------------------------------------------


def test_run_now_sends_once_and_reports(tmp_path: Path, smtp_server: SmtpTestServer, secret: None) -> None:
    day = today()
    settings = make_paper(tmp_path, smtp_server.url, "06:00:00", day)
    runner = CliRunner()
    first = runner.invoke(cli, ["schedule", "--root", str(settings.root), "--run-now"])
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"edition {day}: completed: sent {len(SUBSCRIBERS)}, failed 0, skipped 0")
    again = runner.invoke(cli, ["schedule", "--root", str(settings.root), "--run-now"])
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"edition {day}: already done: already completed at ")
    assert recipients(smtp_server) == sorted(SUBSCRIBERS)
    # The morning wrote its edition where the email's links lead before sending: the outbox (with the
    # manifest) and the web archive, so "view in browser" answers when the email arrives.
    assert (settings.root / "outbox" / day.isoformat() / "manifest.json").is_file()
    html = smtp_server.received[0].message.get_body(("html",)).get_content()
    view = re.search(r'href="' + re.escape(settings.base_url) + r'/(editions/[^"]+)"', html)
    assert view is not None, "no view-in-browser link"
    assert (settings.root / "site" / view.group(1) / "index.html").is_file()


def test_run_now_resumes_a_crashed_run_without_resending(
    tmp_path: Path, smtp_server: SmtpTestServer, secret: None
) -> None:
    day = today()
    settings = make_paper(tmp_path, smtp_server.url, "06:00:00", day)
    # A run that crashed after five messages: its row says running, its process is gone.
    partial = send_edition(settings, day, limit=5, progress=False)
    assert (partial.sent, partial.pending) == (5, len(SUBSCRIBERS) - 5)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store = RunStore(sched.store_path(settings))
    assert store.claim(day, datetime.now(UTC), f"{socket.gethostname()}:{int(gone.stdout)}", datetime.now(UTC))[0]
    result = CliRunner().invoke(cli, ["schedule", "--root", str(settings.root), "--run-now"])
    assert result.exit_code == 0, result.output
    assert recipients(smtp_server) == sorted(SUBSCRIBERS)  # the first five once, the rest once
    row = store.get(day)
    assert row is not None and (row.state, row.attempts) == (State.COMPLETED, 2)


def test_run_now_with_the_server_down_fails_in_one_line(tmp_path: Path, secret: None) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    day = today()
    settings = make_paper(tmp_path, f"smtp://127.0.0.1:{port}", "06:00:00", day)
    result = CliRunner().invoke(cli, ["schedule", "--root", str(settings.root), "--run-now"])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: edition {day}: failed: ") and str(port) in last
    row = RunStore(sched.store_path(settings)).get(day)
    assert row is not None and row.state == State.FAILED and str(port) in row.detail
    assert ledger_report(settings, day) is None or ledger_report(settings, day).sent == 0


def test_run_now_on_an_empty_morning_sends_nothing(tmp_path: Path, smtp_server: SmtpTestServer, secret: None) -> None:
    day = today()
    settings = make_paper(tmp_path, smtp_server.url, "06:00:00", day)
    (settings.root / "stories" / "morning.md").unlink()
    result = CliRunner().invoke(cli, ["schedule", "--root", str(settings.root), "--run-now"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"edition {day}: empty: no stories published between ")
    assert smtp_server.received == [] and ledger_report(settings, day) is None


def test_daemon_refuses_to_start_when_no_morning_could_be_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_paper(tmp_path, "smtp://127.0.0.1:25", "06:00:00", today())
    runner = CliRunner()
    monkeypatch.delenv(SECRET_ENV, raising=False)
    result = runner.invoke(cli, ["schedule", "--root", str(settings.root)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {SECRET_ENV} is not set: every message needs a signed unsubscribe link")
    assert len(result.output.strip().splitlines()) == 1
    assert not sched.lock_path(settings).exists()  # refused before taking the lock


def test_with_no_subscriber_list_the_morning_builds_into_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The simplest morning job needs neither a subscriber list nor the unsubscribe secret."""
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    day = today()
    settings = make_paper(tmp_path, "smtp://127.0.0.1:25", "06:00:00", day)
    config = settings.root / "newsletter.toml"
    config.write_text(config.read_text().replace('subscribers = "subscribers.csv"\n', ""))
    monkeypatch.delenv(SECRET_ENV, raising=False)
    result = CliRunner().invoke(cli, ["schedule", "--root", str(settings.root), "--run-now"])
    assert result.exit_code == 0, result.output
    out = settings.root / "outbox" / day.isoformat()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "newsletter.eml", "newsletter.html",
                                                     "newsletter.txt"]  # fmt: skip
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"edition {day}: built {out} (") and m.endswith("; no subscriber list: nothing sent")
               for m in messages), messages  # fmt: skip
    row = RunStore(sched.store_path(settings)).get(day)
    assert row is not None and row.state == State.COMPLETED
    assert ledger_report(settings, day) is None  # no ledger: nobody to send to
    sched.preflight(load_settings(settings.root, environ={}))  # the daemon would start too


def test_daemon_keeps_running_and_retries_while_the_smtp_server_is_down(
    tmp_path: Path, secret: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    server = SmtpTestServer(StoreHandler())  # its port is chosen, nothing listens yet
    fired = (datetime.now(PARIS) - timedelta(minutes=10)).replace(microsecond=0)
    day = fired.date()
    settings = make_paper(tmp_path, server.url, fired.strftime("%H:%M:%S"), day)
    RunStore(sched.store_path(settings)).advance(datetime.now(UTC) - timedelta(days=1))  # it ran yesterday
    daemon = sched.Daemon(settings, install_signals=False)  # the real job: send_edition
    thread = threading.Thread(target=daemon.run)
    thread.start()
    started = False
    try:
        wait_for(lambda: any(r.outcome == sched.Outcome.FAILED for r in daemon.results), 30, "a failed run")
        server.start()
        started = True
        wait_for(lambda: len(recipients(server)) >= len(SUBSCRIBERS), 60, "the retried run's messages")
        wait_for(lambda: daemon.results[-1].outcome == sched.Outcome.COMPLETED, 30, "the retried run's end")
    finally:
        daemon.request_stop("test")
        thread.join(30)
        if started:
            server.stop()
    assert not thread.is_alive()
    assert recipients(server) == sorted(SUBSCRIBERS)
    failed = daemon.results[0]
    assert failed.outcome == sched.Outcome.FAILED and str(server.port) in failed.detail
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"edition {day}: run failed after" in m and str(server.port) in m for m in messages)
    assert any(m.startswith(f"edition {day}: retry 1 of 3 at ") for m in messages)
    report = ledger_report(settings, day)
    assert report is not None and report.ok and report.sent == len(SUBSCRIBERS)
