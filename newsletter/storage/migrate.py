"""Move an existing set-up's SQLite files into PostgreSQL without losing a row.

What moves: the suppression list, the subscriber store (in insertion order, consent records and all),
every edition's ledger (recipients, runs, meta; run ids are renumbered and the recipients' `seen_run`
follows them), the scheduler's runs and meta (each time zone's too), the bounce records. Each source file is copied in
one transaction and then counted on both sides; a mismatch rolls that file back and is an error. An
edition the database already holds is left alone and reported, so running the move twice is harmless.
The SQLite files are only read. The editors' desk moves too: its accounts, plans and audit log.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .database import Postgres


@dataclass
class Moved:
    """What a move copied (rows per table) and what it left alone, with why."""

    rows: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def add(self, table: str, n: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + n


@contextlib.contextmanager
def _read(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot read it as SQLite ({exc})") from None
    try:
        yield db
    finally:
        db.close()


def _rows(db: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    try:
        return db.execute(sql).fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"{sql.split(' FROM ')[1].split()[0]}: {exc}") from None


def _check(pg_db: Any, what: str, sql: str, params: tuple[Any, ...], want: int) -> None:
    got = int(pg_db.execute(sql, params).fetchone()[0])
    if got != want:
        raise ConfigError(f"{what}: copied {got} row(s) of {want}; nothing of it was kept")


def migrate_from_sqlite(
    pg: Postgres,
    *,
    suppression: Path | None,
    ledgers: list[tuple[str, Path]],
    schedule: Path | None,
    subscribers: Path | None = None,
    bounces: Path | None = None,
    zones: list[tuple[str, Path]] | None = None,
    desk: Path | None = None,
) -> Moved:
    """Copy the given SQLite files (those that exist) into `pg`, which must be at the current schema.

    `ledgers` are (ledger name, file): `2016-12-30` or `2016-12-30.fr`, the file's name without `.sqlite`;
    `zones` are (IANA zone, file), the runs of `per_timezone` batches; `desk` the editors' desk's file."""
    zones = zones or []
    pg.require_current()
    moved = Moved()
    with contextlib.closing(pg.connect()) as db:
        if suppression is not None and suppression.exists():
            with _read(suppression) as src, db.transaction():
                have = {r[1] for r in _rows(src, "SELECT * FROM pragma_table_info('suppression')")}
                extra = [c if c in have else "''" for c in ("diagnostic", "message_id")]  # older files lack them
                rows = _rows(
                    src, f"SELECT key, address, reason, source, created_at, {', '.join(extra)} FROM suppression"
                )
                db.cursor().executemany(
                    "INSERT INTO suppression (key, address, reason, source, created_at, diagnostic, message_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
                    rows,
                )
                keys = [r[0] for r in rows]
                _check(db, str(suppression), "SELECT count(*) FROM suppression WHERE key = ANY(%s)", (keys,), len(rows))
                moved.add("suppression", len(rows))
        if subscribers is not None and subscribers.exists():
            with _read(subscribers) as src, db.transaction():
                _subscribers(db, src, subscribers, moved)
        for day, path in ledgers:
            if db.execute("SELECT 1 FROM ledger_recipients WHERE edition = %s LIMIT 1", (day,)).fetchone():
                moved.skipped.append(f"{path}: edition {day} is already in the database")
                continue
            with _read(path) as src, db.transaction():
                _ledger(db, src, day, path, moved)
        runs: list[tuple[str, Path | None]] = [("", schedule), *zones]
        for zone, runs_file in runs:
            if runs_file is not None and runs_file.exists():
                with _read(runs_file) as src, db.transaction():
                    _schedule(db, src, zone, moved)
        if bounces is not None and bounces.exists():
            with _read(bounces) as src, db.transaction():
                _bounces(db, src, moved)
        if desk is not None and desk.exists():
            with _read(desk) as src, db.transaction():
                _desk(db, src, desk, moved)
    return moved


def _desk(db: Any, src: sqlite3.Connection, path: Path, moved: Moved) -> None:
    """The desk's accounts, plans and audit log (its sessions stay behind: people sign in again). A user or
    plan already there is kept as it is; the audit log is copied only into a database that has none."""
    tables = {str(r[0]) for r in _rows(src, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table, cols, key in (
        ("desk_users", "name, role, password, language, active, created_at, updated_at", "name"),
        ("desk_plans", "newsletter, edition, language, plan, updated_by, updated_at", "newsletter, edition, language"),
    ):
        rows = _rows(src, f"SELECT {cols} FROM {table}") if table in tables else []
        marks = ", ".join(["%s"] * len(cols.split(", ")))
        db.cursor().executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING", rows)
        moved.add(table, len(rows))
    if "desk_audit" not in tables:
        return
    if db.execute("SELECT 1 FROM desk_audit LIMIT 1").fetchone():
        moved.skipped.append(f"{path}: the database already has an audit log")
        return
    cols = "at, actor, action, target, detail, newsletter"
    rows = _rows(src, f"SELECT {cols} FROM desk_audit ORDER BY id")
    db.cursor().executemany(f"INSERT INTO desk_audit ({cols}) VALUES (%s, %s, %s, %s, %s, %s)", rows)
    _check(db, str(path), "SELECT count(*) FROM desk_audit WHERE id > %s", (0,), len(rows))
    moved.add("desk_audit", len(rows))


def _schedule(db: Any, src: sqlite3.Connection, zone: str, moved: Moved) -> None:
    """The scheduler's runs and meta: the list's (`zone` empty), or one time zone's into the zones' tables."""
    cols = "edition, scheduled, state, attempts, owner, started_at, finished_at, sent, failed, skipped, pending, detail"
    runs, meta, lead, key = (
        ("schedule_zone_runs", "schedule_zone_meta", "zone, ", "zone, ")
        if zone
        else ("schedule_runs", "schedule_meta", "", "")
    )
    rows = [(zone, *r) if zone else r for r in _rows(src, f"SELECT {cols} FROM runs")]
    width = 13 if zone else 12
    db.cursor().executemany(
        f"INSERT INTO {runs} ({lead}{cols}) VALUES ({', '.join(['%s'] * width)}) ON CONFLICT ({key}edition) DO NOTHING",
        rows,
    )
    pairs = [(zone, *r) if zone else r for r in _rows(src, "SELECT key, value FROM meta")]
    db.cursor().executemany(
        f"INSERT INTO {meta} ({lead}key, value) VALUES ({'%s, ' * (width - 11)}%s) ON CONFLICT ({key}key) DO NOTHING",
        pairs,
    )
    moved.add(runs, len(rows))
    moved.add(meta, len(pairs))


def _bounces(db: Any, src: sqlite3.Connection, moved: Moved) -> None:
    """The handled report ids, the soft-bounce history and the events by edition; rows already there are
    kept as they are."""
    has_events = bool(_rows(src, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'events'"))
    for table, cols, key in (
        ("processed", "message_id, processed_at, kind", "message_id"),
        ("soft", "key, message_id, at, diagnostic", "key, message_id"),
        ("events", "message_id, reader, kind, edition, language, at", "message_id, reader"),
    ):
        if table == "events" and not has_events:
            continue  # a file from before events were kept
        rows = _rows(src, f"SELECT {cols} FROM {table}")
        marks = ", ".join(["%s"] * len(cols.split(", ")))
        db.cursor().executemany(
            f"INSERT INTO bounce_{table} ({cols}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING", rows
        )
        moved.add(f"bounce_{table}", len(rows))


def _ledger(db: Any, src: sqlite3.Connection, day: str, path: Path, moved: Moved) -> None:
    run_cols = "started_at, finished_at, pid, source, sink, status, sent, failed, invalid, duplicates, suppressed, "
    run_cols += "retried, deferred"
    new_id: dict[int, int] = {}
    for row in _rows(src, f"SELECT id, {run_cols} FROM runs ORDER BY id"):
        found = db.execute(
            f"INSERT INTO ledger_runs (edition, {run_cols}) VALUES (%s, {', '.join(['%s'] * 13)}) RETURNING id",
            (day, *row[1:]),
        ).fetchone()
        new_id[int(row[0])] = int(found[0])
    rec_cols = "key, address, name, locale, line, seen_run, state, attempts, code, reply, created_at, updated_at, "
    rec_cols += "sent_at"
    rows = _rows(src, f"SELECT {rec_cols} FROM recipients ORDER BY id")
    db.cursor().executemany(
        f"INSERT INTO ledger_recipients (edition, {rec_cols}) VALUES (%s, {', '.join(['%s'] * 13)})",
        [(day, *r[:5], new_id.get(int(r[5]), 0), *r[6:]) for r in rows],
    )
    meta = _rows(src, "SELECT key, value FROM meta")
    db.cursor().executemany(
        "INSERT INTO ledger_meta (edition, key, value) VALUES (%s, %s, %s)", [(day, *m) for m in meta]
    )
    _check(db, str(path), "SELECT count(*) FROM ledger_recipients WHERE edition = %s", (day,), len(rows))
    moved.add("ledger_recipients", len(rows))
    moved.add("ledger_runs", len(new_id))
    moved.add("ledger_meta", len(meta))


def _subscribers(db: Any, src: sqlite3.Connection, path: Path, moved: Moved) -> None:
    """Every row of the subscriber store, oldest first (ids follow); an address already there is kept as is."""
    have = {r[1] for r in _rows(src, "SELECT * FROM pragma_table_info('subscribers')")}
    zone = "timezone" if "timezone" in have else "''"  # files from before readers had a zone
    paused = "paused_until" if "paused_until" in have else "NULL"  # and before the reader base
    cols = "key, email, name, locale, status, created_at, confirmed_at, updated_at, consent"
    rows = _rows(src, f"SELECT {cols}, {zone}, {paused} FROM subscribers ORDER BY rowid")
    before = int(db.execute("SELECT count(*) FROM subscribers").fetchone()[0])
    db.cursor().executemany(
        f"INSERT INTO subscribers ({cols}, timezone, paused_until) VALUES ({', '.join(['%s'] * 11)}) "
        "ON CONFLICT (key) DO NOTHING",
        rows,
    )
    _reader_history(db, src, moved)
    keys = [r[0] for r in rows]
    _check(db, str(path), "SELECT count(*) FROM subscribers WHERE key = ANY(%s)", (keys,), len(rows))
    copied = int(db.execute("SELECT count(*) FROM subscribers").fetchone()[0]) - before
    if copied < len(rows):
        moved.skipped.append(f"{path}: {len(rows) - copied} subscriber(s) already in the database, kept as they are")
    moved.add("subscribers", copied)


def _reader_history(db: Any, src: sqlite3.Connection, moved: Moved) -> None:
    """The reader base's subscriptions and history, when the file has them (a store from before has not)."""
    tables = {r[0] for r in _rows(src, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "subscriptions" in tables:
        cols = "reader_key, newsletter, status, created_at, updated_at, confirmed_at, consent"
        rows = _rows(src, f"SELECT {cols} FROM subscriptions")
        db.cursor().executemany(
            f"INSERT INTO subscriptions ({cols}) VALUES ({', '.join(['%s'] * 7)}) "
            "ON CONFLICT (reader_key, newsletter) DO NOTHING",
            rows,
        )
        moved.add("subscriptions", len(rows))
    if "reader_events" in tables:
        cols = "reader_key, at, kind, newsletter, via, detail"
        rows = _rows(src, f"SELECT {cols} FROM reader_events ORDER BY id")
        db.cursor().executemany(f"INSERT INTO reader_events ({cols}) VALUES ({', '.join(['%s'] * 6)})", rows)
        moved.add("reader_events", len(rows))
