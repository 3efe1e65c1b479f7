"""The record stores on both backends: every test runs on SQLite files and on a real PostgreSQL server.

`database_url` (conftest) is "" for SQLite and a fresh database of a throw-away PostgreSQL cluster
otherwise; the stores are opened through the same factories the product uses.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import load_settings
from newsletter.delivery import open_ledger, open_suppression
from newsletter.delivery.batching import FLUSH_ROWS, FLUSH_SECONDS
from newsletter.schedule import State, open_run_store

DAY = date(2016, 12, 30)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Any:
    return load_settings(tmp_path, environ={"NEWSLETTER_DATABASE_URL": database_url} if database_url else {})


def subs(addresses: list[str]) -> list[tuple[str, str, str, int]]:
    return [(a, f"Name {i}", "en", i + 2) for i, a in enumerate(addresses)]


# --- suppression ------------------------------------------------------------------------------------


def test_suppression_list(settings: Any) -> None:
    with open_suppression(settings) as sup:
        assert sup.add("Reader@Example.com", "unsubscribed", "link") is True
        assert sup.add("reader@example.COM", "bounced", "again") is False  # the first reason is kept
        assert "READER@example.com" in sup
        assert "other@example.com" not in sup
        assert sup.which(["a@example.com", "READER@example.com", "other@example.com"]) == {"READER@example.com"}
        assert sup.which([]) == set()
        assert 42 not in sup
        first = sup.entry("reader@example.com")
        assert first is not None and (first.reason, first.source) == ("unsubscribed", "link")
        sup.add("second@example.com", "manual")
        sup.add("third@example.com", "bounced", "dsn", diagnostic="550 5.1.1 no such user", message_id="<r@mx>")
        entry = sup.entry("THIRD@example.com")
        assert entry is not None and "diagnostic: 550 5.1.1 no such user; report <r@mx>" in entry.describe()
        assert sup.count() == 3
        assert [row[0] for row in sup][:1] == ["Reader@Example.com"] and len(list(sup)) == 3
        with pytest.raises(ValueError, match="reason"):
            sup.add("x@example.com", "because")
    with open_suppression(settings) as again:  # it was stored, not kept in memory
        assert "reader@example.com" in again


def test_suppression_list_adds_many_in_one_go(settings: Any) -> None:
    """One-click unsubscribes arriving together (web/app/oneclick.py): one transaction, first reason kept."""
    with open_suppression(settings) as sup:
        sup.add("known@example.com", "bounced", "dsn")
        batch = ["a@example.com", "KNOWN@example.com", "b@example.com", "A@example.com"]
        added = sup.add_many(batch, "unsubscribed", "one-click")
        assert added == 2  # a and b; known keeps its reason, A repeats a
        assert sup.which(["a@example.com", "b@example.com", "known@example.com"]) == {
            "a@example.com",
            "b@example.com",
            "known@example.com",
        }
        known = sup.entry("known@example.com")
        assert known is not None and known.reason == "bounced"
        assert sup.add_many([], "unsubscribed") == 0
        with pytest.raises(ValueError, match="reason"):
            sup.add_many(["c@example.com"], "because")
        assert "c@example.com" not in sup


# --- the ledger -------------------------------------------------------------------------------------


def test_ledger_enrols_in_bulk_and_finds_duplicates(settings: Any) -> None:
    with open_ledger(settings, DAY) as ledger:
        run = ledger.start_run("list.csv", "memory")
        with ledger.enrolment(run) as first:
            assert first is True  # nothing pending yet: this run enrols
            with ledger.batch():
                dups = ledger.enrol_many(run, subs(["a@example.com", "b@example.com", "A@EXAMPLE.COM"]))
            assert dups == [(4, 2, "A@EXAMPLE.COM")]  # within one call
            with ledger.batch():
                dups = ledger.enrol_many(run, [("B@example.com", "", "", 9), ("c@example.com", "", "", 10)])
            assert dups == [(9, 3, "B@example.com")]  # across calls: the line of the first entry
        assert ledger.counts().pending == 3
        # A later run sees the same list minus one: nothing doubles, the missing one is retired.
        run2 = ledger.start_run("list.csv", "memory")
        with ledger.batch():
            assert ledger.enrol_many(run2, subs(["a@example.com", "b@example.com"])) == []
        assert ledger.retire_unseen(run2) == 1
        counts = ledger.counts()
        assert (counts.pending, counts.skipped, counts.total) == (2, 1, 3)
        assert ledger.state_of("C@example.com") == "skipped"


def test_ledger_outcomes_are_batched_and_none_is_lost(settings: Any) -> None:
    with open_ledger(settings, DAY) as ledger:
        run = ledger.start_run("list.csv", "memory")
        with ledger.batch():
            ledger.enrol_many(run, subs([f"r{i}@example.com" for i in range(FLUSH_ROWS + 50)]))
        rows = list(ledger.pending(run))
        assert len(rows) == FLUSH_ROWS + 50 and [r.id for r in rows] == sorted(r.id for r in rows)
        ledger.mark_sent(rows[0].id, 1, 250, "250 OK")
        ledger.mark_failed(rows[1].id, 1, 550, "550 5.1.1 unknown")
        ledger.mark_deferred(rows[2].id, 3, 451, "451 later")
        ledger.mark_skipped(rows[3].id, "suppressed")
        # Another reader sees the outcomes within one flush window, without this writer flushing.
        with open_ledger(settings, DAY, readonly=True) as reader:
            deadline = time.monotonic() + FLUSH_SECONDS * 40
            while reader.counts().sent == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            counts = reader.counts()
            assert (counts.sent, counts.failed, counts.skipped) == (1, 1, 1)
        for row in rows[4:]:  # more than FLUSH_ROWS: a full buffer is written at once too
            ledger.mark_sent(row.id, 1, 250, "250 OK")
        failed = ledger.rows("failed")
        assert failed[0]["code"] == 550 and failed[0]["reply"].startswith("550 5.1.1")
        ledger.finish_run(run, "done", sent=len(rows) - 3)
        assert ledger.runs()[-1]["status"] == "done"
    with open_ledger(settings, DAY, readonly=True) as reader:  # close wrote everything
        counts = reader.counts()
        assert (counts.sent, counts.failed, counts.skipped, counts.pending) == (len(rows) - 3, 1, 1, 1)
        assert reader.rows("pending")[0]["attempts"] == 3


def test_ledger_requeues_the_failed_for_a_retry(settings: Any) -> None:
    with open_ledger(settings, DAY) as ledger:
        run = ledger.start_run("list.csv", "memory")
        with ledger.batch():
            ledger.enrol_many(run, subs(["a@example.com", "b@example.com", "c@example.com"]))
        rows = list(ledger.pending(run))
        ledger.mark_sent(rows[0].id, 1, 250, "250 OK")
        ledger.mark_failed(rows[1].id, 1, 500, "500 relay misconfigured")
        ledger.mark_failed(rows[2].id, 1, 500, "500 relay misconfigured")
        assert ledger.requeue_failed() == 2  # the outcomes not yet written are written first
        counts = ledger.counts()
        assert (counts.sent, counts.failed, counts.pending) == (1, 0, 2)
        again = list(ledger.pending(run))
        assert [r.address for r in again] == ["b@example.com", "c@example.com"]
        assert all(r.attempts == 0 for r in again)
        assert ledger.requeue_failed() == 0


def test_ledger_meta_and_dry_run_copy(settings: Any, tmp_path: Path) -> None:
    from newsletter.delivery import Ledger

    with open_ledger(settings, DAY) as ledger:
        assert ledger.get_meta("edition_sha256") is None
        ledger.set_meta("edition_sha256", "abc")
        ledger.set_meta("edition_sha256", "def")
        assert ledger.get_meta("edition_sha256") == "def"
        run = ledger.start_run("list.csv", "memory")
        with ledger.batch():
            ledger.enrol_many(run, subs(["a@example.com", "b@example.com"]))
        ledger.mark_sent(next(iter(ledger.pending(run))).id, 1, 250, "ok")
        ledger.backup_to(tmp_path / "copy.sqlite")
    with Ledger(tmp_path / "copy.sqlite") as copy:
        counts = copy.counts()
        assert (counts.sent, counts.pending) == (1, 1)


# --- the scheduler's runs ---------------------------------------------------------------------------


def test_run_store_claims_finishes_and_skips(settings: Any) -> None:
    now = datetime(2016, 12, 30, 5, 0, tzinfo=UTC)
    first = open_run_store(settings)
    other = open_run_store(settings)
    try:
        claimed, before = first.claim(DAY, now, "host-a:1", now)
        assert claimed and before is None
        # A second scheduler sees a live run and keeps off it (SQLite: the owner is this live process's
        # host; PostgreSQL: the first store holds the morning's lock on its connection).
        owner = f"{__import__('socket').gethostname()}:{__import__('os').getpid()}"
        first.finish(DAY, State.FAILED, now, "boom")
        claimed, _ = first.claim(DAY, now, owner, now)
        assert claimed
        claimed, before = other.claim(DAY, now, "host-b:2", now)
        assert not claimed and before is not None and before.owner == owner
        assert other.skip(DAY, now, now, "late") is False  # not while it runs
        first.finish(DAY, State.COMPLETED, now, "sent 3", {"sent": 3, "failed": 0, "skipped": 0, "pending": 0})
        claimed, before = other.claim(DAY, now, "host-b:2", now)
        assert not claimed and before is not None and before.state == State.COMPLETED
        row = other.get(DAY)
        assert row is not None and row.attempts == 2 and row.detail == "sent 3"
        assert other.counts(DAY)["sent"] == 3
        later = DAY + timedelta(days=1)
        assert other.skip(later, now, now, "past the grace period") is True
        assert other.skip(later, now, now, "again") is False
        assert [r.state for r in first.rows()] == [State.COMPLETED, State.SKIPPED]
        first.advance(now)
        other.advance(now - timedelta(days=1))  # never moves back
        assert first.accounted_through() == now
    finally:
        first.close()
        other.close()


# --- the bounce records and the scheduler's job store -----------------------------------------------


def test_bounce_records_count_each_report_once(settings: Any) -> None:
    from newsletter.bounces import open_bounce_state

    now = datetime(2016, 12, 30, 5, 0, tzinfo=UTC)
    with open_bounce_state(settings) as state:
        assert state.db.postgres == bool(settings.database_url)
        assert not state.seen("<dsn1@mx.example>")
        state.remember("<dsn1@mx.example>", "hard", now)
        state.remember("<dsn1@mx.example>", "hard", now)  # a report read twice counts once
        state.add_soft("Ann@Example.org", "<s1@mx>", now, "452 4.2.2 mailbox full")
        state.add_soft("ann@example.org", "<s1@mx>", now, "452 4.2.2 mailbox full")
        state.add_soft("ann@example.org", "<s0@mx>", now - timedelta(days=20), "old")
        assert state.soft_count("ANN@example.org", now - timedelta(days=15)) == 1
        assert state.soft_count("ann@example.org", now - timedelta(days=15), {"<s9@mx>"}) == 2
    with open_bounce_state(settings) as again:  # stored, not kept in memory
        assert again.seen("<dsn1@mx.example>")


def test_the_job_store_follows_the_database(settings: Any) -> None:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from newsletter.schedule.daemon import job_store

    (settings.root / "data").mkdir()  # the daemon's lock file made it
    where = job_store(settings)
    assert where["url"].startswith("postgresql+psycopg://" if settings.database_url else "sqlite:///")
    for _ in range(2):  # the schedule outlives the scheduler
        scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(**where)}, timezone=UTC)
        scheduler.start(paused=True)
        jobs = scheduler.get_jobs()
        if not jobs:
            scheduler.add_job(print, "interval", hours=1, id="morning", args=["x"])
        scheduler.shutdown(wait=False)
    assert [job.id for job in jobs] == ["morning"]
