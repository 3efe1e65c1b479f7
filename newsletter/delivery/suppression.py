"""The suppression list: addresses that must never be mailed again (unsubscribed, bounced, complained).

One SQLite file shared by the send loop (which reads it for every subscriber) and the unsubscribe
handler of the preview server (which writes to it from request threads), so it runs in WAL mode with a
busy timeout: readers never block the writer and a one-click POST never fails because a send is running.
Addresses compare case-insensitively, like the duplicate check on subscriber lists.

Each entry keeps why it was made: the reason, where the decision came from, and — for decisions taken
on a bounce or a complaint — the server's diagnostic and the Message-ID of the report it came from, so
`newsletter unsubscribe --check` can answer a reader who asks why the newsletter stopped.

With `database_url` set, `PgSuppressionList` keeps the same list in PostgreSQL (`open_suppression`
picks), shared by every sender of a fleet, the bounce reader and the web app.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config import Settings
from ..errors import ConfigError
from ..storage import FileLock, open_postgres
from .options import MAILING

DEFAULT_PATH = "data/suppression.sqlite"
REASONS = ("unsubscribed", "bounced", "complained", "manual")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS suppression (
    key        TEXT PRIMARY KEY,   -- the address, lower-cased: what lookups compare
    address    TEXT NOT NULL,      -- as first recorded
    reason     TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    diagnostic TEXT NOT NULL DEFAULT '',  -- the remote server's words, for bounces
    message_id TEXT NOT NULL DEFAULT ''   -- the report (DSN, ARF, webhook event) the decision came from
) WITHOUT ROWID;
"""
# Files written before the last two columns existed get them on open; old rows read as ''.
_ADDED_COLUMNS = ("diagnostic", "message_id")
_MAX_FIELD = 1000  # a diagnostic is a line or two; a hostile report does not get to store megabytes


@dataclass(frozen=True, slots=True)
class Entry:
    """One suppressed address and why."""

    address: str
    reason: str
    source: str
    created_at: str
    diagnostic: str = ""
    message_id: str = ""

    def describe(self) -> str:
        """One line: reason, source, date, then the diagnostic and the report's Message-ID when known."""
        text = f"{self.reason}, {self.source}, since {self.created_at}"
        if self.diagnostic:
            text += f"; diagnostic: {self.diagnostic}"
        if self.message_id:
            text += f"; report {self.message_id}"
        return text


def suppression_path(settings: Settings) -> Path:
    """`[mailing] suppression` (relative to the newsletter folder), default `data/suppression.sqlite`."""
    return settings.options(MAILING).suppression


def _key(address: str) -> str:
    return address.strip().lower()


