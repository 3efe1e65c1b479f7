"""The suppression list: addresses that must never be mailed again (unsubscribed, bounced, complained).

One SQLite file shared by the send loop (which reads it for every subscriber) and the unsubscribe
handler of the preview server (which writes to it from request threads), so it runs in WAL mode with a
busy timeout: readers never block the writer and a one-click POST never fails because a send is running.
Addresses compare case-insensitively, like the duplicate check on subscriber lists.

Each entry keeps why it was made: the reason, where the decision came from, and — for decisions taken
on a bounce or a complaint — the server's diagnostic and the Message-ID of the report it came from, so
`newsletter unsubscribe --check` can answer a reader who asks why the newsletter stopped.

The list lives in the reader base (readerbase.py) beside the readers themselves: the state changes of
readers.py write a reader's status and the list's row in one transaction. A forgotten reader's row keeps
only `sha256:<hex>` of the address, which every lookup here also compares. With `database_url` set, the
same class keeps the list in PostgreSQL, shared by every sender of a fleet, the bounce reader and the web
app. A list that cannot be read stops the run: no message goes out unchecked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .adapter import Database, RecordStore
from .readerbase import hashed_key, open_reader_base_file

REASONS = ("unsubscribed", "bounced", "complained", "manual")
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
            self.db = open_reader_base_file(Path(source))
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
        via: str = "",
    ) -> bool:
        """Record `address`; True when it was not on the list yet (the first reason is kept). The list alone
        keeps no history, so `via` is for `ReaderBase.add`, which also changes the reader."""
        del via
        return self.db.upsert("suppression", entry_row(address, reason, source, diagnostic, message_id), ("key",)) == 1

    def add_many(self, addresses: list[str], reason: str = "unsubscribed", source: str = "") -> int:
        """Record several addresses in one transaction (the first reason of each is kept); how many were new.

        One-click unsubscribes arriving together (web/app/oneclick.py) are one write, not one each."""
        rows = [entry_row(address, reason, source) for address in addresses]
        added = 0
        with self.db.transaction():
            for row in rows:
                added += self.db.upsert("suppression", row, ("key",))
        return added

    def remove(self, address: str) -> bool:
        """Take `address` off the list (it confirmed a new subscription); True when it was on it."""
        return self.db.execute("DELETE FROM suppression WHERE key IN (?, ?)", (_key(address), hashed_key(address))) > 0

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str) or not address.strip():
            return False
        found = self.db.one("SELECT 1 FROM suppression WHERE key IN (?, ?)", (_key(address), hashed_key(address)))
        return found is not None

    def which(self, addresses: list[str]) -> set[str]:
        """Those of `addresses` on the list (as given, by address or by the hash a forgotten reader left):
        one query for a batch of the send loop."""
        keys = list({_key(a) for a in addresses} | {hashed_key(a) for a in addresses})
        found = {str(k) for (k,) in self.db.where_in("SELECT key FROM suppression WHERE key {in}", keys)}
        return {a for a in addresses if _key(a) in found or hashed_key(a) in found}

    def get(self, address: str) -> tuple[str, str, str] | None:
        """(reason, source, created_at) for a suppressed address, else None."""
        found = self.entry(address)
        return None if found is None else (found.reason, found.source, found.created_at)

    def entry(self, address: str) -> Entry | None:
        """The whole record of a suppressed address (with diagnostic and report Message-ID), else None."""
        row = self.db.one(
            "SELECT address, reason, source, created_at, diagnostic, message_id FROM suppression "
            "WHERE key IN (?, ?) ORDER BY key = ? DESC",
            (_key(address), hashed_key(address), _key(address)),
        )
        return None if row is None else Entry(*row)

    def count(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM suppression") or 0)

    def __iter__(self) -> Iterator[tuple[str, str, str, str]]:
        """(address, reason, source, created_at) rows, oldest first."""
        rows = self.db.query(
            "SELECT CASE WHEN address = '' THEN key ELSE address END, reason, source, created_at FROM suppression "
            "ORDER BY created_at, key"
        )
        return iter([(str(a), str(r), str(s), str(c)) for a, r, s, c in rows])


def entry_row(address: str, reason: str, source: str, diagnostic: str = "", message_id: str = "") -> dict[str, str]:
    """The row a new entry is: key, address, reason, source, time, and bounded diagnostic and report."""
    key, now = _new_entry(address, reason)
    return {
        "key": key,
        "address": address.strip(),
        "reason": reason,
        "source": source[:_MAX_FIELD],
        "created_at": now,
        "diagnostic": diagnostic[:_MAX_FIELD],
        "message_id": message_id[:_MAX_FIELD],
    }


def _new_entry(address: str, reason: str) -> tuple[str, str]:
    """The key and timestamp of an entry to add, both backends alike; ValueError for a bad reason or address."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
    key = _key(address)
    if not key:
        raise ValueError("empty address")
    return key, datetime.now(UTC).isoformat(timespec="seconds")
