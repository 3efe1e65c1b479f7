"""What a bounce or a complaint does to an address, and the memory that makes each report count once.

    Policy        hard bounce → suppress at once (reason `bounced`, with the diagnostic);
                  soft bounce → suppress after `soft_limit` within `soft_days` (default 3 in 15 days);
                  complaint   → suppress at once (reason `complained`)
                  unsubscribe → suppress at once (reason `unsubscribed`): a verified mailto request
    BounceState   the Message-IDs already handled, the soft bounces of each address with the
                  report they came from, and every bounce and complaint with the edition that caused
                  it (for the rates `status` shows): `data/bounces.sqlite`, or PostgreSQL with `database_url`
    Decider       applies the policy to one attributed event; dry-run computes without writing

Every suppression carries the Message-ID of the report (or the id of the webhook event), so
`newsletter unsubscribe --check ADDR` can say which message made the decision.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from ..config import Settings
from ..delivery import Suppression
from ..errors import ConfigError
from ..options import Options, Table
from ..storage import Database, RecordStore, open_pg, open_sqlite, reconnect_seconds

DEFAULT_STATE = "data/bounces.sqlite"
Event = Literal["hard", "soft", "complaint", "unsubscribe"]
Outcome = Literal["suppressed", "would suppress", "already suppressed", "counted"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    message_id   TEXT PRIMARY KEY,
    processed_at TEXT NOT NULL,
    kind         TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS soft (
    key        TEXT NOT NULL,   -- the address, lower-cased
    message_id TEXT NOT NULL,   -- one report counts once, however often it is read
    at         TEXT NOT NULL,
    diagnostic TEXT NOT NULL,
    PRIMARY KEY (key, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    message_id TEXT NOT NULL,   -- the report (or webhook event): one report counts once per reader
    reader     TEXT NOT NULL,   -- a hash of the address: the rates need no address
    kind       TEXT NOT NULL,   -- hard, soft, complaint
    edition    TEXT NOT NULL,   -- the day of the edition that caused it, '' when the report names none
    language   TEXT NOT NULL,   -- its language edition, '' when unknown
    at         TEXT NOT NULL,   -- when the report was read (UTC)
    PRIMARY KEY (message_id, reader)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_edition ON events (edition);
"""


@dataclass(frozen=True)
class EditionRef:
    """The edition a bounce or complaint came from: its day, its language ('' when the report does not
    say), and what said so ("return path", "Feedback-ID", "Message-ID")."""

    day: date
    language: str = ""
    how: str = ""


@dataclass(frozen=True)
class Policy:
    soft_limit: int = 3
    soft_days: float = 15.0

    @property
    def soft_window(self) -> timedelta:
        return timedelta(days=self.soft_days)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """`[bounces] soft_limit` and `soft_days`, read once per settings (`POLICY`)."""
        return settings.options(POLICY)


def parse_policy(table: Table) -> Policy:
    return Policy(table.whole("soft_limit", 3, 1, 1000), table.number("soft_days", 15, 0.01, 3650))


POLICY = Options("bounces", parse_policy)


def state_path(settings: Settings) -> Path:
    value = settings.section("bounces").get("state", DEFAULT_STATE)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[bounces] state must be a file path, got {value!r}")
    return (settings.root / value).resolve()


class BounceState(RecordStore):
    """The processed Message-IDs and the soft-bounce history; one connection, safe across threads.

    `source` is the SQLite file (created where none exists) or an open `Database` (`open_bounce_state`:
    PostgreSQL when `database_url` is set, so every bounce reader of a fleet counts a report once)."""

    def __init__(self, source: Path | Database) -> None:
        if isinstance(source, Database):
            self.db = source
        else:
            self.db = open_sqlite("the bounce records", Path(source), schema=_SCHEMA, names=_SQLITE_NAMES)
        self.path = self.db.where

    def seen(self, message_id: str) -> bool:
        return self.db.one("SELECT 1 FROM {processed} WHERE message_id = ?", (message_id,)) is not None

    def kind_of(self, message_id: str) -> str | None:
        """What the report with this Message-ID was when it was handled; None when it never was."""
        row = self.db.one("SELECT kind FROM {processed} WHERE message_id = ?", (message_id,))
        return None if row is None else str(row[0])

    def remember(self, message_id: str, kind: str, now: datetime) -> None:
        row = {"message_id": message_id, "processed_at": now.isoformat(timespec="seconds"), "kind": kind}
        # A report remembered as asking for nothing is remembered again for what a complete copy asked.
        self.db.upsert(self.db.names["processed"], row, ("message_id",), update=("processed_at", "kind"))

    def soft_count(self, address: str, since: datetime, extra: set[str] | None = None) -> int:
        """Soft bounces of `address` since `since`, plus the not-yet-recorded report ids in `extra`."""
        rows = self.db.query(
            "SELECT message_id FROM {soft} WHERE key = ? AND at >= ?",
            (address.lower(), since.isoformat(timespec="seconds")),
        )
        return len({r[0] for r in rows} | (extra or set()))

    def add_soft(self, address: str, message_id: str, now: datetime, diagnostic: str) -> None:
        row = {
            "key": address.lower(),
            "message_id": message_id,
            "at": now.isoformat(timespec="seconds"),
            "diagnostic": diagnostic[:1000],
        }
        self.db.upsert(self.db.names["soft"], row, ("key", "message_id"))

    def add_event(self, message_id: str, address: str, kind: Event, edition: EditionRef | None, now: datetime) -> None:
        """A bounce or complaint, with its edition (once per report and reader, however often read)."""
        row = {
            "message_id": message_id,
            "reader": hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()[:24],
            "kind": kind,
            "edition": edition.day.isoformat() if edition else "",
            "language": edition.language if edition else "",
            "at": now.astimezone(UTC).isoformat(timespec="seconds"),
        }
        self.db.upsert(self.db.names["events"], row, ("message_id", "reader"))

    def edition_counts(self, day: date, languages: tuple[str, ...] | None = None) -> dict[str, int]:
        """Events attributed to edition `day` by kind: of those language editions ('' for a report that
        named the day only), or of every language with None."""
        sql = "SELECT kind, count(*) FROM {events} WHERE edition = ?"
        params: tuple[str, ...] = (day.isoformat(),)
        if languages is not None:
            sql += f" AND language IN ({', '.join('?' * len(languages))})"
            params += languages
        return {str(k): int(n) for k, n in self.db.query(sql + " GROUP BY kind", params)}

    def unattributed_counts(self, start: datetime, end: datetime) -> dict[str, int]:
        """Events whose report named no edition, read in [start, end), by kind."""
        rows = self.db.query(
            "SELECT kind, count(*) FROM {events} WHERE edition = '' AND at >= ? AND at < ? GROUP BY kind",
            (start.astimezone(UTC).isoformat(timespec="seconds"), end.astimezone(UTC).isoformat(timespec="seconds")),
        )
        return {str(k): int(n) for k, n in rows}


