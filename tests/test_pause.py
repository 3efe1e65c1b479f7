"""Pause and resume a running mailing of 5,000 through a real local relay (aiosmtpd on 127.0.0.1), on
both backends, with two sender processes: the pause (`newsletter pause`, another process) stops new
messages at once, those in flight finish and are recorded, nothing starts while paused, and `newsletter
resume` goes on: every recipient gets the edition exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DEMO_DATE, copy_demo_stories, free_port

SECRET = "pause-test-secret-long-enough-for-hmac"
READERS = 5000
PAUSE_AFTER = 800


class CountingSmtp:
    """A real aiosmtpd server that accepts everything and keeps each message's recipients."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.rcpts: list[str] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        with self.lock:
            self.rcpts.extend(envelope.rcpt_tos)  # type: ignore[attr-defined]
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.rcpts)


@pytest.fixture
def relay() -> Iterator[CountingSmtp]:
    server = CountingSmtp()
    try:
        yield server
    finally:
        server.controller.stop()


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_UNSUBSCRIBE_SECRET"] = SECRET
    if database_url:
        env["NEWSLETTER_DATABASE_URL"] = database_url
    return env


def _cli(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _wait_for(predicate: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_paused_mailing_of_5000_resumes_and_mails_everyone_once(
    tmp_path: Path, database_url: str, relay: CountingSmtp
) -> None:
    root = tmp_path / "paper"
    copy_demo_stories(root / "stories")
    readers = [f"reader{i:04d}@example.org" for i in range(READERS)]
    (root / "subscribers.csv").write_text("email\n" + "\n".join(readers) + "\n", encoding="utf-8")
    config = f'[smtp]\nurl = "smtp://127.0.0.1:{relay.port}"\n\n[mailing]\nsubscribers = "subscribers.csv"\n'
    (root / "newsletter.toml").write_text(config, encoding="utf-8")
    env = _env(database_url)
    day = DEMO_DATE.isoformat()
    sender = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "--root", str(root), "--date", day, "--processes", "2",
         "--connections", "2", "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: relay.count() >= PAUSE_AFTER, "the first messages")
        paused = _cli(root, env, "pause", "--date", day, "--by", "Ada Lovelace")
        assert paused.returncode == 0, paused.stderr
        at_pause = relay.count()
        assert f"edition {day} (en): paused with" in paused.stdout
        out, err = sender.communicate(timeout=60)
    finally:
        if sender.poll() is None:
            sender.kill()
    at_exit = relay.count()
    assert sender.returncode == 1 and "paused by Ada Lovelace" in err, (out, err)
    # At once: what went after the pause was what was in flight or queued for the connections.
    assert at_exit - at_pause < 200, (at_pause, at_exit)
    assert at_exit < READERS
    time.sleep(0.5)
    assert relay.count() == at_exit  # nothing more after the senders stopped
    status = _cli(root, env, "status", "--date", day)
    assert f"sent {at_exit}," in status.stdout and "pending" in status.stdout, status.stdout
    assert "Paused by Ada Lovelace" in status.stdout and "`newsletter resume`" in status.stdout
    again = _cli(root, env, "send", "--date", day, "--no-progress")
    assert again.returncode == 1 and "paused by Ada Lovelace" in again.stderr  # nothing starts while paused
    assert relay.count() == at_exit
    resumed = _cli(root, env, "resume", "--date", day)
    assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
    assert "resumed (paused by Ada Lovelace" in resumed.stdout
    assert f"{READERS} sent, 0 pending" in resumed.stdout
    counts = Counter(relay.rcpts)
    assert set(counts) == set(readers) and set(counts.values()) == {1}
    audit = _cli(root, env, "desk", "audit", "--export", "--format", "jsonl").stdout
    assert '"mailing.pause"' in audit and '"Ada Lovelace"' in audit and '"mailing.resume"' in audit


def test_a_resume_in_the_background_finishes_the_mailing(
    tmp_path: Path, relay: CountingSmtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desk's resume: the pause lifted and `newsletter resume` started as a process of its own."""
    from newsletter.config import load_settings
    from newsletter.delivery import ledger_report, pause_mailing, resume_in_background, send_edition

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    root = tmp_path / "paper"
    copy_demo_stories(root / "stories")
    readers = [f"reader{i:02d}@example.org" for i in range(40)]
    (root / "subscribers.csv").write_text("email\n" + "\n".join(readers) + "\n", encoding="utf-8")
    config = f'[smtp]\nurl = "smtp://127.0.0.1:{relay.port}"\n\n[mailing]\nsubscribers = "subscribers.csv"\n'
    (root / "newsletter.toml").write_text(config, encoding="utf-8")
    settings = load_settings(root, environ={"NEWSLETTER_UNSUBSCRIBE_SECRET": SECRET})
    first = send_edition(settings, DEMO_DATE, limit=15, progress=False)
    assert first.sent == 15
    pause_mailing(settings, DEMO_DATE, "Ada")
    process = resume_in_background(settings, DEMO_DATE)
    assert process.wait(timeout=120) == 0, (root / "data" / f"resume-{DEMO_DATE}.log").read_text()
    _wait_for(lambda: relay.count() == 40 and ledger_report(settings, DEMO_DATE).pending == 0, "the resumed run")  # type: ignore[union-attr]
    report = ledger_report(settings, DEMO_DATE)
    assert report is not None and report.paused == "" and report.sent == 40
    assert sorted(relay.rcpts) == readers
