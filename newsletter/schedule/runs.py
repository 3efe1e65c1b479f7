"""The runs table: one row per edition date (running/completed/empty/failed/interrupted/skipped).

APScheduler's job store keeps the schedule (trigger, next run) across restarts, but it moves
`next_run_time` forward the moment a job is *submitted*, so it cannot tell a finished morning from one that
crashed half-way. This table, keyed by edition date, can: a completed edition is never run again, whatever
fires the job — a double fire, a clock change, a restart, a second process. An empty one (no story in
its window yet) is not done: a late story can still make the morning until its grace period ends.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import StorageError
from ..storage import Database, lock_key, open_pg, open_sqlite, owner_alive, reconnect_seconds

# --- the runs table ---------------------------------------------------------------------------------


class State(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # every recipient handled (sent, failed for good, or skipped)
    EMPTY = "empty"  # no stories in the window yet: looked at again until the grace period ends
    FAILED = "failed"  # the run raised; a retry or a restart within the grace period resumes it
    INTERRUPTED = "interrupted"  # stopped (SIGTERM) with messages pending; resumed like a failure
    SKIPPED = "skipped"  # past the grace period: deliberately never sent


DONE = (State.COMPLETED,)
# Never overwritten as skipped: an empty morning past its grace period had nothing to miss.
SETTLED = (State.COMPLETED, State.EMPTY, State.SKIPPED)
_RESUMED = {State.RUNNING: "crashed", State.INTERRUPTED: "stopped", State.FAILED: "failed"}


@dataclass(frozen=True)
class RunRow:
    edition: date
    scheduled: datetime
    state: State
    attempts: int
    owner: str | None
    started_at: datetime | None
    finished_at: datetime | None
    detail: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    edition     TEXT PRIMARY KEY,   -- YYYY-MM-DD, the edition date
    scheduled   TEXT NOT NULL,      -- ISO 8601 instant the run was for
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    owner       TEXT,               -- host:pid of the process that ran it last
    started_at  TEXT,
    finished_at TEXT,
    sent        INTEGER,
    failed      INTEGER,
    skipped     INTEGER,
    pending     INTEGER,
    detail      TEXT NOT NULL DEFAULT ''
);
"""
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


def data_dir(settings: Settings) -> Path:
    """`<root>/data/`, git-ignored, where the mailing ledger and suppression list live too."""
    return settings.root / "data"


def store_path(settings: Settings) -> Path:
    """`data/schedule.sqlite`; another newsletter's runs in `data/schedule-newsletters/<id>.sqlite`."""
    if settings.file_prefix:
        return data_dir(settings) / "schedule-newsletters" / f"{settings.newsletter}.sqlite"
    return data_dir(settings) / "schedule.sqlite"


# A store's tables, and how its rows are told apart from other zones' where tables are shared: `{zoned}`
# starts a WHERE clause, `{zone_col}`/`{zone_val}` lead a column and a value list. Only the per-time-zone
# stores on PostgreSQL share tables (migration 0007); a SQLite file is one zone's, or the list's.
_ALONE = {"zoned": "", "zone_col": "", "zone_val": ""}
_SQLITE_NAMES = {"runs": "runs", "meta": "meta", **_ALONE}
_PG_NAMES = {"runs": "schedule_runs", "meta": "schedule_meta", **_ALONE}
_PG_ZONE_NAMES = {
    "runs": "schedule_zone_runs",
    "meta": "schedule_zone_meta",
    "zoned": "zone = :zone AND ",
    "zone_col": "zone, ",
    "zone_val": ":zone, ",
}
_COLUMNS = "edition, scheduled, state, attempts, owner, started_at, finished_at, detail"


