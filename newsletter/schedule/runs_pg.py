"""The scheduler's runs table in PostgreSQL: the same methods as `RunStore`, for daemons on several machines.

Exactly one daemon claims each morning. The claim is a session advisory lock `morning:<date>` that the
claiming daemon holds until it finishes: while it lives, a second daemon cannot take the lock and knows
the run is in good hands (it then joins the mailing as one more sender); when it dies, however it dies,
PostgreSQL drops the lock with its connection and the next daemon that tries takes the morning over.
No guess about another machine's processes is needed, unlike the SQLite store's `owner_alive`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from ..config import Settings
from ..storage import lock_key, open_postgres
from .runs import DONE, SETTLED, RunRow, RunStore, State, store_path

_COLUMNS = "edition, scheduled, state, attempts, owner, started_at, finished_at, detail"


class PgRunStore:
    """One row per edition date in `schedule_runs`; every change one short transaction."""

    def __init__(self, url: str) -> None:
        self.pg = open_postgres(url)
        self.path = self.pg.describe()
        self._locks = threading.Lock()
        self._holder: Any = None  # the connection holding this daemon's morning locks
        self._held: set[date] = set()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        with contextlib.closing(self.pg.connect()) as db:
            yield db

    def get(self, edition: date) -> RunRow | None:
        with self._connect() as db:
            return _row(db, edition)

    def rows(self) -> list[RunRow]:
        with self._connect() as db:
            found = db.execute(f"SELECT {_COLUMNS} FROM schedule_runs ORDER BY edition").fetchall()
        return [_make(r) for r in found]

    def counts(self, edition: date) -> dict[str, int | None]:
        with self._connect() as db:
            found = db.execute(
                "SELECT sent, failed, skipped, pending FROM schedule_runs WHERE edition = %s", (edition.isoformat(),)
            ).fetchone()
        return dict(zip(("sent", "failed", "skipped", "pending"), found or (None,) * 4, strict=True))

    def _try_hold(self, edition: date) -> bool:
        """Take the morning's advisory lock on the holder connection (kept until `finish`)."""
        with self._locks:
            if edition in self._held:
                return True
            if self._holder is None:
                self._holder = self.pg.connect()
            row = self._holder.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(f"morning:{edition}"),)).fetchone()
            if row and row[0]:
                self._held.add(edition)
                return True
            return False

    def _release(self, edition: date) -> None:
        with self._locks:
            if edition in self._held and self._holder is not None:
                self._holder.execute("SELECT pg_advisory_unlock(%s)", (lock_key(f"morning:{edition}"),))
                self._held.discard(edition)

    def claim(self, edition: date, scheduled: datetime, owner: str, now: datetime) -> tuple[bool, RunRow | None]:
        """Mark the edition running for `owner` unless it is done or a live daemon holds it.

        Returns (claimed, the row as it was before).
        """
        if not self._try_hold(edition):  # a live daemon is running this morning
            return False, self.get(edition)
        # Holding the morning's lock, this daemon alone may change the row: no row lock is needed.
        with self._connect() as db, db.transaction():
            before = _row(db, edition)
            if before is not None and before.state in DONE:
                self._release(edition)
                return False, before
            db.execute(
                "INSERT INTO schedule_runs (edition, scheduled, state, attempts, owner, started_at, finished_at, "
                "detail) VALUES (%s, %s, 'running', 1, %s, %s, NULL, '') "
                "ON CONFLICT (edition) DO UPDATE SET state = 'running', attempts = schedule_runs.attempts + 1, "
                "owner = excluded.owner, started_at = excluded.started_at, finished_at = NULL, "
                "scheduled = excluded.scheduled",
                (edition.isoformat(), scheduled.isoformat(), owner, now.isoformat()),
            )
            return True, before

    def finish(
        self, edition: date, state: State, now: datetime, detail: str = "", counts: dict[str, int] | None = None
    ) -> None:
        counts = counts or {}
        with self._connect() as db:
            db.execute(
                "UPDATE schedule_runs SET state = %s, finished_at = %s, detail = %s, sent = %s, failed = %s, "
                "skipped = %s, pending = %s WHERE edition = %s",
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
        self._release(edition)

    def skip(self, edition: date, scheduled: datetime, now: datetime, detail: str) -> bool:
        """Record a morning deliberately not sent; False when done, skipped, or running on a live daemon."""
        if not self._try_hold(edition):
            return False
        try:
            with self._connect() as db, db.transaction():
                before = _row(db, edition)
                if before is not None and before.state in SETTLED:
                    return False
                db.execute(
                    "INSERT INTO schedule_runs (edition, scheduled, state, attempts, finished_at, detail) "
                    "VALUES (%s, %s, 'skipped', 0, %s, %s) ON CONFLICT (edition) DO UPDATE SET state = 'skipped', "
                    "finished_at = excluded.finished_at, detail = excluded.detail",
                    (edition.isoformat(), scheduled.isoformat(), now.isoformat(), detail),
                )
                return True
        finally:
            self._release(edition)

    def get_meta(self, key: str) -> str | None:
        with self._connect() as db:
            found = db.execute("SELECT value FROM schedule_meta WHERE key = %s", (key,)).fetchone()
        return None if found is None else str(found[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO schedule_meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def advance(self, through: datetime) -> None:
        """Remember that every morning up to `through` has been accounted for (never moves back)."""
        with self._connect() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("accounted_through"),))
            found = db.execute("SELECT value FROM schedule_meta WHERE key = 'accounted_through'").fetchone()
            if found is None or datetime.fromisoformat(found[0]) < through:
                db.execute(
                    "INSERT INTO schedule_meta (key, value) VALUES ('accounted_through', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (through.isoformat(),),
                )

    def accounted_through(self) -> datetime | None:
        value = self.get_meta("accounted_through")
        return datetime.fromisoformat(value) if value else None

    def close(self) -> None:
        with self._locks:
            if self._holder is not None:
                self._holder.close()  # drops every morning lock it held
                self._holder = None
                self._held.clear()


def _row(db: Any, edition: date) -> RunRow | None:
    found = db.execute(f"SELECT {_COLUMNS} FROM schedule_runs WHERE edition = %s", (edition.isoformat(),)).fetchone()
    return None if found is None else _make(found)


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


def open_run_store(settings: Settings) -> RunStore | PgRunStore:
    """The runs table the settings name: PostgreSQL when `database_url` is set, else data/schedule.sqlite."""
    if settings.database_url:
        return PgRunStore(settings.database_url)
    return RunStore(store_path(settings))
