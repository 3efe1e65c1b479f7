"""Two record kinds of the reader base: a reader's subscriptions (one per newsletter) and their history.

Both are written only inside the state changes of readers.py, in the transaction that also changes the
reader and the suppression list; read on their own for `subscribers show` and the manage page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .adapter import Database, RecordStore
from .readerbase import EVENT_KINDS, SUBSCRIPTION_STATUSES

MAX_DETAIL = 500  # a diagnostic or a consent note is a line or two; a hostile report does not store megabytes


def event_time() -> str:
    """Now, to the microsecond: a confirmation link is compared with the unsubscribe that may follow it."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Subscription:
    newsletter: str
    status: str
    created_at: str
    updated_at: str
    confirmed_at: str | None


@dataclass(frozen=True, slots=True)
class ReaderEvent:
    at: str
    kind: str
    newsletter: str  # "" for every newsletter
    via: str
    detail: str


class SubscriptionStore(RecordStore):
    """A reader's subscriptions: `set(key, newsletter, status)`, `of(key)`, `end_all(key)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def set(self, key: str, newsletter: str, status: str, *, consent: str | None = None) -> None:
        if status not in SUBSCRIPTION_STATUSES:
            raise ValueError(f"subscription status must be one of {', '.join(SUBSCRIPTION_STATUSES)}, got {status!r}")
        now = event_time()
        confirmed = now if status == "confirmed" else None
        self.db.execute(
            "INSERT INTO subscriptions (reader_key, newsletter, status, created_at, updated_at, confirmed_at, consent) "
            "VALUES (:key, :nl, :status, :now, :now, :confirmed, :consent) ON CONFLICT (reader_key, newsletter) "
            "DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, "
            "confirmed_at = CASE WHEN excluded.status = 'confirmed' THEN excluded.confirmed_at "
            "ELSE subscriptions.confirmed_at END, consent = coalesce(excluded.consent, subscriptions.consent)",
            {"key": key, "nl": newsletter, "status": status, "now": now, "confirmed": confirmed, "consent": consent},
        )

    def end_all(self, key: str) -> None:
        """Every subscription of the reader unsubscribed (they left everything)."""
        self.db.execute(
            "UPDATE subscriptions SET status = 'unsubscribed', updated_at = ? WHERE reader_key = ? "
            "AND status <> 'unsubscribed'",
            (event_time(), key),
        )

    def confirmed(self, key: str) -> list[str]:
        rows = self.db.query(
            "SELECT newsletter FROM subscriptions WHERE reader_key = ? AND status = 'confirmed' ORDER BY newsletter",
            (key,),
        )
        return [str(r[0]) for r in rows]

    def of(self, key: str) -> list[Subscription]:
        rows = self.db.query(
            "SELECT newsletter, status, created_at, updated_at, confirmed_at FROM subscriptions "
            "WHERE reader_key = ? ORDER BY newsletter",
            (key,),
        )
        return [Subscription(str(n), str(s), str(c), str(u), None if f is None else str(f)) for n, s, c, u, f in rows]

    def forget(self, key: str) -> None:
        self.db.execute("DELETE FROM subscriptions WHERE reader_key = ?", (key,))


class ReaderEvents(RecordStore):
    """The history of readers: `record(key, kind, via=…)`, `of(key)`, `last(key, kinds)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, key: str, kind: str, *, via: str = "", newsletter: str = "", detail: str = "") -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind must be one of {', '.join(EVENT_KINDS)}, got {kind!r}")
        self.db.execute(
            "INSERT INTO reader_events (reader_key, at, kind, newsletter, via, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (key, event_time(), kind, newsletter, via, " ".join(detail.split())[:MAX_DETAIL]),
        )

    def of(self, key: str) -> list[ReaderEvent]:
        rows = self.db.query(
            "SELECT at, kind, newsletter, via, detail FROM reader_events WHERE reader_key = ? ORDER BY id", (key,)
        )
        return [ReaderEvent(*(str(v) for v in row)) for row in rows]

    def last(self, key: str, kinds: tuple[str, ...]) -> ReaderEvent | None:
        """The latest event of one of `kinds` for the reader, else None."""
        marks = ", ".join("?" for _ in kinds)
        row = self.db.one(
            f"SELECT at, kind, newsletter, via, detail FROM reader_events WHERE reader_key = ? AND kind IN ({marks}) "
            "ORDER BY id DESC LIMIT 1",
            (key, *kinds),
        )
        return None if row is None else ReaderEvent(*(str(v) for v in row))

    def forget(self, key: str) -> None:
        self.db.execute("DELETE FROM reader_events WHERE reader_key = ?", (key,))
