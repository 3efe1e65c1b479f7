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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..config import DEFAULT_NEWSLETTER
from ..errors import ConfigError
from .adapter import Database, RecordStore
from .readerbase import READER_STATUSES, open_reader_base_file

STATUSES = READER_STATUSES
DEFAULT_PATH = "data/subscribers.sqlite"


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
    paused_until: str | None = None  # ISO date: nothing is sent before it
    updated_at: str = ""


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


def check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")


def make_record(row: tuple[object, ...]) -> SubscriberRecord:
    """A record from a row of `_COLUMNS` (id, email, name, locale, status, created, confirmed, consent,
    timezone, paused_until, updated)."""
    rowid, email, name, locale, status, created, confirmed, consent, zone, paused, updated = row
    parsed = Consent(**json.loads(str(consent))) if consent else None
    confirmed_at = None if confirmed is None else str(confirmed)
    return SubscriberRecord(
        str(email),
        str(name),
        str(locale),
        str(status),
        str(created),
        confirmed_at,
        parsed,
        int(str(rowid)),
        str(zone),
        None if paused is None else str(paused),
        str(updated),
    )


class SubscriberTable(RecordStore):
    """The `subscribers` table of the reader base, read: a SQLite file (created on first use, WAL, busy
    timeout; an older file brought up to date) or PostgreSQL: `source` is the file or an open `Database`.
    Its changes are the reader base's state changes (readers.py `SqlSubscriberStore`), which also write
    the subscription, the history and the suppression list."""

    def __init__(self, source: str | Path | Database, newsletter: str = DEFAULT_NEWSLETTER) -> None:
        self.db = source if isinstance(source, Database) else open_reader_base_file(Path(source))
        self.path = self.db.where
        self.newsletter = newsletter
        self._get = f"SELECT {_COLUMNS} FROM subscribers WHERE key = ?"

    def get(self, email: str) -> SubscriberRecord | None:
        row = self.db.one(self._get, (_key(email),))
        return None if row is None else make_record(row)

    def records(self, status: str | None = None) -> Iterator[SubscriberRecord]:
        if status is not None:
            check_status(status)
        where = "{id} > :last" + (" AND status = :status" if status else "")
        yield from self._pages(
            f"SELECT {_COLUMNS} FROM subscribers WHERE {where} ORDER BY {{id}} LIMIT 1000", {"status": status}
        )

    def enrolled(self, newsletter: str, today: str) -> Iterator[SubscriberRecord]:
        """The readers newsletter `newsletter` may be sent to on `today` (ISO date): confirmed, not paused
        past it, with a confirmed subscription to it, not suppressed (a forgotten reader has no row left).
        One joined query a page at a time, by id."""
        page = (
            f"SELECT {_S_COLUMNS} FROM subscribers s "
            "JOIN subscriptions n ON n.reader_key = s.key AND n.newsletter = :nl AND n.status = 'confirmed' "
            "WHERE s.{id} > :last AND s.status = 'confirmed' AND (s.paused_until IS NULL OR s.paused_until <= :today) "
            "AND NOT EXISTS (SELECT 1 FROM suppression p WHERE p.key = s.key) ORDER BY s.{id} LIMIT 1000"
        )
        yield from self._pages(page, {"nl": newsletter, "today": today})

    def _pages(self, page: str, params: dict[str, object]) -> Iterator[SubscriberRecord]:
        # A page at a time in insertion order, so a long list is never held in memory nor a read held open.
        last = 0
        while True:
            rows = self.db.query(page, {**params, "last": last})
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


_COLUMNS = "{id}, email, name, locale, status, created_at, confirmed_at, consent, timezone, paused_until, updated_at"
_S_COLUMNS = ", ".join(f"s.{column.strip()}" for column in _COLUMNS.split(","))


def store_location(root: Path, setting: object = None) -> Path:
    """`[subscribers] path` relative to the newsletter folder `root`, default `data/subscribers.sqlite`."""
    value = DEFAULT_PATH if setting is None else setting
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[subscribers] path must be a file path, got {value!r}")
    return (root / value).resolve()