class RunStore:
    """One row per edition date, in `data/schedule.sqlite` or PostgreSQL (`open_run_store`). Every change
    is one short transaction, safe across processes.

    Who may run a morning differs by backend, and only that: with SQLite files (one machine) a running row
    whose owner process is gone has crashed (`owner_alive`); with PostgreSQL the claiming daemon holds the
    morning's advisory lock until it finishes, so a daemon on another machine knows without guessing, and
    the lock goes with a dead daemon's connection (`_MorningLocks`).
    """

    def __init__(self, source: Path | Database, *, zone: str = "") -> None:
        """`zone`: the time zone whose mornings these are, when the database holds several zones' rows."""
        self.zone = zone
        if isinstance(source, Database):
            self.db = source
            self._locks: _OwnerCheck = _MorningLocks(source, zone)
        else:
            self.db = open_sqlite("the scheduler's runs", source, schema=_SCHEMA + _META, names=_SQLITE_NAMES)
            self._locks = _OwnerCheck()
        self.path = self.db.where

    def _key(self, edition: date | None = None, **more: Any) -> dict[str, Any]:
        """The statement's parameters: the zone (where rows are shared) and the edition, with `more`."""
        found: dict[str, Any] = {"zone": self.zone, **more}
        if edition is not None:
            found["edition"] = edition.isoformat()
        return found

    def get(self, edition: date) -> RunRow | None:
        return _row(self.db, self._key(edition))

    def rows(self) -> list[RunRow]:
        found = self.db.query(f"SELECT {_COLUMNS} FROM {{runs}} WHERE {{zoned}}TRUE ORDER BY edition", self._key())
        return [_make(r) for r in found]

    def counts(self, edition: date) -> dict[str, int | None]:
        found = self.db.one(
            "SELECT sent, failed, skipped, pending FROM {runs} WHERE {zoned}edition = :edition", self._key(edition)
        )
        return dict(zip(("sent", "failed", "skipped", "pending"), found or (None,) * 4, strict=True))

    def claim(self, edition: date, scheduled: datetime, owner: str, now: datetime) -> tuple[bool, RunRow | None]:
        """Mark the edition running for `owner` unless it is done or a live process is running it.

        Returns (claimed, the row as it was before).
        """
        if not self._locks.hold(edition):  # a live daemon elsewhere is running this morning
            return False, self.get(edition)
        with self.db.transaction() as db:  # SQLite: the write lock first, so claims cannot interleave
            before = _row(db, self._key(edition))
            if before is not None and (before.state in DONE or self._locks.running_elsewhere(before, owner)):
                self._locks.release(edition)
                return False, before
            db.execute(
                "INSERT INTO {runs} ({zone_col}edition, scheduled, state, attempts, owner, started_at, finished_at, "
                "detail) VALUES ({zone_val}:edition, :scheduled, 'running', 1, :owner, :now, NULL, '') "
                "ON CONFLICT ({zone_col}edition) DO UPDATE SET state = 'running', attempts = {runs}.attempts + 1, "
                "owner = excluded.owner, started_at = excluded.started_at, finished_at = NULL, "
                "scheduled = excluded.scheduled",
                self._key(edition, scheduled=scheduled.isoformat(), owner=owner, now=now.isoformat()),
            )
            return True, before

    def finish(
        self, edition: date, state: State, now: datetime, detail: str = "", counts: dict[str, int] | None = None
    ) -> None:
        counts = counts or {}
        self.db.execute(
            "UPDATE {runs} SET state = :state, finished_at = :now, detail = :detail, sent = :sent, "
            "failed = :failed, skipped = :skipped, pending = :pending WHERE {zoned}edition = :edition",
            self._key(
                edition,
                state=state.value,
                now=now.isoformat(),
                detail=detail,
                **{k: counts.get(k) for k in ("sent", "failed", "skipped", "pending")},
            ),
        )
        self._locks.release(edition)

    def skip(self, edition: date, scheduled: datetime, now: datetime, detail: str) -> bool:
        """Record a morning deliberately not sent; False when done, skipped, or running on a live process."""
        if not self._locks.hold(edition):
            return False
        try:
            with self.db.transaction() as db:
                before = _row(db, self._key(edition))
                if before is not None and before.state in SETTLED:
                    return False
                if before is not None and self._locks.running_elsewhere(before, None):
                    return False
                db.execute(
                    "INSERT INTO {runs} ({zone_col}edition, scheduled, state, attempts, finished_at, detail) "
                    "VALUES ({zone_val}:edition, :scheduled, 'skipped', 0, :now, :detail) "
                    "ON CONFLICT ({zone_col}edition) DO UPDATE SET state = 'skipped', "
                    "finished_at = excluded.finished_at, detail = excluded.detail",
                    self._key(edition, scheduled=scheduled.isoformat(), now=now.isoformat(), detail=detail),
                )
                return True
        finally:
            self._locks.release(edition)

    def get_meta(self, key: str) -> str | None:
        return _meta(self.db, self._key(key=key))

    def set_meta(self, key: str, value: str) -> None:
        _set_meta(self.db, self._key(key=key, value=value))

    def advance(self, through: datetime) -> None:
        """Remember that every morning up to `through` has been accounted for (never moves back)."""
        with self.db.transaction() as db:
            self._locks.serialize(db, "accounted_through")
            found = _meta(db, self._key(key="accounted_through"))
            if found is None or datetime.fromisoformat(found) < through:
                _set_meta(db, self._key(key="accounted_through", value=through.isoformat()))

    def accounted_through(self) -> datetime | None:
        value = self.get_meta("accounted_through")
        return datetime.fromisoformat(value) if value else None

    def close(self) -> None:
        self._locks.close()
        self.db.close()


