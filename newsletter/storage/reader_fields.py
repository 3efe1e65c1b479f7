"""One operator `add` or import row applied to the reader base (inside `ReaderBase.put`'s transaction).

Only the fields given change (an import's empty cell is not given); `replace` sets the row to what is
given. A reader who unsubscribed, bounced or complained is never turned back into a pending or confirmed
one here (the outcome is "kept"); a forgotten address is refused. A given departed status is a departure
like any other: the suppression list gets its row in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .adapter import Database
from .history import ReaderEvents, SubscriptionStore
from .subscribers import STATUSES, SubscriberTable, clean_zone, now_iso
from .suppression import SuppressionList


@dataclass(frozen=True, slots=True)
class Fields:
    """What an `add` or an import row gives; None (or "" from an import's empty cell) leaves a value as it is."""

    name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    status: str | None = None


class ReaderBase(Protocol):
    """What of readers.py's `ReaderBase` an add uses (its stores, and leaving, inside its transaction)."""

    @property
    def db(self) -> Database: ...
    @property
    def newsletter(self) -> str: ...
    @property
    def subscribers(self) -> SubscriberTable: ...
    @property
    def subscriptions(self) -> SubscriptionStore: ...
    @property
    def events(self) -> ReaderEvents: ...
    @property
    def suppression(self) -> SuppressionList: ...

    def forgotten(self, address: str) -> bool: ...

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
    ) -> int: ...


_SUPPRESSED = ("unsubscribed", "bounced", "complained")
_REASON = {"unsubscribed": "unsubscribed", "bounced": "bounced", "complained": "complained"}


def _given(fields: Fields, replace: bool) -> dict[str, str]:
    values = {"name": fields.name, "locale": fields.locale, "timezone": fields.timezone}
    if replace:
        found = {k: (v or "").strip() for k, v in values.items()}
    else:
        found = {k: v.strip() for k, v in values.items() if v is not None and v.strip()}
    if "timezone" in found:
        found["timezone"] = clean_zone(found["timezone"])
    return found


def apply_fields(base: ReaderBase, address: str, fields: Fields, replace: bool, via: str) -> str:
    """ "added", "updated", "unchanged", "kept" or "refused" (see the module's docstring)."""
    status = (fields.status or "").strip() or None
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    key = address.strip().lower()
    record = base.subscribers.get(address)
    if record is None and base.forgotten(address):
        return "refused"
    values = _given(fields, replace)
    if record is None:
        return _insert(base, address, values, status, via)
    changed = {k: v for k, v in values.items() if getattr(record, k) != v}
    if changed:
        sets = ", ".join(f"{column} = :{column}" for column in changed)
        base.db.execute(
            f"UPDATE subscribers SET {sets}, updated_at = :now WHERE key = :key",
            {**changed, "now": now_iso(), "key": key},
        )
        said = ", ".join(f"{k}={v}" for k, v in changed.items() if k != "name") + (
            ", name" if "name" in changed else ""
        )
        base.events.record(key, "updated", via=via, detail=said.strip(", "))
    if record.status in _SUPPRESSED or address in base.suppression:
        if status in _SUPPRESSED and status != record.status:
            base.unsubscribe([address], via=via, newsletter=None, reason=_REASON[status], source=via)
            return "updated"
        return "kept" if status not in _SUPPRESSED else ("updated" if changed else "unchanged")
    if status in _SUPPRESSED:
        base.unsubscribe([address], via=via, newsletter=None, reason=_REASON[status], source=via)
        return "updated"
    if status == "confirmed" and (
        record.status != "confirmed" or base.newsletter not in base.subscriptions.confirmed(key)
    ):
        _set_status(base, key, "confirmed", via)
        return "updated"
    if status == "pending" and record.status != "pending":
        _set_status(base, key, "pending", via)
        return "updated"
    return "updated" if changed else "unchanged"


def _insert(base: ReaderBase, address: str, values: dict[str, str], status: str | None, via: str) -> str:
    key = address.strip().lower()
    entry = base.suppression.entry(address)
    wanted = status or "confirmed"
    if entry is not None:  # on the list already (a one-click from a list file): the record says so too
        wanted = {"bounced": "bounced", "complained": "complained"}.get(entry.reason, "unsubscribed")
    now = now_iso()
    base.db.execute(
        "INSERT INTO subscribers (key, email, name, locale, timezone, status, created_at, updated_at, confirmed_at) "
        "VALUES (:key, :email, :name, :locale, :timezone, :status, :now, :now, :confirmed)",
        {
            "key": key,
            "email": address.strip(),
            "name": values.get("name", ""),
            "locale": values.get("locale", ""),
            "timezone": values.get("timezone", ""),
            "status": "pending" if wanted in _SUPPRESSED else wanted,
            "now": now,
            "confirmed": now if wanted == "confirmed" else None,
        },
    )
    if wanted in _SUPPRESSED:
        if entry is None:
            base.unsubscribe([address], via=via, newsletter=None, reason=_REASON[wanted], source=via)
        else:
            base.db.execute("UPDATE subscribers SET status = ? WHERE key = ?", (wanted, key))
            base.events.record(key, wanted, via=via, detail=f"on the suppression list since {entry.created_at}")
        return "kept"
    base.subscriptions.set(key, base.newsletter, wanted)
    base.events.record(key, "confirmed" if wanted == "confirmed" else "signed_up", via=via, newsletter=base.newsletter)
    return "added"


def _set_status(base: ReaderBase, key: str, status: str, via: str) -> None:
    now = now_iso()
    base.db.execute(
        "UPDATE subscribers SET status = :status, updated_at = :now, confirmed_at = CASE WHEN :status = 'confirmed' "
        "THEN coalesce(confirmed_at, :now) ELSE confirmed_at END WHERE key = :key",
        {"status": status, "now": now, "key": key},
    )
    base.subscriptions.set(key, base.newsletter, status)
    base.events.record(key, "confirmed" if status == "confirmed" else "signed_up", via=via, newsletter=base.newsletter)
