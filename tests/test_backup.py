"""`newsletter db backup` / `db restore`: a backup taken while a send is under way, the stores lost, the
backup restored, the send resumed: every reader gets the edition exactly once. Both backends, a real SMTP
server, real subprocesses; and a restore refuses a backup that does not pass its checks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.delivery.batching import FLUSH_SECONDS
from tests.helpers import copy_demo_stories, free_port

SECRET = "backup-test-secret-long-enough"
READERS = 30
GATE_AFTER = 8  # the server accepts this many messages, then holds the next one until released


class GatedSmtp:
    """A real aiosmtpd server that accepts GATE_AFTER messages, then holds every later one unanswered
    (the sender waits on it, in flight) until `open` is set; counted only once answered."""

    def __init__(self, gate_after: int | None) -> None:
        from aiosmtpd.controller import Controller

        self.accepted: list[str] = []
        self.open = threading.Event()
        self.gate_after = gate_after
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        with self.lock:
            held = self.gate_after is not None and len(self.accepted) >= self.gate_after
        while held and not self.open.is_set():
            await asyncio.sleep(0.05)
        with self.lock:
            self.accepted.extend(envelope.rcpt_tos)  # type: ignore[attr-defined]
        return "250 OK"

    def stop(self) -> None:
        self.open.set()
        self.controller.stop()


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
        timeout=120,
    )


@pytest.fixture
def paper(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "paper"
    copy_demo_stories(root / "stories")
    lines = ["email,name"] + [f"reader{i:02d}@example.org,Reader {i}" for i in range(READERS)]
    (root / "subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # A short lease: the killed sender's claimed rows (PostgreSQL) are free again soon after the restore.
    (root / "newsletter.toml").write_text("[mailing]\nlease_seconds = 2\n", encoding="utf-8")
    yield root


def _wait_for(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _drop_everything(root: Path, database_url: str) -> None:
    """The disaster: the data folder gone, and the database emptied."""
    import shutil

    shutil.rmtree(root / "data")
    if database_url:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")


def test_a_backup_taken_mid_send_restores_and_the_send_finishes_exactly_once(
    paper: Path, database_url: str, tmp_path: Path
) -> None:
    env = _env(database_url)
    first = GatedSmtp(GATE_AFTER)
    send_args = ["send", "--subscribers", "subscribers.csv", "--connections", "1", "--no-progress"]
    sender = subprocess.Popen(
        [sys.executable, "-m", "newsletter", *send_args, "--smtp", f"smtp://127.0.0.1:{first.port}"],
        cwd=paper,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: len(first.accepted) >= GATE_AFTER, "the first messages")
        time.sleep(FLUSH_SECONDS * 3)  # the ledger has written the outcomes it gathered
        backup = _cli(paper, env, "db", "backup", str(tmp_path / "backup"))
        assert backup.returncode == 0, backup.stderr
        assert sender.poll() is None, "the send should still be under way during the backup"
        sender.send_signal(signal.SIGKILL)  # the machine is lost mid-send
        sender.wait(timeout=30)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        first.controller.stop()  # the held message is never answered: not delivered
    delivered_before = list(first.accepted)
    assert len(delivered_before) == GATE_AFTER
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert any(entry["target"].startswith("data/") for entry in manifest["files"])
    assert bool(manifest["postgresql"]) == bool(database_url)

    _drop_everything(paper, database_url)
    restored = _cli(paper, env, "db", "restore", str(tmp_path / "backup"))
    assert restored.returncode == 0, restored.stderr
    assert "restored from" in restored.stdout

    second = GatedSmtp(None)
    try:
        deadline = time.monotonic() + 60
        while True:  # PostgreSQL: the dead sender's lease runs out first; until then the run leaves them pending
            resumed = _cli(paper, env, *send_args, "--smtp", f"smtp://127.0.0.1:{second.port}")
            if resumed.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finally:
        second.stop()
    counts = Counter(delivered_before + second.accepted)
    assert len(counts) == READERS
    assert set(counts.values()) == {1}, {a: n for a, n in counts.items() if n != 1}
    status = _cli(paper, env, "status", "--date", "2016-12-30")
    assert status.returncode == 0 and f"sent {READERS}" in status.stdout, status.stdout


def test_a_damaged_backup_is_refused_and_nothing_changes(paper: Path, tmp_path: Path) -> None:
    env = _env("")
    assert _cli(paper, env, "send", "--subscribers", "subscribers.csv", "--no-progress").returncode == 0
    assert _cli(paper, env, "db", "backup", str(tmp_path / "backup")).returncode == 0
    ledger = paper / "data" / "ledger" / "2016-12-30.sqlite"
    before = ledger.read_bytes()
    copy = next((tmp_path / "backup" / "sqlite").glob("*2016-12-30.sqlite"))
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    result = _cli(paper, env, "db", "restore", str(tmp_path / "backup"))
    assert result.returncode == 1
    assert "checksum differs" in result.stderr and "Traceback" not in result.stderr
    assert ledger.read_bytes() == before
    again = _cli(paper, env, "db", "backup", str(tmp_path / "backup"))
    assert again.returncode == 1 and "already exists" in again.stderr