class SuppressionList:
    """`add(address, reason, source)`, `address in suppression`, `count()`; safe to share between threads.

    The file (and its folder) is created on first use. Each instance keeps one connection, guarded by a
    lock, because the send loop asks about every subscriber and reconnecting each time would cost more
    than the lookup.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = FileLock(self.path)
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                have = {row[1] for row in conn.execute("PRAGMA table_info(suppression)")}
                for column in _ADDED_COLUMNS:
                    if column not in have:
                        conn.execute(f"ALTER TABLE suppression ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
            except (sqlite3.Error, OSError) as exc:
                raise ConfigError(f"{self.path}: cannot open the suppression list ({exc})") from None
            self._conn = conn
        return self._conn

    def add(
        self,
        address: str,
        reason: str = "unsubscribed",
        source: str = "",
        *,
        diagnostic: str = "",
        message_id: str = "",
    ) -> bool:
        """Record `address`; True when it was not on the list yet (the first reason is kept)."""
        key, now = _new_entry(address, reason)
        with self._lock:
            cur = self._db().execute(
                "INSERT OR IGNORE INTO suppression (key, address, reason, source, created_at, diagnostic, message_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, address.strip(), reason, source, now, diagnostic[:_MAX_FIELD], message_id[:_MAX_FIELD]),
            )
            return cur.rowcount == 1

    def remove(self, address: str) -> bool:
        """Take `address` off the list (it confirmed a new subscription); True when it was on it."""
        with self._lock:
            cur = self._db().execute("DELETE FROM suppression WHERE key = ?", (_key(address),))
            return cur.rowcount == 1

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        with self._lock:
            row = self._db().execute("SELECT 1 FROM suppression WHERE key = ?", (_key(address),)).fetchone()
        return row is not None

    def which(self, addresses: list[str]) -> set[str]:
        """Those of `addresses` on the list (as given): one query for a batch of the send loop."""
        keys = {_key(a): a for a in addresses}
        found: set[str] = set()
        items = list(keys)
        with self._lock:
            for i in range(0, len(items), 500):
                part = items[i : i + 500]
                marks = ",".join("?" * len(part))
                found.update(
                    k for (k,) in self._db().execute(f"SELECT key FROM suppression WHERE key IN ({marks})", part)
                )
        return {a for a in addresses if _key(a) in found}

    def get(self, address: str) -> tuple[str, str, str] | None:
        """(reason, source, created_at) for a suppressed address, else None."""
        with self._lock:
            row = (
                self._db()
                .execute("SELECT reason, source, created_at FROM suppression WHERE key = ?", (_key(address),))
                .fetchone()
            )
        return None if row is None else (row[0], row[1], row[2])

    def entry(self, address: str) -> Entry | None:
        """The whole record of a suppressed address (with diagnostic and report Message-ID), else None."""
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT address, reason, source, created_at, diagnostic, message_id FROM suppression WHERE key = ?",
                    (_key(address),),
                )
                .fetchone()
            )
        return None if row is None else Entry(*row)

    def count(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT count(*) FROM suppression").fetchone()[0])

    def __iter__(self) -> Iterator[tuple[str, str, str, str]]:
        """(address, reason, source, created_at) rows, oldest first."""
        with self._lock:
            rows = (
                self._db()
                .execute("SELECT address, reason, source, created_at FROM suppression ORDER BY created_at, key")
                .fetchall()
            )
        return iter(rows)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SuppressionList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PgSuppressionList:
    """The suppression list in PostgreSQL: the same methods as `SuppressionList`, one connection, thread-safe."""

    def __init__(self, url: str) -> None:
        self.pg = open_postgres(url)
        self.path = self.pg.describe()
        self._lock = threading.Lock()
        self._conn = self.pg.connect()

    def add(
        self,
        address: str,
        reason: str = "unsubscribed",
        source: str = "",
        *,
        diagnostic: str = "",
        message_id: str = "",
    ) -> bool:
        """Record `address`; True when it was not on the list yet (the first reason is kept)."""
        key, now = _new_entry(address, reason)
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO suppression (key, address, reason, source, created_at, diagnostic, message_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
                (key, address.strip(), reason, source, now, diagnostic[:_MAX_FIELD], message_id[:_MAX_FIELD]),
            )
            return cur.rowcount == 1

    def remove(self, address: str) -> bool:
        """Take `address` off the list (it confirmed a new subscription); True when it was on it."""
        with self._lock:
            cur = self._conn.execute("DELETE FROM suppression WHERE key = %s", (_key(address),))
            return cur.rowcount == 1

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        with self._lock:
            row = self._conn.execute("SELECT 1 FROM suppression WHERE key = %s", (_key(address),)).fetchone()
        return row is not None

    def which(self, addresses: list[str]) -> set[str]:
        """Those of `addresses` on the list (as given), in one query."""
        with self._lock:
            found = {
                str(k)
                for (k,) in self._conn.execute(
                    "SELECT key FROM suppression WHERE key = ANY(%s)", ([_key(a) for a in addresses],)
                ).fetchall()
            }
        return {a for a in addresses if _key(a) in found}

    def get(self, address: str) -> tuple[str, str, str] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT reason, source, created_at FROM suppression WHERE key = %s", (_key(address),)
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def entry(self, address: str) -> Entry | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT address, reason, source, created_at, diagnostic, message_id FROM suppression WHERE key = %s",
                (_key(address),),
            ).fetchone()
        return None if row is None else Entry(*row)

    def count(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT count(*) FROM suppression").fetchone()
        return int(row[0]) if row else 0

    def __iter__(self) -> Iterator[tuple[str, str, str, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT address, reason, source, created_at FROM suppression ORDER BY created_at, key"
            ).fetchall()
        return iter(rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PgSuppressionList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Suppression = SuppressionList | PgSuppressionList


def open_suppression(settings: Settings) -> Suppression:
    """The suppression list the settings name: PostgreSQL when `database_url` is set, else the SQLite file."""
    if settings.database_url:
        return PgSuppressionList(settings.database_url)
    return SuppressionList(suppression_path(settings))


def _new_entry(address: str, reason: str) -> tuple[str, str]:
    """The key and timestamp of an entry to add, both backends alike; ValueError for a bad reason or address."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
    key = _key(address)
    if not key:
        raise ValueError("empty address")
    return key, datetime.now(UTC).isoformat(timespec="seconds")
