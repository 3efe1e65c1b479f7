"""Many senders, one mailing: real `newsletter send` processes sharing nothing but a PostgreSQL database.

Three senders, each in a folder of its own with its own aiosmtpd relay, send one edition to 5,000
readers; one is SIGKILLed mid-run. The others take over its rows when its lease lapses. In the end every
reader got the edition exactly once, except the killed sender's last messages: those in flight and those
whose outcome was still in its flush window — resent, with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import ledger_report
from newsletter.delivery.batching import FLUSH_SECONDS
from newsletter.delivery.unsubscribe import SECRET_ENV
from tests.test_smtp_server import SmtpTestServer, StoreHandler, serve

N = 5000
SENDERS = 3
CONNECTIONS = 2
LEASE = 3
DAY = date(2016, 12, 30)
WINDOW = FLUSH_SECONDS * 6  # one flush window, with room for a loaded machine's scheduling

pytestmark = pytest.mark.slow


class Relay(StoreHandler):
    """Stores every message after a short pause (a relay's work), noting when each arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.busy = 0  # messages whose data has arrived and are still being worked on

    def settle(self, quiet: float = 0.5, timeout: float = 10.0) -> int:
        """Wait until nothing is being worked on and nothing has arrived for `quiet` seconds.

        A message whose final dot reached the relay before its sender died is still accepted: the
        relay finishes its work on it. What counts as sent through a dead sender is known only then.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = len(self.received)
            time.sleep(quiet)
            if self.busy == 0 and len(self.received) == seen:
                return seen
            assert time.monotonic() < deadline, "the relay never went quiet"

    def recent(self, seconds: float) -> int:
        now = time.monotonic()
        return sum(1 for t in list(self.times) if now - t <= seconds)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.busy += 1
        try:
            await asyncio.sleep(0.004)
            self.store(envelope)
            self.times.append(time.monotonic())
        finally:
            self.busy -= 1
        return "250 2.0.0 OK queued"


def test_three_senders_share_a_mailing_and_survive_a_kill(demo_root: Path, pg_url: str, tmp_path: Path) -> None:
    readers = [f"reader{i:04d}@example.com" for i in range(N)]
    folders = []
    for k in range(SENDERS):  # a machine each: its own stories, list, config, outbox; only the URL shared
        folder = tmp_path / f"machine{k}"
        shutil.copytree(demo_root / "stories", folder / "stories")
        (folder / "list.csv").write_text("email,name\n" + "".join(f"{a},Reader {a[6:10]}\n" for a in readers))
        (folder / "newsletter.toml").write_text(f"[mailing]\nlease_seconds = {LEASE}\n")
        folders.append(folder)
    env = {**os.environ, SECRET_ENV: "fleet-secret", "NEWSLETTER_DATABASE_URL": pg_url}

    with serve(Relay()) as r0, serve(Relay()) as r1, serve(Relay()) as r2:
        relays: list[SmtpTestServer] = [r0, r1, r2]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "newsletter",
                    "send",
                    "--root",
                    str(folder),
                    "--date",
                    DAY.isoformat(),
                    "--subscribers",
                    "list.csv",
                    "--smtp",
                    relay.url,
                    "--connections",
                    str(CONNECTIONS),
                    "--no-progress",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for folder, relay in zip(folders, relays, strict=True)
        ]
        victim: Relay = relays[0].handler
        deadline = time.monotonic() + 120
        while len(victim.received) < 300:
            assert time.monotonic() < deadline, "the first sender never got going"
            assert procs[0].poll() is None, procs[0].communicate()
            time.sleep(0.01)
        window = victim.recent(WINDOW)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].communicate(timeout=30)
        killed_at_time = time.monotonic()
        killed_at = victim.settle()
        results = [p.communicate(timeout=300) for p in procs[1:]]
        for p, (out, err) in zip(procs[1:], results, strict=True):
            assert p.returncode == 0, (out, err)
            assert "pending 0" in out

        received = Counter(r.rcpt_tos[0] for relay in relays for r in relay.received)
        by_relay = [len(relay.received) for relay in relays]
        assert len(victim.received) == killed_at  # nothing more went through the dead sender
        assert set(received) == set(readers), f"missing: {len(set(readers) - set(received))}"
        duplicates = {a: n for a, n in received.items() if n > 1}
        # Only the dead sender's last messages can come twice: in flight, or acknowledged in its last window.
        assert len(duplicates) <= CONNECTIONS + window, (len(duplicates), window)
        assert all(n == 2 for n in duplicates.values())
        victims = {r.rcpt_tos[0] for r in victim.received}
        assert set(duplicates) <= victims
        for address in duplicates:  # a resend carries the same Message-ID: mailboxes fold the copies
            ids = {r.message["Message-ID"] for relay in relays for r in relay.received if r.rcpt_tos[0] == address}
            assert len(ids) == 1
        assert all(n > 300 for n in by_relay[1:]), by_relay  # the survivors shared the work

    settings = load_settings(folders[1], environ={"NEWSLETTER_DATABASE_URL": pg_url})
    time.sleep(max(0.0, killed_at_time + LEASE * 1.5 + 0.5 - time.monotonic()))  # its heartbeat is old by now
    report = ledger_report(settings, DAY)
    assert report is not None and (report.sent, report.pending, report.total) == (N, 0, N)
    assert len(report.senders) == SENDERS
    recorded = sorted(s["sent"] for s in report.senders)
    assert sum(recorded) == N and recorded[0] <= killed_at  # the dead one's unrecorded rows went to others
    code = CliRunner().invoke(cli, ["status", "--root", str(folders[1]), "--date", DAY.isoformat()], env=env)
    assert "lost (last seen 20" in code.output, code.output
    status = sorted(s["status"] for s in report.senders)
    # The killed run never finished, and its heartbeat stopped: `status` says it was lost, and since when.
    assert status[:2] == ["done", "done"] and status[2].startswith("lost (last seen 20"), status


def test_senders_ride_out_a_database_restart(demo_root: Path, tmp_path: Path) -> None:
    """PostgreSQL is stopped the hard way mid-send and started again: the senders wait, reconnect and
    finish the mailing, every reader once (a lease longer than the outage keeps each batch its sender's)."""
    from tests import pg_cluster

    readers = [f"reader{i:04d}@example.com" for i in range(3000)]
    cluster = pg_cluster.PgCluster().start()
    try:
        url = cluster.new_database()
        env = {**os.environ, SECRET_ENV: "fleet-secret", "NEWSLETTER_DATABASE_URL": url}
        with serve(Relay()) as r0, serve(Relay()) as r1:
            relays: list[SmtpTestServer] = [r0, r1]
            procs = []
            for k, relay in enumerate(relays):
                folder = tmp_path / f"machine{k}"
                shutil.copytree(demo_root / "stories", folder / "stories")
                (folder / "list.csv").write_text("email\n" + "\n".join(readers) + "\n")
                (folder / "newsletter.toml").write_text(
                    "[mailing]\nlease_seconds = 30\n[database]\nreconnect_seconds = 60\n"
                )
                cmd = [sys.executable, "-m", "newsletter", "send", "--root", str(folder), "--date", DAY.isoformat(),
                       "--subscribers", "list.csv", "--smtp", relay.url, "--connections", str(CONNECTIONS),
                       "--no-progress"]  # fmt: skip
                procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            deadline = time.monotonic() + 120
            while sum(len(r.received) for r in relays) < 400:
                assert time.monotonic() < deadline, "the senders never got going"
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                time.sleep(0.01)
            cluster.halt()
            at_halt = sum(len(r.received) for r in relays)
            time.sleep(2)
            assert all(p.poll() is None for p in procs)  # waiting for the database, not gone
            cluster.resume()
            results = [p.communicate(timeout=300) for p in procs]
            for p, (out, err) in zip(procs, results, strict=True):
                assert p.returncode == 0, (out, err)
            received = Counter(r.rcpt_tos[0] for relay in relays for r in relay.received)
        assert at_halt < len(readers) - 500  # the restart came mid-send, with most of the mailing still to go
        assert set(received) == set(readers)
        duplicates = {a: n for a, n in received.items() if n > 1}
        assert len(duplicates) <= len(relays) * CONNECTIONS, duplicates  # at most the messages in flight
        report = ledger_report(load_settings(tmp_path / "machine0", environ={"NEWSLETTER_DATABASE_URL": url}), DAY)
        assert report is not None and (report.sent, report.pending) == (len(readers), 0)
    finally:
        cluster.stop()


# --- the scheduler in a fleet -----------------------------------------------------------------------


def test_two_schedulers_one_morning(tmp_path: Path, pg_url: str) -> None:
    """Two `newsletter schedule --run-now` on two machines: one claims the morning, the other helps send it."""
    from tests.test_schedule_e2e import make_paper, today

    readers = [f"early{i:04d}@example.org" for i in range(1500)]
    day = today()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")},
        SECRET_ENV: "fleet-secret",
        "NEWSLETTER_DATABASE_URL": pg_url,
    }
    with serve(Relay()) as relay_a, serve(Relay()) as relay_b:
        roots = []
        for name, relay in (("a", relay_a), ("b", relay_b)):
            root = make_paper(tmp_path / name, relay.url, "06:00:00", day).root
            (root / "subscribers.csv").write_text("email\n" + "\n".join(readers) + "\n")
            roots.append(root)

        def start(root: Path) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-m", "newsletter", "schedule", "--root", str(root), "--run-now"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip

        first = start(roots[0])
        deadline = time.monotonic() + 120
        while len(relay_a.received) < 50:
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.01)
        second = start(roots[1])
        out_b, err_b = second.communicate(timeout=300)
        out_a, err_a = first.communicate(timeout=300)
        assert first.returncode == 0, err_a
        assert second.returncode == 0, err_b
        assert out_a.startswith(f"edition {day}: completed: sent {len(readers)}")
        assert out_b.startswith(f"edition {day}: joined: helped ")
        assert "joining its mailing as a sender" in err_b
        received = Counter(r.rcpt_tos[0] for relay in (relay_a, relay_b) for r in relay.received)
        assert set(received) == set(readers) and set(received.values()) == {1}  # nobody twice, nobody missed
        assert len(relay_b.received) > 0  # the second machine did send part of it

        again = subprocess.run(
            [sys.executable, "-m", "newsletter", "schedule", "--root", str(roots[1]), "--run-now"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert again.returncode == 0 and "already done" in again.stdout

    from newsletter.schedule import State, open_run_store

    store = open_run_store(load_settings(roots[0], environ={"NEWSLETTER_DATABASE_URL": pg_url}))
    row = store.get(day)
    assert row is not None and row.state == State.COMPLETED and row.attempts == 1


def test_a_scheduler_rides_out_a_database_restart(tmp_path: Path) -> None:
    """`newsletter schedule` on PostgreSQL, catching up this morning: the server is stopped the hard way
    mid-send and started again. The daemon waits, reconnects and finishes the morning, every reader once,
    the run recorded as completed, and stays up for the next morning."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from newsletter.edition import window
    from newsletter.schedule import State, open_run_store
    from tests import pg_cluster
    from tests.test_schedule_e2e import wait_for

    readers = [f"reader{i:04d}@example.com" for i in range(3000)]
    fired = datetime.now(ZoneInfo("Europe/Paris")) - timedelta(minutes=1)  # a morning just missed: caught up
    day = fired.date()
    root = tmp_path / "news"
    (root / "stories").mkdir(parents=True)
    (root / "subscribers.csv").write_text("email\n" + "\n".join(readers) + "\n")
    cluster = pg_cluster.PgCluster().start()
    try:
        url = cluster.new_database()
        env = {**os.environ, SECRET_ENV: "fleet-secret", "NEWSLETTER_DATABASE_URL": url}
        with serve(Relay()) as relay:
            (root / "newsletter.toml").write_text(
                f'timezone = "Europe/Paris"\n[schedule]\nat = "{fired:%H:%M:%S}"\nretry_delay = "2s"\n'
                f'[smtp]\nurl = "{relay.url}"\nconnections = {CONNECTIONS}\n'
                '[mailing]\nsubscribers = "subscribers.csv"\nlease_seconds = 30\nprocesses = 1\n'
                "[database]\nreconnect_seconds = 60\n"
            )
            settings = load_settings(root, environ={"NEWSLETTER_DATABASE_URL": url})
            start, _end = window(day, settings)
            (root / "stories" / "morning.md").write_text(
                f"---\ntitle: Overnight\npublished: {(start + timedelta(hours=1)).isoformat()}\n"
                "section: World\n---\nNews.\n"
            )
            daemon = subprocess.Popen(
                [sys.executable, "-m", "newsletter", "schedule", "--root", str(root)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                wait_for(lambda: len(relay.received) >= 400 or daemon.poll() is not None, 120, "the morning's send")
                assert daemon.poll() is None, daemon.communicate()
                cluster.halt()
                at_halt = len(relay.received)
                time.sleep(3)
                assert daemon.poll() is None  # waiting for the database, not gone
                cluster.resume()

                def completed() -> bool:
                    with contextlib.closing(open_run_store(settings)) as runs:
                        row = runs.get(day)
                    return row is not None and row.state == State.COMPLETED

                wait_for(lambda: completed() or daemon.poll() is not None, 300, "the morning to complete")
                assert daemon.poll() is None, daemon.communicate()
                relay.handler.settle()
                cluster.halt()  # and again while it waits for tomorrow: it stays up
                time.sleep(12)  # past APScheduler's 10 s look at its job store
                cluster.resume()
                time.sleep(2)
                assert daemon.poll() is None, daemon.communicate()
            finally:
                daemon.send_signal(signal.SIGTERM)
                _out, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err
        assert "Traceback" not in err, err
        received = Counter(r.rcpt_tos[0] for r in relay.received)
        assert at_halt < len(readers) - 500  # the restart came mid-send
        assert set(received) == set(readers)
        duplicates = {a: n for a, n in received.items() if n > 1}
        assert len(duplicates) <= CONNECTIONS, duplicates  # at most the messages in flight
        report = ledger_report(settings, day)
        assert report is not None and (report.sent, report.pending) == (len(readers), 0)
        assert datetime.now(UTC) > fired  # (the clock the morning was caught up by)
    finally:
        cluster.stop()


def test_a_waiting_scheduler_gives_up_on_a_lost_database_with_one_line(tmp_path: Path) -> None:
    """A daemon waiting for its next morning whose PostgreSQL stays away past `[database]
    reconnect_seconds` stops with one line naming the database and exit status 1, no traceback, instead
    of retrying for ever unseen."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from tests import pg_cluster
    from tests.test_schedule_e2e import wait_for

    later = datetime.now(ZoneInfo("Europe/Paris")) + timedelta(hours=6)  # nothing to catch up: it waits
    root = tmp_path / "news"
    (root / "stories").mkdir(parents=True)
    (root / "subscribers.csv").write_text("email\nreader@example.com\n")
    (root / "newsletter.toml").write_text(
        f'timezone = "Europe/Paris"\n[schedule]\nat = "{later:%H:%M:%S}"\n'
        '[mailing]\nsubscribers = "subscribers.csv"\n[database]\nreconnect_seconds = 3\n'
    )
    cluster = pg_cluster.PgCluster().start()
    try:
        url = cluster.new_database()
        env = {**os.environ, SECRET_ENV: "fleet-secret", "NEWSLETTER_DATABASE_URL": url}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "schedule", "--root", str(root)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            time.sleep(4)  # started, looked at the database once at least
            assert daemon.poll() is None, daemon.communicate()
            cluster.halt()
            wait_for(lambda: daemon.poll() is not None, 60, "the scheduler to give up")
        finally:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
            _out, err = daemon.communicate(timeout=60)
            cluster.resume()
        assert daemon.returncode == 1, err
        assert "Traceback" not in err, err
        lines = [line for line in err.splitlines() if "the scheduler stops" in line]
        assert len(lines) == 1 and "the scheduler's database" in lines[0], err
        assert "password" not in lines[0]
    finally:
        cluster.stop()
