"""A damaged store is an error, never an empty store.

After a disk incident a records file may be there but empty, cut short, overwritten or bit-rotten.
SQLite would open an empty file as an empty database: a suppression list read that way mails every
reader who left, a ledger read that way sends the whole edition again. Every store refuses such a file
with one line naming it and what to do, and `newsletter send` sends nothing. `newsletter db check`
finds the damage on both backends.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.bounces import BounceState
from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import Ledger, SuppressionList, ledger_path, suppression_path
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.editorial import AuditLog, PlanStore
from newsletter.errors import DamagedStoreError
from newsletter.schedule import RunStore, State
from newsletter.storage import SqlSubscriberStore

FIXTURES = Path(__file__).parent / "fixtures"
DAY = date(2016, 12, 30)
PAGE = 4096  # SQLite's default page size, which the stores keep


def _flip_bits(data: bytes) -> bytes:
    """One bit in every 61 bytes past the 100-byte file header (which stays valid: the pages are hit)."""
    out = bytearray(data)
    rng = random.Random(61)
    for at in range(100, len(out), 61):
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda data: b"",
    "one byte": lambda data: data[:1],
    "truncated mid-page": lambda data: data[: PAGE + PAGE // 2],
    "truncated at a page boundary": lambda data: data[: PAGE * 2],
    "random bytes": lambda data: random.Random(7).randbytes(len(data)),
    "flipped bits": _flip_bits,
}


def _suppression(path: Path) -> None:
    with SuppressionList(path) as s:
        for i in range(400):
            s.add(f"left{i:04d}@example.org", "unsubscribed", "link")


def _ledger(path: Path) -> None:
    with Ledger(path) as ledger:
        run = ledger.start_run("list.csv", "memory")
        with ledger.batch():
            ledger.enrol_many(run, [(f"r{i}@example.org", "Reader", "en", i + 2) for i in range(400)])
        for row in list(ledger.pending(run))[:200]:
            ledger.mark_sent(row.id, 1, 250, "250 OK")


def _subscribers(path: Path) -> None:
    with SqlSubscriberStore(path) as store:
        for i in range(400):
            store.add(f"reader{i}@example.org", name="Reader")


def _runs(path: Path) -> None:
    store = RunStore(path)
    now = datetime(2016, 12, 30, 5, tzinfo=UTC)
    for i in range(300):
        day = DAY - timedelta(days=i)
        store.claim(day, now, "host:1", now)
        store.finish(day, State.COMPLETED, now, "sent 3 to the whole list of readers", {"sent": 3})
    store.close()


def _bounces(path: Path) -> None:
    with BounceState(path) as state:
        for i in range(400):
            state.remember(f"<report{i}@mx.example.org>", "hard", datetime(2016, 12, 30, tzinfo=UTC))


def _audit(path: Path) -> None:
    with AuditLog(path) as log:
        for i in range(400):
            log.record("ann", "plan.move", f"2016-12-30/en/story-{i}", {"to": i})


STORES: dict[str, tuple[Callable[[Path], None], Callable[[Path], Any]]] = {
    "suppression list": (_suppression, SuppressionList),
    "ledger": (_ledger, Ledger),
    "subscriber store": (_subscribers, SqlSubscriberStore),
    "scheduler's runs": (_runs, RunStore),
    "bounce records": (_bounces, BounceState),
    "desk's audit log": (_audit, AuditLog),
    "desk's plans (same file)": (_audit, PlanStore),
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("store", STORES)
def test_every_store_refuses_a_damaged_file(tmp_path: Path, store: str, damage: str) -> None:
    make, open_store = STORES[store]
    path = tmp_path / "records.sqlite"
    make(path)
    assert path.stat().st_size > PAGE * 2  # several pages: each kind of damage has something to cut
    broken = DAMAGE[damage](path.read_bytes())
    path.write_bytes(broken)
    with pytest.raises(DamagedStoreError) as caught:
        open_store(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: the ") and "is damaged (" in message, message
    assert "restore it from a backup" in message and "\n" not in message
    assert path.read_bytes() == broken  # refused before anything was written


def test_a_missing_file_is_a_new_store_and_a_sound_one_opens(tmp_path: Path) -> None:
    path = tmp_path / "data" / "suppression.sqlite"
    _suppression(path)
    with SuppressionList(path) as s:
        assert s.count() == 400 and "left0001@example.org" in s
    assert sorted(p.name for p in path.parent.iterdir()) == ["suppression.sqlite"]  # no leftovers


# --- `newsletter send` sends nothing -----------------------------------------------------------------


def _send(root: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "newsletter", "send", "--root", str(root), "--date", DAY.isoformat(),
           "--subscribers", "subscribers.csv", "--no-progress"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(cmd, env={**env, SECRET_ENV: "damage-secret"}, capture_output=True, text=True, timeout=120)


def _mail(root: Path) -> list[Path]:
    return sorted((root / "outbox" / DAY.isoformat() / "mail").glob("*.eml"))


def _refused(result: subprocess.CompletedProcess[str], path: Path) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: the ") and "is damaged" in lines[0], lines
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("damage", DAMAGE)
def test_send_with_a_damaged_suppression_list_sends_nothing(demo_root: Path, damage: str) -> None:
    root = demo_root
    shutil.copy(FIXTURES / "subscribers.csv", root / "subscribers.csv")
    path = suppression_path(load_settings(root, environ={}))
    _suppression(path)
    with SuppressionList(path) as s:  # every reader of the list has left: a list read as empty mails them all
        for line in (root / "subscribers.csv").read_text(encoding="utf-8").splitlines()[1:]:
            if "@" in line.split(",")[0]:
                s.add(line.split(",")[0], "unsubscribed", "link")
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    _refused(_send(root), path)
    assert _mail(root) == []


@pytest.mark.parametrize("damage", DAMAGE)
def test_send_with_a_damaged_ledger_sends_nothing_again(demo_root: Path, damage: str) -> None:
    root = demo_root
    shutil.copy(FIXTURES / "subscribers.csv", root / "subscribers.csv")
    path = ledger_path(load_settings(root, environ={}), DAY)
    _ledger(path)  # a ledger of several pages, as a real list's is
    first = _send(root)  # every reader of the list sent once
    assert first.returncode == 0, first.stderr
    shutil.rmtree(root / "outbox" / DAY.isoformat() / "mail")
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    _refused(_send(root), path)
    assert _mail(root) == []  # read as empty, the ledger would have sent the edition again


# --- newsletter db check -----------------------------------------------------------------------------


def test_db_check_finds_the_damaged_store(demo_root: Path) -> None:
    root = demo_root
    settings = load_settings(root, environ={})
    _suppression(suppression_path(settings))
    _ledger(ledger_path(settings, DAY))
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "check", "--root", str(root)], env={"NEWSLETTER_DATABASE_URL": ""})
    assert result.exit_code == 0, result.output
    assert f"{suppression_path(settings)}: the reader base: ok" in result.output  # readers and the list, one file
    assert f"{ledger_path(settings, DAY)}: the ledger of {DAY}: ok" in result.output
    assert "the editors' desk: not created yet" in result.output

    path = ledger_path(settings, DAY)
    path.write_bytes(_flip_bits(path.read_bytes()))
    result = runner.invoke(cli, ["db", "check", "--root", str(root)], env={"NEWSLETTER_DATABASE_URL": ""})
    assert result.exit_code == 1
    assert f"{path}: the ledger of {DAY} is damaged (" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Error: 1 of 5 store(s) damaged"  # 4 files, 1 ledger
    assert f"{suppression_path(settings)}: the reader base: ok" in result.stdout


def test_db_check_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    env = {"NEWSLETTER_DATABASE_URL": pg_url}
    result = CliRunner().invoke(cli, ["db", "check", "--root", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    assert "schema version" in result.output and "table ledger_recipients: ok (0 rows)" in result.output
    assert "postgres@" not in result.output  # the user part of the URL is never shown
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("DROP TABLE bounce_soft")
    result = CliRunner().invoke(cli, ["db", "check", "--root", str(tmp_path)], env=env)
    assert result.exit_code == 1 and "table bounce_soft cannot be read" in result.stderr


def test_db_check_on_postgresql_names_a_missing_or_changed_index_or_constraint(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    env = {"NEWSLETTER_DATABASE_URL": pg_url}
    result = CliRunner().invoke(cli, ["db", "check", "--root", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    assert re.search(r": \d+ indexes and \d+ constraints: ok", result.output)
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("DROP INDEX ledger_recipients_pending")  # claims would scan the whole table
        db.execute("ALTER TABLE subscribers DROP CONSTRAINT subscribers_key_key")  # duplicates would get in
        db.execute("DROP INDEX ledger_runs_edition")
        db.execute("CREATE INDEX ledger_runs_edition ON ledger_runs (edition)")
    result = CliRunner().invoke(cli, ["db", "check", "--root", str(tmp_path)], env=env)
    assert result.exit_code == 1
    problems = [line for line in result.stderr.splitlines() if "127.0.0.1" in line]
    assert [line.split(": ", 1)[1] for line in problems] == [
        "constraint subscribers_key_key of table subscribers is missing (expected: UNIQUE (key))",
        "index ledger_recipients_pending is missing (expected: CREATE INDEX ledger_recipients_pending ON "
        "ledger_recipients USING btree (edition, id) WHERE (state = 'pending'::text))",
        "index ledger_runs_edition differs (expected: CREATE INDEX ledger_runs_edition ON ledger_runs USING btree "
        "(edition, id); found: CREATE INDEX ledger_runs_edition ON ledger_runs USING btree (edition))",
    ]
    assert "table ledger_recipients: ok" in result.output  # the tables themselves still read through
    with psycopg.connect(pg_url) as db:  # nothing of the expectation stayed behind
        assert db.execute("SELECT count(*) FROM pg_tables WHERE schemaname LIKE 'pg_temp%'").fetchone() == (0,)
