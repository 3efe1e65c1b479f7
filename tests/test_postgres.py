"""What only the PostgreSQL backend does: schema upgrades, moving SQLite records in, leases shared by senders."""

from __future__ import annotations

import contextlib
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import SuppressionList, ledger_report, send_edition, subscriber_store, suppression_path
from newsletter.delivery.ledger import PG_NAMES, Ledger
from newsletter.delivery.sinks.memory import MemorySink
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.errors import ConfigError
from newsletter.schedule import RunStore, State, open_run_store, store_path, zone_store_path
from newsletter.storage import Consent, Postgres, SqlSubscriberStore, head_version, open_pg, redact

DAY = date(2016, 12, 30)


def subs(addresses: list[str]) -> list[tuple[str, str, str, int]]:
    return [(a, "", "", i + 2) for i, a in enumerate(addresses)]


def fleet_ledger(url: str, owner: str) -> Any:
    """One sender's view of edition DAY in PostgreSQL, with a one-second lease."""
    db = open_pg("the ledger", url, names=PG_NAMES)
    return Ledger(db, edition=DAY.isoformat(), lease=1.0, owner=owner)


def run_cli(*args: Any, env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    return result.exit_code, result.output


# --- schema and configuration -----------------------------------------------------------------------


def test_db_upgrade_applies_the_migrations_once(pg_cluster: Any, tmp_path: Path) -> None:
    url = pg_cluster.new_database(upgrade=False)
    env = {"NEWSLETTER_DATABASE_URL": url}
    with pytest.raises(ConfigError, match=r"schema version 0, .* run `newsletter db upgrade`"):
        Postgres(url).require_current()
    code, out = run_cli("db", "upgrade", "--root", tmp_path, env=env)
    assert code == 0, out
    assert "applied 0001_records" in out and "applied 0002_subscribers" in out
    assert f"schema version {head_version()}" in out
    code, out = run_cli("db", "upgrade", "--root", tmp_path, env=env)
    assert code == 0 and "already current" in out and "applied" not in out
    Postgres(url).require_current()


def test_a_database_error_mid_command_is_one_line(pg_cluster: Any, tmp_path: Path) -> None:
    """The server answers but a statement fails part-way (here: a table an operator dropped by hand)."""
    import psycopg

    url = pg_cluster.new_database()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP TABLE subscribers")
    code, out = run_cli("subscribers", "count", "--root", tmp_path, env={"NEWSLETTER_DATABASE_URL": url})
    assert code == 1, out
    assert out.startswith(f"Error: {redact(url)}: the reader base: ") and "does not exist" in out, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


def test_database_url_errors_are_one_line(tmp_path: Path, pg_cluster: Any) -> None:
    code, out = run_cli("db", "upgrade", "--root", tmp_path, env={})
    assert code == 1 and "database_url is not set" in out
    bad = {"NEWSLETTER_DATABASE_URL": "mysql://db/news"}
    code, out = run_cli("db", "upgrade", "--root", tmp_path, env=bad)
    assert code == 1 and "must start with postgresql://" in out
    secret = {"NEWSLETTER_DATABASE_URL": "postgresql://news:hunter2@db/news"}
    code, out = run_cli("db", "upgrade", "--root", tmp_path, env=secret)
    assert code == 1 and "PGPASSWORD" in out and "hunter2" not in out
    down = {"NEWSLETTER_DATABASE_URL": pg_cluster.url().rsplit(":", 1)[0] + ":1/none"}
    code, out = run_cli("db", "upgrade", "--root", tmp_path, env=down)
    assert code == 1 and "cannot connect" in out and "Traceback" not in out


def test_migrate_from_sqlite_moves_every_row(demo_root: Path, pg_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "s")
    root = demo_root
    (root / "list.csv").write_text("email,name\n" + "".join(f"m{i}@example.com,M {i}\n" for i in range(30)))
    sqlite_settings = load_settings(root, environ={})
    with SuppressionList(suppression_path(sqlite_settings)) as sup:
        sup.add("m3@example.com", "unsubscribed", "link")
    send_edition(sqlite_settings, DAY, subscribers="list.csv", sink=MemorySink(), limit=20, progress=False)
    now = __import__("datetime").datetime(2016, 12, 30, 5, tzinfo=__import__("datetime").UTC)
    store = RunStore(store_path(sqlite_settings))
    store.claim(DAY, now, "host:1", now)
    store.finish(DAY, State.INTERRUPTED, now, "stopped")
    store.advance(now)
    zone_store = RunStore(zone_store_path(sqlite_settings, "America/New_York"))  # a per_timezone batch's runs
    zone_store.claim(DAY, now, "host:1", now)
    zone_store.finish(DAY, State.COMPLETED, now, "sent")
    zone_store.advance(now)
    zone_store.close()
    from newsletter.bounces import BounceState, open_bounce_state, state_path

    with BounceState(state_path(sqlite_settings)) as bounces:
        bounces.remember("<dsn1@mx.example>", "hard", now)
        bounces.add_soft("m5@example.com", "<dsn2@mx.example>", now, "452 4.2.2 mailbox full")
    before = ledger_report(sqlite_settings, DAY)
    assert before is not None and before.pending > 0
    people = subscriber_store(sqlite_settings)
    for i in range(1200):  # more than a page of records
        people.add(
            f"s{i}@example.org", name=f"S {i}", locale="fr" if i % 2 else "", timezone="Asia/Tokyo" * (i % 3 == 0)
        )
    people.request("pending@example.org", name="P")
    consent = Consent("2016-12-29T09:00:00+00:00", "subscribe", "ab" * 16)
    people.confirm("pending@example.org", consent)
    people.add("gone@example.org", status="unsubscribed")
    sqlite_people = list(people.records())
    people.close()

    url = pg_cluster.new_database(upgrade=False)
    env = {"NEWSLETTER_DATABASE_URL": url}
    code, out = run_cli("db", "migrate-from-sqlite", "--root", root, env=env)
    assert code == 1 and "db upgrade" in out  # the schema first
    assert run_cli("db", "upgrade", "--root", root, env=env)[0] == 0
    code, out = run_cli("db", "migrate-from-sqlite", "--root", root, env=env)
    assert code == 0, out
    # Two suppressed: m3 (one-click from the list file) and gone@, whose record says unsubscribed.
    assert "ledger_recipients: 30 row(s)" in out and "suppression: 2 row(s)" in out and "schedule_runs: 1" in out
    assert "subscribers: 1202 row(s) copied" in out
    assert "bounce_processed: 1 row(s)" in out and "bounce_soft: 1 row(s)" in out
    assert "schedule_zone_runs: 1 row(s)" in out and "schedule_zone_meta: 1 row(s)" in out

    pg_settings = load_settings(root, environ=env)
    with contextlib.closing(open_run_store(pg_settings, "America/New_York")) as moved_zone:
        assert [(r.edition, r.state) for r in moved_zone.rows()] == [(DAY, State.COMPLETED)]
        assert moved_zone.accounted_through() == now and open_run_store(pg_settings, "Asia/Tokyo").rows() == []
    with open_bounce_state(pg_settings) as moved_bounces:  # the bounce records follow database_url too
        assert moved_bounces.db.postgres and moved_bounces.seen("<dsn1@mx.example>")
        assert moved_bounces.soft_count("M5@example.com", now) == 1
    pg_people = subscriber_store(pg_settings)
    assert isinstance(pg_people, SqlSubscriberStore) and pg_people.db.postgres
    moved_people = list(pg_people.records())
    strip = [
        (r.email, r.name, r.locale, r.timezone, r.status, r.created_at, r.confirmed_at, r.consent) for r in moved_people
    ]
    assert strip == [
        (r.email, r.name, r.locale, r.timezone, r.status, r.created_at, r.confirmed_at, r.consent)
        for r in sqlite_people
    ]
    assert pg_people.get("pending@example.org").consent == consent  # type: ignore[union-attr]
    after = ledger_report(pg_settings, DAY)
    assert after is not None
    assert (after.sent, after.failed, after.pending, after.total) == (
        before.sent,
        before.failed,
        before.pending,
        before.total,
    )
    code, out = run_cli("db", "migrate-from-sqlite", "--root", root, env=env)  # twice: nothing doubles
    assert code == 0 and "left alone" in out and "ledger_recipients" not in out
    assert "1202 subscriber(s) already in the database" in out and "subscribers: 0 row(s) copied" in out
    assert pg_people.counts() == {"pending": 0, "confirmed": 1201, "unsubscribed": 1, "bounced": 0, "complained": 0}
    pg_people.close()
    code, out = run_cli("unsubscribe", "--root", root, "--check", "M3@example.com", env=env)
    assert "suppressed (unsubscribed" in out
    # The move goes on where SQLite stopped: the rest are sent, nobody twice, the suppressed one skipped.
    sink = MemorySink()
    report = send_edition(pg_settings, DAY, subscribers="list.csv", sink=sink, progress=False)
    assert report.pending == 0 and report.sent == 29
    assert len(sink.sent) == 29 - before.sent and "m3@example.com" not in {e.recipient for e in sink.sent}

    moved = open_run_store(pg_settings)
    row = moved.get(DAY)
    assert row is not None and row.state == State.INTERRUPTED and moved.accounted_through() == now


# --- many senders: claims, leases, one enrolment ----------------------------------------------------


def test_claims_are_disjoint_and_a_dead_senders_lease_lapses(pg_url: str) -> None:
    a = fleet_ledger(pg_url, "host-a:1")
    b = fleet_ledger(pg_url, "host-b:2")
    try:
        run = a.start_run("list.csv", "memory")
        with a.enrolment(run) as first:
            assert first
            with a.batch():
                a.enrol_many(run, subs([f"r{i}@example.com" for i in range(10)]))
        with b.enrolment(run) as first:
            assert not first  # a mailing is under way: the second sender joins, it does not enrol again
        got_a = a.sending.claim(4)
        got_b = b.sending.claim(4)
        assert len(got_a) == len(got_b) == 4 and not {r.id for r in got_a} & {r.id for r in got_b}
        assert b.sending.held_elsewhere() == 4
        # a "dies": it stops renewing. b takes its rows once the lease has lapsed, not before.
        a.sending._renewing.set()
        rest = b.sending.claim(10)
        assert len(rest) == 2
        for row in got_b + rest:
            b.mark_sent(row.id, 1, 250, "ok")
        b.flush()
        assert b.sending.claim(10) == []
        time.sleep(2.2)
        taken = b.sending.claim(10)
        assert sorted(r.id for r in taken) == sorted(r.id for r in got_a)
        b.mark_deferred(taken[0].id, 5, 451, "451 later")
        for row in taken[1:]:
            b.mark_sent(row.id, 1, 250, "ok")
        b.flush()
        # The deferred row is given up on for this run: nobody re-claims it, nobody waits for it...
        assert b.sending.claim(10) == [] and b.sending.held_elsewhere() == 0
        assert list(b.pending()) == []
        per = {s["sender"]: s for s in b.senders()}
        assert per["host-b:2"]["sent"] == 9
        # ...until a later run starts, which releases it.
        c = fleet_ledger(pg_url, "host-c:3")
        with c.enrolment(c.start_run("list.csv", "memory")) as first:
            assert not first
        assert [r.id for r in c.sending.claim(10)] == [taken[0].id]
        c.close()
    finally:
        a.db.close()
        b.close()


def test_pending_reads_ahead_and_still_takes_rows_a_dead_sender_left_behind(pg_url: str) -> None:
    """The next batch is claimed after the last one; rows before it (a lapsed lease) are picked up too."""
    a = fleet_ledger(pg_url, "host-a:1")
    b = fleet_ledger(pg_url, "host-b:2")
    try:
        run = a.start_run("list.csv", "memory")
        with a.enrolment(run), a.batch():
            a.enrol_many(run, subs([f"r{i}@example.com" for i in range(25)]))
        lost = a.sending.claim(3)  # the first rows of the list, then a "dies"
        a.sending._renewing.set()
        seen: list[int] = []
        for row in b.pending(batch=4):  # b starts after a's rows, and reads ahead a batch at a time
            if not seen:
                time.sleep(1.3)  # a's lease lapses while b is under way, before b reaches the end
            seen.append(row.id)
            b.mark_sent(row.id, 1, 250, "ok")
        # b took a's rows at the end, though they lie before everything b had done and nobody holds them.
        assert sorted(seen) == sorted(set(seen)) and len(seen) == 25
        assert seen[-3:] == [r.id for r in lost]
        b.flush()
        assert b.counts().sent == 25
    finally:
        a.db.close()
        b.close()


def test_status_shows_each_sender(demo_root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "s")
    (demo_root / "list.csv").write_text("email\n" + "".join(f"s{i}@example.com\n" for i in range(12)))
    env = {"NEWSLETTER_DATABASE_URL": pg_url}
    settings = load_settings(demo_root, environ=env)
    send_edition(settings, DAY, subscribers="list.csv", sink=MemorySink(), limit=5, progress=False)
    send_edition(settings, DAY, subscribers="list.csv", sink=MemorySink(), progress=False)
    code, out = run_cli("status", "--root", demo_root, "--date", "2016-12-30", env=env)
    assert code == 0, out
    assert "sent 12, failed 0, skipped 0, pending 0" in out
    senders = [line for line in out.splitlines() if line.strip().startswith("sender ")]
    assert len(senders) == 2 and "sent 5," in senders[0] and "sent 7," in senders[1]


def test_worker_joins_a_mailing_and_needs_a_database(
    demo_root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "s")
    code, out = run_cli("worker", "--root", demo_root, "--once", env={})
    assert code == 1 and "needs database_url" in out
    (demo_root / "list.csv").write_text("email\n" + "".join(f"w{i}@example.com\n" for i in range(15)))
    env = {"NEWSLETTER_DATABASE_URL": pg_url}
    settings = load_settings(demo_root, environ=env)
    send_edition(settings, DAY, subscribers="list.csv", sink=MemorySink(), limit=4, progress=False)
    code, out = run_cli("worker", "--root", demo_root, "--once", env={**env, SECRET_ENV: "s"})
    assert code == 0, out
    assert "edition 2016-12-30: sent 11 here" in out
    report = ledger_report(settings, DAY)
    assert report is not None and report.sent == 15 and report.pending == 0
    files = list((demo_root / "outbox" / "2016-12-30" / "mail").glob("*.eml"))
    assert len(files) == 11  # the worker's own sink: the outbox of its folder


def test_dry_run_reads_the_database_and_changes_nothing(
    demo_root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "s")
    (demo_root / "list.csv").write_text("email\n" + "".join(f"d{i}@example.com\n" for i in range(10)))
    settings = load_settings(demo_root, environ={"NEWSLETTER_DATABASE_URL": pg_url})
    send_edition(settings, DAY, subscribers="list.csv", sink=MemorySink(), limit=3, progress=False)
    dry = send_edition(settings, DAY, subscribers="list.csv", dry_run=True, progress=False)
    assert (dry.sent_now, dry.sent, dry.pending) == (7, 10, 0)  # the 3 already sent are not counted again
    real = ledger_report(settings, DAY)
    assert real is not None and (real.sent, real.pending) == (3, 7)


@pytest.mark.slow
def test_language_editions_keep_a_ledger_each_in_the_database(
    languages_root: Path, pg_url: str, smtp_server: Any
) -> None:
    """Several language editions on PostgreSQL: a ledger each (`2016-12-30.fr`), one message per reader."""
    from collections import Counter

    from tests.test_languages_send import READERS, write_list

    subs = write_list(languages_root, "MARIE@example.org,Marie again,ar\n")
    env = {"NEWSLETTER_DATABASE_URL": pg_url, SECRET_ENV: "s"}
    code, out = run_cli(
        "send", "--root", languages_root, "--date", "2016-12-30", "--subscribers", subs, "--smtp", smtp_server.url,
        env=env,
    )  # fmt: skip
    assert code == 0, out
    got = Counter(rcpt for record in smtp_server.received for rcpt in record.rcpt_tos)
    assert got == Counter(list(READERS)), got
    assert "already has the fr edition" in out  # the other edition's ledger was read from the database
    assert not (languages_root / "data" / "ledger").exists()
    with contextlib.closing(Postgres(pg_url).connect()) as db:
        names = [r[0] for r in db.execute("SELECT DISTINCT edition FROM ledger_recipients ORDER BY 1")]
    assert names == ["2016-12-30.ar", "2016-12-30.en", "2016-12-30.fr"]
    code, out = run_cli("send", "--root", languages_root, "--date", "2016-12-30", "--subscribers", subs,
                        "--smtp", smtp_server.url, env=env)  # fmt: skip
    assert code == 0 and len(smtp_server.received) == len(READERS)  # a rerun sends nobody anything
