"""Approvals: an editor's "this exact edition may go out", kept per newsletter, edition date and language.

What is approved is a content hash (`edition_hash`) of what goes out: each story's id and the hash of its
file in reading order, the edition's plan when one exists, the subject and the preheader. Anything that
changes what readers get — a story edited, one added or left out, the order, the subject — gives another
hash, and an approval of the old one no longer counts: its state is `void` until someone approves again.

The records live in `data/desk.sqlite` beside the desk's other tables (each store adds its own tables to
that file, whoever created it), or in PostgreSQL (migration 0006) when `database_url` is set. Every
approval is kept, the newest one per edition and language deciding, so the desk can show who approved
what and when.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ..config import Settings
from ..storage import Database, RecordStore
from .store import open_desk

WAITING, APPROVED, VOID = "waiting", "approved", "void"

# The same table name on both backends (PostgreSQL: migration 0006_approval.sql), as the desk's others.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS desk_approvals (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    newsletter   TEXT NOT NULL,
    edition      TEXT NOT NULL,      -- YYYY-MM-DD
    language     TEXT NOT NULL,
    content_hash TEXT NOT NULL,      -- edition_hash() of what was approved
    approved_by  TEXT NOT NULL,
    approved_at  TEXT NOT NULL       -- ISO 8601, UTC
);
CREATE INDEX IF NOT EXISTS desk_approvals_edition ON desk_approvals (newsletter, edition, language);
"""
_MAX_NAME = 200


@dataclass(frozen=True)
class Approval:
    newsletter: str
    edition: date
    language: str
    content_hash: str
    by: str
    at: datetime


@dataclass(frozen=True)
class ApprovalState:
    """Where an edition (one language) stands: `waiting` (never approved), `approved` (this exact content),
    or `void` (approved, then changed). `approval` is the newest one, whichever state."""

    state: str
    approval: Approval | None = None

    @property
    def approved(self) -> bool:
        return self.state == APPROVED

    def describe(self) -> str:
        a = self.approval
        if a is None:
            return "waiting for approval"
        when = a.at.astimezone(UTC).isoformat(timespec="minutes").replace("+00:00", " UTC")
        if self.state == APPROVED:
            return f"approved by {a.by} at {when}"
        return f"approval by {a.by} at {when} void: the edition changed since"


def edition_hash(
    stories: Iterable[tuple[str, str]], *, subject: str, preheader: str = "", plan: Mapping[str, Any] | None = None
) -> str:
    """The hash of what goes out: (story id, content hash) in reading order, the plan, subject, preheader.

    The plan is included as given (sorted JSON) so an arrangement saved but not yet visible in the
    stories — a pin, say — still counts as a change to approve."""
    what = {
        "stories": [[str(i), str(h)] for i, h in stories],
        "plan": dict(plan) if plan else None,
        "subject": subject,
        "preheader": preheader,
    }
    text = json.dumps(what, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ApprovalStore(RecordStore):
    """`approve(...)`, `state(...)`, `history(...)` over `data/desk.sqlite` or PostgreSQL (`open_approvals`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        if not db.postgres:  # the file may have been made by another desk store, without this table
            with db.raw() as conn:
                conn.executescript(_SCHEMA)

    def approve(
        self, newsletter: str, edition: date, language: str, content_hash: str, by: str, *, at: datetime | None = None
    ) -> Approval:
        """Record that `by` approved exactly `content_hash`; the newest approval decides."""
        name = " ".join(by.split())[:_MAX_NAME]
        if not name:
            raise ValueError("an approval needs the name of who approves")
        when = (at or datetime.now(UTC)).astimezone(UTC)
        self.db.execute(
            "INSERT INTO desk_approvals (newsletter, edition, language, content_hash, approved_by, approved_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (newsletter, edition.isoformat(), language, content_hash, name, when.isoformat(timespec="seconds")),
        )
        return Approval(newsletter, edition, language, content_hash, name, when)

    def latest(self, newsletter: str, edition: date, language: str) -> Approval | None:
        found = self.history(newsletter, edition, language, limit=1)
        return found[0] if found else None

    def history(self, newsletter: str, edition: date, language: str, *, limit: int = 50) -> list[Approval]:
        """Approvals of this edition and language, newest first."""
        rows = self.db.query(
            "SELECT content_hash, approved_by, approved_at FROM desk_approvals "
            "WHERE newsletter = ? AND edition = ? AND language = ? ORDER BY id DESC LIMIT ?",
            (newsletter, edition.isoformat(), language, limit),
        )
        return [
            Approval(newsletter, edition, language, str(h), str(by), datetime.fromisoformat(str(at)))
            for h, by, at in rows
        ]

    def state(self, newsletter: str, edition: date, language: str, content_hash: str) -> ApprovalState:
        """`approved` when the newest approval is of `content_hash`, `void` when of another, else `waiting`."""
        newest = self.latest(newsletter, edition, language)
        if newest is None:
            return ApprovalState(WAITING)
        return ApprovalState(APPROVED if newest.content_hash == content_hash else VOID, newest)


def open_approvals(settings: Settings) -> ApprovalStore:
    """The approvals the settings name: PostgreSQL when `database_url` is set, else data/desk.sqlite."""
    return ApprovalStore(open_desk(settings, "the approvals", _SCHEMA))