class _OwnerCheck:
    """SQLite (one machine): a running row belongs to a live process when its `host:pid` is alive."""

    def hold(self, edition: date) -> bool:
        return True

    def release(self, edition: date) -> None:
        pass

    def running_elsewhere(self, row: RunRow, owner: str | None) -> bool:
        return row.state == State.RUNNING and row.owner != owner and owner_alive(row.owner)

    def serialize(self, db: Database, name: str) -> None:
        """Nothing to do: a SQLite transaction holds the file's write lock from its start."""

    def close(self) -> None:
        pass


class _MorningLocks(_OwnerCheck):
    """PostgreSQL: the morning's session advisory lock, held on a connection of its own until `finish`."""

    def __init__(self, db: Database, zone: str = "") -> None:
        self._db = db
        self._scope = f"{zone}:" if zone else ""  # each zone's mornings are locked apart from the others'
        self._holder: Database | None = None
        self._held: set[date] = set()
        self._guard = threading.Lock()

    def hold(self, edition: date) -> bool:
        with self._guard:
            if edition in self._held:
                return True
            if self._holder is None:  # no reconnecting: a lost connection has lost its locks
                self._holder = Database(self._db.store, self._db.where, self._db.connector, postgres=True)
            if self._holder.scalar("SELECT pg_try_advisory_lock(?)", (lock_key(f"morning:{self._scope}{edition}"),)):
                self._held.add(edition)
                return True
            return False

    def release(self, edition: date) -> None:
        with self._guard:
            if edition in self._held and self._holder is not None:
                self._held.discard(edition)
                try:
                    self._holder.query("SELECT pg_advisory_unlock(?)", (lock_key(f"morning:{self._scope}{edition}"),))
                except StorageError:  # the server went away meanwhile, and the lock with the connection
                    self._holder.close()
                    self._holder = None
                    self._held.clear()

    def running_elsewhere(self, row: RunRow, owner: str | None) -> bool:
        return False  # this daemon holds the morning's lock: nobody else is running it

    def serialize(self, db: Database, name: str) -> None:
        db.query("SELECT pg_advisory_xact_lock(?)", (lock_key(self._scope + name),))

    def close(self) -> None:
        with self._guard:
            if self._holder is not None:
                self._holder.close()  # drops every morning lock it held
                self._holder = None
                self._held.clear()


def _row(db: Database, key: dict[str, Any]) -> RunRow | None:
    found = db.one(f"SELECT {_COLUMNS} FROM {{runs}} WHERE {{zoned}}edition = :edition", key)
    return None if found is None else _make(found)


def _meta(db: Database, key: dict[str, Any]) -> str | None:
    found = db.scalar("SELECT value FROM {meta} WHERE {zoned}key = :key", key)
    return None if found is None else str(found)


def _set_meta(db: Database, row: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO {meta} ({zone_col}key, value) VALUES ({zone_val}:key, :value) "
        "ON CONFLICT ({zone_col}key) DO UPDATE SET value = excluded.value",
        row,
    )


def _make(found: tuple[Any, ...]) -> RunRow:
    return RunRow(
        date.fromisoformat(found[0]),
        datetime.fromisoformat(found[1]),
        State(found[2]),
        found[3],
        found[4],
        datetime.fromisoformat(found[5]) if found[5] else None,
        datetime.fromisoformat(found[6]) if found[6] else None,
        found[7],
    )


def open_run_store(settings: Settings, zone: str = "") -> RunStore:
    """The runs table the settings name: PostgreSQL when `database_url` is set, else data/schedule.sqlite;
    with `zone`, that time zone's batches (`per_timezone`): its own file, or its rows of the zones' tables."""
    # The PostgreSQL runs table has one row per date and no newsletter: another newsletter's runs stay in
    # its SQLite file, on the scheduler's machine.
    if settings.database_url and not settings.file_prefix:
        names = _PG_ZONE_NAMES if zone else _PG_NAMES
        db = open_pg("the scheduler's runs", settings.database_url, names=names, reconnect=reconnect_seconds(settings))
        return RunStore(db, zone=zone)
    return RunStore(zone_store_path(settings, zone) if zone else store_path(settings))


def zone_store_path(settings: Settings, zone: str) -> Path:
    """A time zone's runs file with SQLite: `data/schedule-zones/<Area>_<City>.sqlite`."""
    return data_dir(settings) / "schedule-zones" / (zone.replace("/", "_") + ".sqlite")
