"""The suppression list: addresses that must never be mailed again (unsubscribed, bounced, complained).

One SQLite file shared by the send loop (which reads it for every subscriber) and the unsubscribe
handler of the preview server (which writes to it from request threads), so it runs in WAL mode with a
busy timeout: readers never block the writer and a one-click POST never fails because a send is running.
Addresses compare case-insensitively, like the duplicate check on subscriber lists.

Each entry keeps why it was made: the reason, where the decision came from, and — for decisions taken
on a bounce or a complaint — the server's diagnostic and the Message-ID of the report it came from, so
`newsletter unsubscribe --check` can answer a reader who asks why the newsletter stopped.

With `database_url` set, the same class keeps the list in PostgreSQL (`open_suppression` picks), shared
by every sender of a fleet, the bounce reader and the web app. A list that cannot be read stops the run:
no message goes out unchecked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config import Settings
from ..storage import Database, RecordStore, open_pg, open_sqlite, reconnect_seconds
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


def at_send_source(day: object, reply: str) -> str:
    """The source of an entry the send loop makes for a refusal at send time (already in the ledger)."""
    return f"edition {day}: {reply}"[:500]


def made_at_send(source: str) -> bool:
    """Whether an entry was the send loop's own (`at_send_source`), not a report that came back later:
    the ledger counts it already, so the rates must not count it twice."""
    return source.startswith("edition ")


def suppression_path(settings: Settings) -> Path:
    """`[mailing] suppression` (relative to the newsletter folder), default `data/suppression.sqlite`."""
    return settings.options(MAILING).suppression


def _key(address: str) -> str:
    return address.strip().lower()


class SuppressionList(RecordStore):
    """`add(address, reason, source)`, `address in suppression`, `count()`; safe to share between threads.

    `source` is a SQLite file (created, with its folder, where none exists; a damaged one is refused) or
    an open `Database` (PostgreSQL: `open_suppression`). One connection is kept, because the send loop
    asks about every subscriber and reconnecting each time would cost more than the lookup. Any error
    reading it is a `StorageError`: the list never fails open.
    """

    def __init__(self, source: str | Path | Database) -> None:
        if isinstance(source, Database):
            self.db = source
        else:
            self.db = open_sqlite("the suppression list", Path(source), schema=_SCHEMA)
            have = {str(row[1]) for row in self.db.query("PRAGMA table_info(suppression)")}
            for column in _ADDED_COLUMNS:
                if column not in have:
                    self.db.execute(f"ALTER TABLE suppression ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        self.path = self.db.where

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
        row = {
            "key": key,
            "address": address.strip(),
            "reason": reason,
            "source": source,
            "created_at": now,
            "diagnostic": diagnostic[:_MAX_FIELD],
            "message_id": message_id[:_MAX_FIELD],
        }
        return self.db.upsert("suppression", row, ("key",)) == 1

    def add_many(self, addresses: list[str], reason: str = "unsubscribed", source: str = "") -> int:
        """Record several addresses in one transaction (the first reason of each is kept); how many were new.

        One-click unsubscribes arriving together (web/app/oneclick.py) are one write, not one each."""
        rows = []
        for address in addresses:
            key, now = _new_entry(address, reason)
            rows.append({"key": key, "address": address.strip(), "reason": reason, "source": source, "created_at": now})
        added = 0
        with self.db.transaction():
            for row in rows:
                added += self.db.upsert("suppression", row, ("key",))
        return added

    def remove(self, address: str) -> bool:
        """Take `address` off the list (it confirmed a new subscription); True when it was on it."""
        return self.db.execute("DELETE FROM suppression WHERE key = ?", (_key(address),)) == 1

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        return self.db.one("SELECT 1 FROM suppression WHERE key = ?", (_key(address),)) is not None

    def which(self, addresses: list[str]) -> set[str]:
        """Those of `addresses` on the list (as given): one query for a batch of the send loop."""
        keys = list({_key(a) for a in addresses})
        found = {str(k) for (k,) in self.db.where_in("SELECT key FROM suppression WHERE key {in}", keys)}
        return {a for a in addresses if _key(a) in found}

    def get(self, address: str) -> tuple[str, str, str] | None:
        """(reason, source, created_at) for a suppressed address, else None."""
        row = self.db.one("SELECT reason, source, created_at FROM suppression WHERE key = ?", (_key(address),))
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def entry(self, address: str) -> Entry | None:
        """The whole record of a suppressed address (with diagnostic and report Message-ID), else None."""
        row = self.db.one(
            "SELECT address, reason, source, created_at, diagnostic, message_id FROM suppression WHERE key = ?",
            (_key(address),),
        )
        return None if row is None else Entry(*row)

    def count(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM suppression") or 0)

    def __iter__(self) -> Iterator[tuple[str, str, str, str]]:
        """(address, reason, source, created_at) rows, oldest first."""
        rows = self.db.query("SELECT address, reason, source, created_at FROM suppression ORDER BY created_at, key")
        return iter([(str(a), str(r), str(s), str(c)) for a, r, s, c in rows])


Suppression = SuppressionList


def open_suppression(settings: Settings) -> Suppression:
    """The suppression list the settings name: PostgreSQL when `database_url` is set, else the SQLite file."""
    if settings.database_url:
        return SuppressionList(
            open_pg("the suppression list", settings.database_url, reconnect=reconnect_seconds(settings))
        )
    return SuppressionList(suppression_path(settings))


def _new_entry(address: str, reason: str) -> tuple[str, str]:
    """The key and timestamp of an entry to add, both backends alike; ValueError for a bad reason or address."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
    key = _key(address)
    if not key:
        raise ValueError("empty address")
    return key, datetime.now(UTC).isoformat(timespec="seconds")