_SQLITE_NAMES = {"processed": "processed", "soft": "soft", "events": "events"}
_PG_NAMES = {"processed": "bounce_processed", "soft": "bounce_soft", "events": "bounce_events"}


def open_bounce_state(settings: Settings) -> BounceState:
    """The bounce records the settings name: PostgreSQL when `database_url` is set, else `[bounces] state`."""
    if settings.database_url:
        url, wait = settings.database_url, reconnect_seconds(settings)
        return BounceState(open_pg("the bounce records", url, names=_PG_NAMES, reconnect=wait))
    return BounceState(state_path(settings))


@dataclass(frozen=True, slots=True)
class Decision:
    address: str
    event: Event
    outcome: Outcome
    diagnostic: str
    message_id: str
    detail: str = ""  # e.g. "2 of 3 soft bounces in 15 days"
    edition: EditionRef | None = None

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        if self.edition is not None:
            lang = f" ({self.edition.language})" if self.edition.language else ""
            extra += f" [edition {self.edition.day}{lang}, by its {self.edition.how}]"
        return f"{self.address}: {self.event} — {self.outcome}{extra}: {self.diagnostic or '(no diagnostic)'}"


class Decider:
    """Applies `policy` to attributed events; with `dry_run` nothing is written anywhere."""

    def __init__(
        self,
        policy: Policy,
        state: BounceState,
        suppression: Suppression,
        *,
        dry_run: bool = False,
        source: str = "bounce report",
    ) -> None:
        self.policy = policy
        self.state = state
        self.suppression = suppression
        self.dry_run = dry_run
        self.source = source
        self._pending_soft: dict[str, set[str]] = {}  # dry run: soft reports seen in this run, per address

    def decide(
        self,
        address: str,
        event: Event,
        diagnostic: str,
        message_id: str,
        now: datetime | None = None,
        edition: EditionRef | None = None,
    ) -> Decision:
        """What `event` does to `address`; a bounce or complaint is also kept with `edition` (None: the
        report named none, it counts by the day it arrived) for the rates, suppressed already or not."""
        now = now or datetime.now(UTC)
        if event != "unsubscribe" and not self.dry_run:
            self.state.add_event(message_id, address, event, edition, now)
        decision = self._decide(address, event, diagnostic, message_id, now)
        return replace(decision, edition=edition) if edition is not None else decision

    def _decide(self, address: str, event: Event, diagnostic: str, message_id: str, now: datetime) -> Decision:
        if address in self.suppression:
            return Decision(address, event, "already suppressed", diagnostic, message_id)
        detail = ""
        if event == "soft":
            key = address.lower()
            if self.dry_run:
                self._pending_soft.setdefault(key, set()).add(message_id)
            else:
                self.state.add_soft(address, message_id, now, diagnostic)
            count = self.state.soft_count(address, now - self.policy.soft_window, self._pending_soft.get(key))
            detail = f"{count} of {self.policy.soft_limit} soft bounces in {self.policy.soft_days:g} days"
            if count < self.policy.soft_limit:
                return Decision(address, event, "counted", diagnostic, message_id, detail)
        if self.dry_run:
            return Decision(address, event, "would suppress", diagnostic, message_id, detail)
        reason = {"complaint": "complained", "unsubscribe": "unsubscribed"}.get(event, "bounced")
        via = {"complaint": "complaint", "unsubscribe": "mailto"}.get(event, "bounce")
        # One state change: the reader's status, history and the suppression entry, in one transaction.
        self.suppression.add(address, reason, self.source, diagnostic=diagnostic, message_id=message_id, via=via)
        return Decision(address, event, "suppressed", diagnostic, message_id, detail)
