"""Every change of a reader's state, each in ONE transaction over the reader base: the reader's status,
their subscription, the history event and the suppression list's row are written together, so the store
and the list can never disagree.

    sign_up        a form's request: pending, with the form's name, locale and time zone
    confirm        double opt-in (void when the address left after the link was issued)
    unsubscribe    one-click, the page, mailto, the operator; from one newsletter or from everything
    suppress       a bounce, a complaint or an operator's entry (the suppression list's `add`)
    put            an operator's `subscribers add` or an import row: only the given fields change, and
                   an unsubscribed, bounced or complained reader is never turned back into a confirmed one
    resubscribe    the operator's explicit way back, with a consent note
    update, pause  the manage page's changes;  forget: personal data erased, a hashed suppression entry kept

`ReaderBase` also answers what the send loop asks of a suppression list (`add`, `which`, `in`, `entry`, …), so
every sender, bounce reader and web handler holds one object and goes through these changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import DEFAULT_NEWSLETTER
from .adapter import Database, RecordStore
from .history import ReaderEvents, SubscriptionStore
from .reader_fields import Fields, apply_fields
from .readerbase import (
    hashed_key,
    open_reader_base_pg,
)
from .subscribers import (
    Consent,
    SubscriberRecord,
    SubscriberStore,
    SubscriberTable,
    check_status,
    clean_zone,
    now_iso,
    store_location,
)
from .suppression import Entry, SuppressionList, entry_row

SUPPRESSED = ("unsubscribed", "bounced", "complained")
_STATUS_OF_REASON = {
    "unsubscribed": "unsubscribed",
    "manual": "unsubscribed",
    "bounced": "bounced",
    "complained": "complained",
}
_REASON_OF_STATUS = {"unsubscribed": "unsubscribed", "bounced": "bounced", "complained": "complained"}
_VIA_OF_REASON = {"bounced": "bounce", "complained": "complaint"}
_LEFT = ("unsubscribed", "bounced", "complained", "forgotten")


def _key(address: str) -> str:
    key = address.strip().lower()
    if not key:
        raise ValueError("empty address")
    return key


class ReaderBase(RecordStore):
    """The reader base: one store class per record kind on one `Database`, and the state changes."""

    def __init__(self, db: Database, newsletter: str = DEFAULT_NEWSLETTER) -> None:
        self.db = db
        self.newsletter = newsletter
        self.path = db.where
        self.subscribers = SqlSubscriberStore(db, newsletter, self)
        self.subscriptions = SubscriptionStore(db)
        self.events = ReaderEvents(db)
        self.suppression = SuppressionList(db)

    # --- sign-up and confirmation ---------------------------------------------------------------------

    def sign_up(self, address: str, *, name: str = "", locale: str = "", timezone: str = "") -> SubscriberRecord:
        """A form's request. A new address becomes pending (or, when the suppression list holds it, what
        the list says); one not confirmed takes the form's name, locale and time zone, kept for when it
        confirms; a confirmed reader is left as is (anyone may type an address into a form)."""
        key, zone = _key(address), clean_zone(timezone)

        def work(db: Database) -> SubscriberRecord:
            now = now_iso()
            # An address on the suppression list (a bounce from a list file, a forgotten reader) is recorded
            # as what the list says until the reader confirms: the store and the list never disagree.
            entry = self.suppression.entry(address)
            status = "pending" if entry is None else _STATUS_OF_REASON[entry.reason]
            db.execute(
                "INSERT INTO subscribers (key, email, name, locale, timezone, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE subscribers.name END, "
                "locale = CASE WHEN excluded.locale <> '' THEN excluded.locale ELSE subscribers.locale END, "
                "timezone = CASE WHEN excluded.timezone <> '' THEN excluded.timezone ELSE subscribers.timezone END, "
                "updated_at = excluded.updated_at WHERE subscribers.status <> 'confirmed'",
                (key, address.strip(), name, locale, zone, status, now, now),
            )
            if self.newsletter not in self.subscriptions.confirmed(key):
                self.subscriptions.set(key, self.newsletter, "pending")
            self.events.record(key, "signed_up", via="signup", newsletter=self.newsletter, detail=f"locale={locale}")
            return self._must_get(key)

        return self.db.atomic(work)

    def confirm(self, address: str, consent: Consent, *, issued: float | None = None) -> SubscriberRecord | None:
        """Double opt-in: confirmed now with `consent`, off the suppression list, the subscription
        confirmed. None (nothing changed) when the address unsubscribed, bounced, complained or was
        forgotten at or after `issued` (the link's issue time, Unix seconds): such a link is void."""
        key = _key(address)

        def work(db: Database) -> SubscriberRecord | None:
            if issued is not None and self._left_since(key, address, issued):
                return None
            before = self.subscribers.get(address)
            was_out = (before is not None and before.status in SUPPRESSED) or address in self.suppression
            now = now_iso()
            data = json.dumps(asdict(consent), sort_keys=True)
            db.execute(
                "INSERT INTO subscribers (key, email, status, created_at, updated_at) VALUES (?, ?, 'pending', ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key, address.strip(), now, now),
            )
            db.execute(
                "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?, consent = ?, updated_at = ? "
                "WHERE key = ?",
                (consent.at or now, data, now, key),
            )
            self.suppression.remove(address)  # a new, confirmed request outranks an old unsubscribe
            self.subscriptions.set(key, self.newsletter, "confirmed", consent=data)
            kind = "resubscribed" if was_out else "confirmed"
            self.events.record(key, kind, via="signup", newsletter=self.newsletter, detail=f"form={consent.form}")
            return self._must_get(key)

        return self.db.atomic(work)

    def _left_since(self, key: str, address: str, issued: float) -> bool:
        since = datetime.fromtimestamp(issued, UTC)
        for owner in (key, hashed_key(address)):
            last = self.events.last(owner, _LEFT)
            if last is not None and datetime.fromisoformat(last.at) >= since:
                return True
        return False

    # --- leaving -----------------------------------------------------------------------------------------

    def unsubscribe(
        self,
        addresses: list[str],
        *,
        via: str,
        newsletter: str | None = "",
        reason: str = "unsubscribed",
        source: str = "",
        diagnostic: str = "",
        message_id: str = "",
    ) -> int:
        """Every address of `addresses` leaves, in one transaction: from `newsletter` ("" is this base's
        newsletter; None is everything). A reader left with no confirmed subscription leaves everything:
        their status follows `reason`, and the address goes on the suppression list. Bounces and
        complaints always leave everything. How many addresses were new on the list."""
        target = self.newsletter if newsletter == "" else newsletter
        whole = target is None or reason != "unsubscribed"

        def work(db: Database) -> int:
            added = 0
            for address in addresses:
                added += self._leave(address, target, whole, reason, via, source, diagnostic, message_id)
            return added

        return self.db.atomic(work)

    def _leave(self, address: str, target: str | None, whole: bool, reason: str, via: str, *why: str) -> int:
        key = _key(address)
        source, diagnostic, message_id = why
        record = self.subscribers.get(address)
        if record is not None and not whole and target is not None:
            self.subscriptions.set(key, target, "unsubscribed")
            if self.subscriptions.confirmed(key):
                self.events.record(key, "unsubscribed", via=via, newsletter=target, detail=source)
                return 0
        added = self.db.upsert("suppression", entry_row(address, reason, source, diagnostic, message_id), ("key",))
        status = _STATUS_OF_REASON[reason]
        if record is not None:
            keep = record.status in ("bounced", "complained") and status == "unsubscribed"
            if not keep:
                self.db.execute(
                    "UPDATE subscribers SET status = ?, updated_at = ? WHERE key = ?", (status, now_iso(), key)
                )
            self.subscriptions.end_all(key)
        detail = "; ".join(part for part in (source, diagnostic, message_id and f"report {message_id}") if part)
        self.events.record(key, status, via=via, detail=detail)
        return added

    def suppress(
        self,
        address: str,
        reason: str = "unsubscribed",
        source: str = "",
        *,
        diagnostic: str = "",
        message_id: str = "",
        via: str = "",
    ) -> bool:
        """The suppression list's `add`, as a state change: the reader (when known) leaves everything
        with the status `reason` gives. True when the address was not on the list yet."""
        how = via or _VIA_OF_REASON.get(reason, "operator")
        found = self.unsubscribe(
            [address],
            via=how,
            newsletter=None,
            reason=reason,
            source=source,
            diagnostic=diagnostic,
            message_id=message_id,
        )
        return found == 1

    add = suppress  # what every caller of the suppression list calls

    def add_many(self, addresses: list[str], reason: str = "unsubscribed", source: str = "") -> int:
        """One-click unsubscribes arriving together: one transaction (see web/app/oneclick.py)."""
        return self.unsubscribe(addresses, via="one-click", reason=reason, source=source)

    # --- the operator's changes -----------------------------------------------------------------------------

    def put(self, address: str, fields: Fields, *, replace: bool = False, via: str = "operator") -> str:
        """An operator's `add` or one import row: "added", "updated", "unchanged", "kept" (a departed
        reader stays departed; the other given fields still change) or "refused" (a forgotten address)."""
        return self.db.atomic(lambda db: apply_fields(self, address, fields, replace, via))

    def resubscribe(self, address: str, note: str, *, via: str = "operator") -> SubscriberRecord:
        """The operator's explicit way back for a departed reader: confirmed again, off the list, with
        `note` (required: what new consent the reader gave) kept in the consent record and the history."""
        if not note.strip():
            raise ValueError("a re-subscription needs a consent note (what the reader agreed to, and when)")
        consent = Consent(at=now_iso(), form="operator", method=f"operator: {' '.join(note.split())[:200]}")
        key = _key(address)

        def work(db: Database) -> SubscriberRecord:
            now = now_iso()
            data = json.dumps(asdict(consent), sort_keys=True)
            db.execute(
                "INSERT INTO subscribers (key, email, status, created_at, updated_at) VALUES (?, ?, 'confirmed', ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key, address.strip(), now, now),
            )
            db.execute(
                "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?, consent = ?, updated_at = ? "
                "WHERE key = ?",
                (now, data, now, key),
            )
            self.suppression.remove(address)
            self.subscriptions.set(key, self.newsletter, "confirmed", consent=data)
            self.events.record(key, "resubscribed", via=via, newsletter=self.newsletter, detail=note)
            return self._must_get(key)

        return self.db.atomic(work)

    def update(
        self,
        address: str,
        *,
        name: str | None = None,
        locale: str | None = None,
        timezone: str | None = None,
        via: str = "manage",
    ) -> bool:
        """The given fields changed (a time zone that is not an IANA name is refused); False when unknown."""
        changes: dict[str, str] = {}
        if name is not None:
            changes["name"] = name
        if locale is not None:
            changes["locale"] = locale
        if timezone is not None:
            zone = clean_zone(timezone)
            if timezone.strip() and not zone:
                raise ValueError(f"{timezone!r} is not a time zone name (like Europe/Paris)")
            changes["timezone"] = zone
        key = _key(address)

        def work(db: Database) -> bool:
            if self.subscribers.get(address) is None:
                return False
            if changes:
                sets = ", ".join(f"{column} = :{column}" for column in changes)
                db.execute(
                    f"UPDATE subscribers SET {sets}, updated_at = :now WHERE key = :key",
                    {**changes, "now": now_iso(), "key": key},
                )
                said = ", ".join(f"{k}={v}" for k, v in changes.items() if k != "name")
                self.events.record(key, "updated", via=via, detail=said + (", name" if "name" in changes else ""))
            return True

        return self.db.atomic(work)

    def pause(self, address: str, days: int, *, via: str = "manage", today: date | None = None) -> str | None:
        """No newsletter before today + `days` (0 ends a pause); the day sending resumes, or None when unknown."""
        if not 0 <= days <= 366:
            raise ValueError("a pause is from 0 to 366 days")
        start = today or datetime.now(UTC).date()
        until = None if days == 0 else (start + timedelta(days=days)).isoformat()
        key = _key(address)

        def work(db: Database) -> str | None:
            if self.subscribers.get(address) is None:
                return None
            db.execute("UPDATE subscribers SET paused_until = ?, updated_at = ? WHERE key = ?", (until, now_iso(), key))
            self.events.record(key, "paused", via=via, detail=f"until {until}" if until else "resumed")
            return until or start.isoformat()

        return self.db.atomic(work)

    def forget(self, address: str) -> bool:
        """Erase everything kept about the reader; keep only `sha256:<hex>` on the suppression list, so the
        address is never mailed or imported again. False when nothing was known about it."""
        key, hashed = _key(address), hashed_key(address)

        def work(db: Database) -> bool:
            entry = self.suppression.entry(address)
            known = self.subscribers.get(address) is not None or entry is not None
            reason = entry.reason if entry is not None else "unsubscribed"
            db.execute("DELETE FROM subscribers WHERE key = ?", (key,))
            self.subscriptions.forget(key)
            self.events.forget(key)
            db.execute("DELETE FROM suppression WHERE key = ?", (key,))
            row = {**entry_row(address, reason, "forgotten"), "key": hashed, "address": ""}
            db.upsert("suppression", row, ("key",))
            self.events.record(hashed, "forgotten", via="operator")
            return known

        return self.db.atomic(work)

    def remove(self, address: str) -> bool:
        """The record, subscriptions and history deleted (a suppression entry stays); False when unknown."""
        key = _key(address)

        def work(db: Database) -> bool:
            gone = db.execute("DELETE FROM subscribers WHERE key = ?", (key,)) == 1
            self.subscriptions.forget(key)
            self.events.forget(key)
            return gone

        return self.db.atomic(work)

    # --- reading ------------------------------------------------------------------------------------------

    def get(self, address: str) -> SubscriberRecord | None:
        return self.subscribers.get(address)

    def forgotten(self, address: str) -> bool:
        """Was this address forgotten (a hashed entry and no record)?"""
        row = self.db.one("SELECT 1 FROM suppression WHERE key = ?", (hashed_key(address),))
        return row is not None

    def show(self, address: str) -> dict[str, Any]:
        """Everything kept about one reader: the record, subscriptions, history and suppression entry."""
        key = _key(address)
        record = self.subscribers.get(address)
        entry = self.suppression.entry(address)
        return {
            "address": address.strip(),
            "known": record is not None,
            "forgotten": record is None and self.forgotten(address),
            "record": None if record is None else _record_dict(record),
            "subscriptions": [asdict(s) for s in self.subscriptions.of(key)],
            "history": [asdict(e) for e in self.events.of(key)],
            "suppression": None if entry is None else asdict(entry),
        }

    def why(self, record: SubscriberRecord) -> str:
        """One line: why the reader is in their state (the last event that made it)."""
        last = self.events.last(_key(record.email), ("signed_up", "confirmed", *_LEFT, "resubscribed"))
        if last is None:
            return ""
        text = f"{last.kind.replace('_', ' ')} ({last.via}) {last.at[:19]}"
        return f"{text}: {last.detail}" if last.detail else text

    def enrolled(self, newsletter: str | None = None, today: str | None = None) -> Iterator[SubscriberRecord]:
        day = today or datetime.now(UTC).date().isoformat()
        return self.subscribers.enrolled(newsletter or self.newsletter, day)

    def _must_get(self, key: str) -> SubscriberRecord:
        record = self.subscribers.get(key)
        assert record is not None, key  # written inside this transaction
        return record

    # --- what the send loop and the bounce reader ask of a suppression list ---------------------------------

    def __contains__(self, address: object) -> bool:
        return address in self.suppression

    def which(self, addresses: list[str]) -> set[str]:
        return self.suppression.which(addresses)

    def entry(self, address: str) -> Entry | None:
        return self.suppression.entry(address)

    def count(self) -> int:
        return self.suppression.count()

    def __iter__(self) -> Iterator[tuple[str, str, str, str]]:
        return iter(self.suppression)


class SqlSubscriberStore(SubscriberTable):
    """`SubscriberStore` over the reader base: reads from the table, every change a state change of the
    reader base on the same connection (the record never changes without its subscription, history and
    suppression entry)."""

    def __init__(
        self, source: str | Path | Database, newsletter: str = DEFAULT_NEWSLETTER, base: ReaderBase | None = None
    ) -> None:
        super().__init__(source, newsletter)
        self.base = base

    def add(
        self, email: str, *, name: str = "", locale: str = "", status: str = "confirmed", timezone: str = ""
    ) -> bool:
        check_status(status)
        return self._readers().put(email, _fields(name, locale, timezone, status)) == "added"

    def request(self, email: str, *, name: str = "", locale: str = "") -> SubscriberRecord:
        return self._readers().sign_up(email, name=name, locale=locale)

    def confirm(self, email: str, consent: Consent) -> SubscriberRecord:
        found = self._readers().confirm(email, consent)
        assert found is not None  # only a link's issue time can make a confirmation void
        return found

    def set_status(self, email: str, status: str) -> bool:
        check_status(status)
        if self.get(email) is None:
            return False
        self._readers().put(email, _fields("", "", "", status))
        return True

    def remove(self, email: str) -> bool:
        return self._readers().remove(email)

    def _readers(self) -> ReaderBase:
        if self.base is None:
            self.base = ReaderBase(self.db, self.newsletter)
        return self.base


def _fields(name: str, locale: str, timezone: str, status: str) -> Fields:
    return Fields(name or None, locale or None, timezone or None, status)


def open_store(root: Path, setting: object = None, database_url: str = "", reconnect: float = 0.0) -> SubscriberStore:
    """The configured store: PostgreSQL when `database_url` is set, else the SQLite file `[subscribers]
    path` (created where no file exists)."""
    if database_url:
        return SqlSubscriberStore(open_reader_base_pg(database_url, reconnect=reconnect))
    return SqlSubscriberStore(store_location(root, setting))


def _record_dict(record: SubscriberRecord) -> dict[str, Any]:
    found = asdict(record)
    found.pop("id", None)
    return found
