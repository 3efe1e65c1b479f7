"""The subscriber store: who is on the list, in which state, and the record of their consent.

One small interface, `SubscriberStore`, so the rest of the package never knows where subscribers live;
`SqliteSubscriberStore` keeps them in `data/subscribers.sqlite` (WAL mode: the send loop reads while the
web app writes); `PgSubscriberStore` (subscribers_pg.py) keeps them in PostgreSQL when `database_url` is
set. A backend implements the same eight methods and nothing else.

Statuses: `pending` (asked, not yet confirmed), `confirmed` (mailed), `unsubscribed`, `bounced`. Only
`confirmed` rows are sent to. Addresses compare case-insensitively (the key is the lower-cased address);
the address is kept as first given. Callers validate addresses before they reach the store.

The consent record says how a confirmed subscriber agreed: when, through which form, and a keyed hash of
the IP address the confirmation came from (never the address itself). A subscriber may have a time
zone (an IANA name, for `[schedule] per_timezone`); a value that is not one is kept as none.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError
from .records import connect

STATUSES = ("pending", "confirmed", "unsubscribed", "bounced")
DEFAULT_PATH = "data/subscribers.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscribers (
    key          TEXT NOT NULL UNIQUE,   -- lower-cased address: what lookups compare
    email        TEXT NOT NULL,          -- as first given
    name         TEXT NOT NULL DEFAULT '',
    locale       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    created_at   TEXT NOT NULL,
    confirmed_at TEXT,
    updated_at   TEXT NOT NULL,
    consent      TEXT,                   -- JSON of a Consent, or NULL
    timezone     TEXT NOT NULL DEFAULT ''  -- IANA name, or empty (the schedule's zone)
);
CREATE INDEX IF NOT EXISTS subscribers_status ON subscribers (status);
"""


@dataclass(frozen=True, slots=True)
class Consent:
    """How a subscriber agreed: `at` (ISO 8601 UTC), the form (`subscribe`, `import`, `cli`, or a page
    URL), a keyed hash of the confirming IP (empty when there was none) and the method."""

    at: str
    form: str
    ip_hash: str = ""
    method: str = "double-opt-in"


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    email: str
    name: str
    locale: str
    status: str
    created_at: str
    confirmed_at: str | None
    consent: Consent | None
    id: int  # insertion order; stable, reported as the "line" of a list
    timezone: str = ""  # IANA name, or empty: the schedule's zone


