"""The runs table: one row per edition date (running/completed/empty/failed/interrupted/skipped).

APScheduler's job store keeps the schedule (trigger, next run) across restarts, but it moves
`next_run_time` forward the moment a job is *submitted*, so it cannot tell a finished morning from one that
crashed half-way. This table, keyed by edition date, can: a completed edition is never run again, whatever
fires the job — a double fire, a clock change, a restart, a second process. An empty one (no story in
its window yet) is not done: a late story can still make the morning until its grace period ends.
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from ..config import Settings
from ..storage import Meta, connect, owner_alive

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


def data_dir(settings: Settings) -> Path:
    """`<root>/data/`, git-ignored, where the mailing ledger and suppression list live too."""
    return settings.root / "data"


def store_path(settings: Settings) -> Path:
    return data_dir(settings) / "schedule.sqlite"


class RunStore:
    """One row per edition date. Every change is one short transaction, safe across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA + Meta.SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = connect(self.path)
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # take the write lock before reading: claims cannot interleave
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def get(self, edition: date) -> RunRow | None:
        with self._connect() as db:
            return _row(db, edition)

    def rows(self) -> list[RunRow]:
        with self._connect() as db:
            names = [r[0] for r in db.execute("SELECT edition FROM runs ORDER BY edition")]
            return [row for name in names if (row := _row(db, date.fromisoformat(name))) is not None]

    def counts(self, edition: date) -> dict[str, int | None]:
        with self._connect() as db:
            found = db.execute(
                "SELECT sent, failed, skipped, pending FROM runs WHERE edition = ?", (edition.isoformat(),)
            ).fetchone()
        return dict(zip(("sent", "failed", "skipped", "pending"), found or (None,) * 4, strict=True))

    def claim(self, edition: date, scheduled: datetime, owner: str, now: datetime) -> tuple[bool, RunRow | None]:
        """Mark the edition running for `owner` unless it is done or a live process is running it.

        Returns (claimed, the row as it was before).
        """
        with self._transaction() as db:
            before = _row(db, edition)
            if before is not None and (
                before.state in DONE
                or (before.state == State.RUNNING and before.owner != owner and owner_alive(before.owner))
            ):
                return False, before
            db.execute(
                "INSERT INTO runs (edition, scheduled, state, attempts, owner, started_at, finished_at, detail) "
                "VALUES (?, ?, 'running', 1, ?, ?, NULL, '') "
                "ON CONFLICT(edition) DO UPDATE SET state = 'running', attempts = attempts + 1, owner = excluded.owner,"
                " started_at = excluded.started_at, finished_at = NULL, scheduled = excluded.scheduled",
                (edition.isoformat(), scheduled.isoformat(), owner, now.isoformat()),
            )
            return True, before

    def finish(
        self, edition: date, state: State, now: datetime, detail: str = "", counts: dict[str, int] | None = None
    ) -> None:
        counts = counts or {}
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET state = ?, finished_at = ?, detail = ?, sent = ?, failed = ?, skipped = ?, "
                "pending = ? WHERE edition = ?",
                (
                    state.value,
                    now.isoformat(),
                    detail,
                    counts.get("sent"),
                    counts.get("failed"),
                    counts.get("skipped"),
                    counts.get("pending"),
                    edition.isoformat(),
                ),
            )

    def skip(self, edition: date, scheduled: datetime, now: datetime, detail: str) -> bool:
        """Record a morning deliberately not sent; False when the row already says done or skipped."""
        with self._transaction() as db:
            before = _row(db, edition)
            if before is not None and before.state in SETTLED:
                return False
            if before is not None and before.state == State.RUNNING and owner_alive(before.owner):
                return False
            db.execute(
                "INSERT INTO runs (edition, scheduled, state, attempts, finished_at, detail) "
                "VALUES (?, ?, 'skipped', 0, ?, ?) "
                "ON CONFLICT(edition) DO UPDATE SET state = 'skipped', finished_at = excluded.finished_at,"
                " detail = excluded.detail",
                (edition.isoformat(), scheduled.isoformat(), now.isoformat(), detail),
            )
            return True

    def get_meta(self, key: str) -> str | None:
        with self._connect() as db:
            return Meta.get(db, key)

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            Meta.set(db, key, value)

    def advance(self, through: datetime) -> None:
        """Remember that every morning up to `through` has been accounted for (run, or logged as skipped)."""
        with self._transaction() as db:
            found = Meta.get(db, "accounted_through")
            if found is None or datetime.fromisoformat(found) < through:
                Meta.set(db, "accounted_through", through.isoformat())

    def accounted_through(self) -> datetime | None:
        value = self.get_meta("accounted_through")
        return datetime.fromisoformat(value) if value else None

    def close(self) -> None:
        """Nothing held between calls (each opens its own connection); here for the common interface."""


def _row(db: sqlite3.Connection, edition: date) -> RunRow | None:
    found = db.execute(
        "SELECT edition, scheduled, state, attempts, owner, started_at, finished_at, detail FROM runs "
        "WHERE edition = ?",
        (edition.isoformat(),),
    ).fetchone()
    if found is None:
        return None
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
