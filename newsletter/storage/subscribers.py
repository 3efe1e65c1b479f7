"""The subscriber store: who is on the list, in which state, and the record of their consent.

One small interface, `SubscriberStore`, so the rest of the package never knows where subscribers live;
`SqlSubscriberStore` keeps them in `data/subscribers.sqlite` (WAL mode: the send loop reads while the
web app writes), or in PostgreSQL when `database_url` is set: one class over the storage adapter;
`open_store` picks the backend.

Statuses: `pending` (asked, not yet confirmed), `confirmed` (mailed), `unsubscribed`, `bounced`. Only
`confirmed` rows are sent to. Addresses compare case-insensitively (the key is the lower-cased address);
the address is kept as first given. Callers validate addresses before they reach the store.

The consent record says how a confirmed subscriber agreed: when, through which form, and a keyed hash of
the IP address the confirmation came from (never the address itself). A subscriber may have a time
zone (an IANA name, for `[schedule] per_timezone`); a value that is not one is kept as none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError
from .adapter import Database, RecordStore, open_pg, open_sqlite

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


class SqlSubscriberStore(RecordStore):
    """`SubscriberStore` in a SQLite file (created on first use, WAL, busy timeout) or in PostgreSQL (the
    `subscribers` table of migration 0002): `source` is the file or an open `Database`."""

    def __init__(self, source: str | Path | Database) -> None:
        if isinstance(source, Database):
            self.db = source
        else:
            self.db = open_sqlite("the subscriber store", Path(source), schema=_SCHEMA, names={"id": "rowid"})
            columns = {str(r[1]) for r in self.db.query("SELECT * FROM pragma_table_info('subscribers')")}
            if "timezone" not in columns:  # a file written before readers had a zone
                self.db.execute("ALTER TABLE subscribers ADD COLUMN timezone TEXT NOT NULL DEFAULT ''")
        self.path = self.db.where
        self._get = f"SELECT {_COLUMNS} FROM subscribers WHERE key = ?"

    def get(self, email: str) -> SubscriberRecord | None:
        row = self.db.one(self._get, (_key(email),))
        return None if row is None else make_record(row)

    def add(
        self, email: str, *, name: str = "", locale: str = "", status: str = "confirmed", timezone: str = ""
    ) -> bool:
        _check_status(status)
        now = now_iso()
        confirmed = now if status == "confirmed" else None
        row = {
            "key": _key(email),
            "email": email.strip(),
            "name": name,
            "locale": locale,
            "status": status,
            "created_at": now,
            "confirmed_at": confirmed,
            "updated_at": now,
            "timezone": clean_zone(timezone),
        }
        with self.db.transaction() as db:
            if db.upsert("subscribers", row, ("key",)) == 1:
                return True
            db.execute(
                "UPDATE subscribers SET name = :name, locale = :locale, status = :status, timezone = :timezone, "
                "updated_at = :updated_at, confirmed_at = CASE WHEN :status = 'confirmed' "
                "THEN coalesce(confirmed_at, :updated_at) ELSE confirmed_at END WHERE key = :key",
                row,
            )
            return False

    def request(self, email: str, *, name: str = "", locale: str = "") -> SubscriberRecord:
        now = now_iso()
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO subscribers (key, email, name, locale, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (key) DO UPDATE SET name = excluded.name, "
                "locale = excluded.locale, updated_at = excluded.updated_at WHERE subscribers.status = 'pending'",
                (_key(email), email.strip(), name, locale, now, now),
            )
            row = db.one(self._get, (_key(email),))
        assert row is not None  # inserted or already there, inside one transaction
        return make_record(row)

    def confirm(self, email: str, consent: Consent) -> SubscriberRecord:
        now = now_iso()
        data = json.dumps(asdict(consent), sort_keys=True)
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO subscribers (key, email, status, created_at, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?) ON CONFLICT (key) DO NOTHING",
                (_key(email), email.strip(), now, now),
            )
            db.execute(
                "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?, consent = ?, updated_at = ? "
                "WHERE key = ?",
                (consent.at or now, data, now, _key(email)),
            )
            row = db.one(self._get, (_key(email),))
        assert row is not None
        return make_record(row)

    def set_status(self, email: str, status: str) -> bool:
        _check_status(status)
        sql = "UPDATE subscribers SET status = ?, updated_at = ? WHERE key = ?"
        return self.db.execute(sql, (status, now_iso(), _key(email))) == 1

    def remove(self, email: str) -> bool:
        return self.db.execute("DELETE FROM subscribers WHERE key = ?", (_key(email),)) == 1

    def records(self, status: str | None = None) -> Iterator[SubscriberRecord]:
        if status is not None:
            _check_status(status)
        # A page at a time in insertion order, so a long list is never held in memory nor a read held open.
        last = 0
        where = "{id} > :last" + (" AND status = :status" if status else "")
        page = f"SELECT {_COLUMNS} FROM subscribers WHERE {where} ORDER BY {{id}} LIMIT 1000"
        while True:
            rows = self.db.query(page, {"last": last, "status": status})
            if not rows:
                return
            for row in rows:
                yield make_record(row)
            last = int(rows[-1][0])

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(STATUSES, 0)
        for status, n in self.db.query("SELECT status, count(*) FROM subscribers GROUP BY status"):
            found[str(status)] = int(n)
        return found


_COLUMNS = "{id}, email, name, locale, status, created_at, confirmed_at, consent, timezone"


def open_store(root: Path, setting: object = None, database_url: str = "", reconnect: float = 0.0) -> SubscriberStore:
    """The configured store: PostgreSQL when `database_url` is set, else the SQLite file `[subscribers]
    path` (created where no file exists)."""
    if database_url:
        return SqlSubscriberStore(
            open_pg("the subscriber store", database_url, names={"id": "id"}, reconnect=reconnect)
        )
    return SqlSubscriberStore(store_location(root, setting))


def store_location(root: Path, setting: object = None) -> Path:
    """`[subscribers] path` relative to the newsletter folder `root`, default `data/subscribers.sqlite`."""
    value = DEFAULT_PATH if setting is None else setting
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[subscribers] path must be a file path, got {value!r}")
    return (root / value).resolve()