@runtime_checkable
class SubscriberStore(Protocol):
    """Where subscribers live. Every method is safe to call from several threads of one process."""

    def get(self, email: str) -> SubscriberRecord | None:
        """The record for `email` (any case), or None."""

    def add(
        self, email: str, *, name: str = "", locale: str = "", status: str = "confirmed", timezone: str = ""
    ) -> bool:
        """Insert, or update the name, locale, status and time zone of an existing address; True when it was
        new. A time zone that is not an IANA name is stored as none (see `clean_zone`)."""

    def request(self, email: str, *, name: str = "", locale: str = "") -> SubscriberRecord:
        """A sign-up: a new address becomes `pending`; an existing record is returned unchanged (its
        name and locale are updated only while it is still pending)."""

    def confirm(self, email: str, consent: Consent) -> SubscriberRecord:
        """Mark `email` confirmed now with its consent record (creating the row if it vanished)."""

    def set_status(self, email: str, status: str) -> bool:
        """Change the status of an existing address; False when the address is unknown."""

    def remove(self, email: str) -> bool:
        """Delete the address and everything recorded about it; False when unknown."""

    def records(self, status: str | None = None) -> Iterator[SubscriberRecord]:
        """Every record (or those with `status`), oldest first, streamed."""

    def counts(self) -> dict[str, int]:
        """How many records per status (every status present, zero included)."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def clean_zone(value: str) -> str:
    """`value` when it is an IANA time zone name (e.g. Europe/Paris), else "" (the schedule's zone)."""
    name = (value or "").strip()
    if not name:
        return ""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ""
    return name


def _key(email: str) -> str:
    key = email.strip().lower()
    if not key:
        raise ValueError("empty address")
    return key


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")


def make_record(row: tuple[object, ...]) -> SubscriberRecord:
    """A record from a row of (id, email, name, locale, status, created, confirmed, consent, timezone)."""
    rowid, email, name, locale, status, created, confirmed, consent, zone = row
    parsed = Consent(**json.loads(str(consent))) if consent else None
    confirmed_at = None if confirmed is None else str(confirmed)
    return SubscriberRecord(
        str(email), str(name), str(locale), str(status), str(created), confirmed_at, parsed, int(str(rowid)), str(zone)
    )


class SqliteSubscriberStore:
    """`SubscriberStore` in one SQLite file (created on first use, WAL, busy timeout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = connect(self.path, wal=True, shared=True)
                conn.executescript(_SCHEMA)
                columns = {str(r[1]) for r in conn.execute("SELECT * FROM pragma_table_info('subscribers')")}
                if "timezone" not in columns:  # a file written before readers had a zone
                    conn.execute("ALTER TABLE subscribers ADD COLUMN timezone TEXT NOT NULL DEFAULT ''")
            except (sqlite3.Error, OSError) as exc:
                raise ConfigError(f"{self.path}: cannot open the subscriber store ({exc})") from None
            self._conn = conn
        return self._conn

    _COLUMNS = "rowid, email, name, locale, status, created_at, confirmed_at, consent, timezone"

    def get(self, email: str) -> SubscriberRecord | None:
        with self._lock:
            row = (
                self._db().execute(f"SELECT {self._COLUMNS} FROM subscribers WHERE key = ?", (_key(email),)).fetchone()
            )
        return None if row is None else make_record(row)

    def add(
        self, email: str, *, name: str = "", locale: str = "", status: str = "confirmed", timezone: str = ""
    ) -> bool:
        _check_status(status)
        now = now_iso()
        confirmed = now if status == "confirmed" else None
        zone = clean_zone(timezone)
        with self._lock:
            db = self._db()
            cur = db.execute(
                "INSERT OR IGNORE INTO subscribers (key, email, name, locale, status, created_at, confirmed_at, "
                "updated_at, timezone) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_key(email), email.strip(), name, locale, status, now, confirmed, now, zone),
            )
            if cur.rowcount == 1:
                return True
            db.execute(
                "UPDATE subscribers SET name = ?, locale = ?, status = ?, timezone = ?, updated_at = ?, "
                "confirmed_at = CASE WHEN ? = 'confirmed' THEN coalesce(confirmed_at, ?) ELSE confirmed_at END "
                "WHERE key = ?",
                (name, locale, status, zone, now, status, now, _key(email)),
            )
            return False

    def request(self, email: str, *, name: str = "", locale: str = "") -> SubscriberRecord:
        now = now_iso()
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT OR IGNORE INTO subscribers (key, email, name, locale, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (_key(email), email.strip(), name, locale, now, now),
            )
            db.execute(
                "UPDATE subscribers SET name = ?, locale = ?, updated_at = ? WHERE key = ? AND status = 'pending'",
                (name, locale, now, _key(email)),
            )
            row = db.execute(f"SELECT {self._COLUMNS} FROM subscribers WHERE key = ?", (_key(email),)).fetchone()
        return make_record(row)

    def confirm(self, email: str, consent: Consent) -> SubscriberRecord:
        now = now_iso()
        data = json.dumps(asdict(consent), sort_keys=True)
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT OR IGNORE INTO subscribers (key, email, status, created_at, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?)",
                (_key(email), email.strip(), now, now),
            )
            db.execute(
                "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?, consent = ?, updated_at = ? "
                "WHERE key = ?",
                (consent.at or now, data, now, _key(email)),
            )
            row = db.execute(f"SELECT {self._COLUMNS} FROM subscribers WHERE key = ?", (_key(email),)).fetchone()
        return make_record(row)

    def set_status(self, email: str, status: str) -> bool:
        _check_status(status)
        with self._lock:
            cur = self._db().execute(
                "UPDATE subscribers SET status = ?, updated_at = ? WHERE key = ?", (status, now_iso(), _key(email))
            )
        return cur.rowcount == 1

    def remove(self, email: str) -> bool:
        with self._lock:
            cur = self._db().execute("DELETE FROM subscribers WHERE key = ?", (_key(email),))
        return cur.rowcount == 1

    def records(self, status: str | None = None) -> Iterator[SubscriberRecord]:
        if status is not None:
            _check_status(status)
        # A page at a time by rowid, so a long list is never held in memory nor a read held open.
        last = 0
        while True:
            with self._lock:
                where = "rowid > ?" + (" AND status = ?" if status else "")
                params: tuple[object, ...] = (last, status) if status else (last,)
                rows = (
                    self._db()
                    .execute(f"SELECT {self._COLUMNS} FROM subscribers WHERE {where} ORDER BY rowid LIMIT 1000", params)
                    .fetchall()
                )
            if not rows:
                return
            for row in rows:
                yield make_record(row)
            last = int(rows[-1][0])

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(STATUSES, 0)
        with self._lock:
            for status, n in self._db().execute("SELECT status, count(*) FROM subscribers GROUP BY status"):
                found[str(status)] = int(n)
        return found

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SqliteSubscriberStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def store_location(root: Path, setting: object = None) -> Path:
    """`[subscribers] path` relative to the newsletter folder `root`, default `data/subscribers.sqlite`."""
    value = DEFAULT_PATH if setting is None else setting
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[subscribers] path must be a file path, got {value!r}")
    return (root / value).resolve()
