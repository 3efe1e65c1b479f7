"""The subscriber store in PostgreSQL (`database_url`), and `open_store`, which picks the backend.

`PgSubscriberStore` is `SqliteSubscriberStore` over the `subscribers` table of migration 0002: the same
methods, the same statuses, keys and consent records, so the web app on one machine and senders on
others share one list. Each store holds one autocommit connection behind a lock (every method is one
statement or a short transaction); `records` pages by id so a long list is streamed, not held.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .database import open_postgres, redact
from .subscribers import (
    STATUSES,
    Consent,
    SqliteSubscriberStore,
    SubscriberRecord,
    SubscriberStore,
    _check_status,
    _key,
    clean_zone,
    make_record,
    now_iso,
    store_location,
)

if TYPE_CHECKING:
    import psycopg

_COLUMNS = "id, email, name, locale, status, created_at, confirmed_at, consent, timezone"


class PgSubscriberStore:
    """`SubscriberStore` in the PostgreSQL database at `url` (which must be at the current schema)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"subscribers in {redact(url)}"
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = open_postgres(self.url).connect()
        return self._conn

    def _one(self, db: psycopg.Connection[Any], email: str) -> SubscriberRecord | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM subscribers WHERE key = %s", (_key(email),)).fetchone()
        return None if row is None else make_record(tuple(row))

    def get(self, email: str) -> SubscriberRecord | None:
        with self._lock:
            return self._one(self._db(), email)

    def add(
        self, email: str, *, name: str = "", locale: str = "", status: str = "confirmed", timezone: str = ""
    ) -> bool:
        _check_status(status)
        now = now_iso()
        confirmed = now if status == "confirmed" else None
        zone = clean_zone(timezone)
        with self._lock:
            # One statement: `xmax = 0` is true only for a row this statement inserted.
            row = (
                self._db()
                .execute(
                    "INSERT INTO subscribers (key, email, name, locale, status, created_at, confirmed_at, updated_at, "
                    "timezone) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                    "name = EXCLUDED.name, locale = EXCLUDED.locale, status = EXCLUDED.status, "
                    "timezone = EXCLUDED.timezone, updated_at = EXCLUDED.updated_at, "
                    "confirmed_at = CASE WHEN EXCLUDED.status = 'confirmed' "
                    "THEN coalesce(subscribers.confirmed_at, EXCLUDED.updated_at) ELSE subscribers.confirmed_at END "
                    "RETURNING (xmax = 0)",
                    (_key(email), email.strip(), name, locale, status, now, confirmed, now, zone),
                )
                .fetchone()
            )
        return bool(row and row[0])

    def request(self, email: str, *, name: str = "", locale: str = "") -> SubscriberRecord:
        now = now_iso()
        with self._lock:
            db = self._db()
            with db.transaction():
                db.execute(
                    "INSERT INTO subscribers (key, email, name, locale, status, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, 'pending', %s, %s) ON CONFLICT (key) DO UPDATE SET "
                    "name = EXCLUDED.name, locale = EXCLUDED.locale, updated_at = EXCLUDED.updated_at "
                    "WHERE subscribers.status = 'pending'",
                    (_key(email), email.strip(), name, locale, now, now),
                )
                found = self._one(db, email)
        assert found is not None  # inserted or already there, inside one transaction
        return found

    def confirm(self, email: str, consent: Consent) -> SubscriberRecord:
        now = now_iso()
        data = json.dumps(asdict(consent), sort_keys=True)
        with self._lock:
            db = self._db()
            with db.transaction():
                db.execute(
                    "INSERT INTO subscribers (key, email, status, created_at, updated_at) "
                    "VALUES (%s, %s, 'pending', %s, %s) ON CONFLICT (key) DO NOTHING",
                    (_key(email), email.strip(), now, now),
                )
                db.execute(
                    "UPDATE subscribers SET status = 'confirmed', confirmed_at = %s, consent = %s, updated_at = %s "
                    "WHERE key = %s",
                    (consent.at or now, data, now, _key(email)),
                )
                found = self._one(db, email)
        assert found is not None
        return found

    def set_status(self, email: str, status: str) -> bool:
        _check_status(status)
        with self._lock:
            cur = self._db().execute(
                "UPDATE subscribers SET status = %s, updated_at = %s WHERE key = %s", (status, now_iso(), _key(email))
            )
        return cur.rowcount == 1

    def remove(self, email: str) -> bool:
        with self._lock:
            cur = self._db().execute("DELETE FROM subscribers WHERE key = %s", (_key(email),))
        return cur.rowcount == 1

    def records(self, status: str | None = None) -> Iterator[SubscriberRecord]:
        if status is not None:
            _check_status(status)
        last = 0
        while True:
            with self._lock:
                where = "id > %s" + (" AND status = %s" if status else "")
                params: tuple[object, ...] = (last, status) if status else (last,)
                rows = (
                    self._db()
                    .execute(f"SELECT {_COLUMNS} FROM subscribers WHERE {where} ORDER BY id LIMIT 1000", params)
                    .fetchall()
                )
            if not rows:
                return
            for row in rows:
                yield make_record(tuple(row))
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

    def __enter__(self) -> PgSubscriberStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(root: Path, setting: object = None, database_url: str = "") -> SubscriberStore:
    """The configured store: PostgreSQL when `database_url` is set, else the SQLite file `[subscribers]
    path` (created on first use)."""
    if database_url:
        return PgSubscriberStore(database_url)
    return SqliteSubscriberStore(store_location(root, setting))
