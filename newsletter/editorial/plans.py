"""The edition's plan: what editors changed about one newsletter's edition in one language.

A plan holds the story order (story ids, reading order), a pinned lead, the stories left out, and the
subject and preheader typed at the desk, with who changed it last and when. It is kept in the desk's
store, keyed by (newsletter, edition date, language), never in the story files: the files stay the
writers', and `build`, the scheduler and the preview apply the same plan (`apply_plan`).

`known` is every story id the plan was made over. A story that is not in it arrived later: it keeps its
place from the ranking among the planned ones and the desk marks it as new.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..config import Settings
from ..storage import Database, RecordStore, open_sqlite
from .store import desk_path, open_desk

SCHEMA = """
CREATE TABLE IF NOT EXISTS desk_plans (
    newsletter TEXT NOT NULL,
    edition    TEXT NOT NULL,            -- the edition's date, YYYY-MM-DD
    language   TEXT NOT NULL,
    plan       TEXT NOT NULL,            -- JSON: order, lead, dropped, subject, preheader, known
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (newsletter, edition, language)
);
"""

MAX_SUBJECT = 200
MAX_PREHEADER = 300


class HasId(Protocol):
    @property
    def id(self) -> str: ...


S = TypeVar("S", bound=HasId)


@dataclass(frozen=True)
class Plan:
    """An edition's plan. Empty fields change nothing: an empty plan leaves the edition as ranked."""

    order: tuple[str, ...] = ()
    lead: str = ""  # a pinned lead's story id
    dropped: tuple[str, ...] = ()
    subject: str = ""
    preheader: str = ""
    known: tuple[str, ...] = ()
    updated_by: str = ""
    updated_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def empty(self) -> bool:
        return not (self.order or self.lead or self.dropped or self.subject or self.preheader)

    def to_json(self) -> str:
        data = {
            "order": list(self.order),
            "lead": self.lead,
            "dropped": list(self.dropped),
            "subject": self.subject,
            "preheader": self.preheader,
            "known": list(self.known),
        }
        return json.dumps({**self.extra, **data}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, updated_by: str = "", updated_at: str = "") -> Plan:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a plan is a JSON object")

        def ids(key: str) -> tuple[str, ...]:
            found = data.get(key, [])
            return tuple(v for v in found if isinstance(v, str)) if isinstance(found, list) else ()

        own = {"order", "lead", "dropped", "subject", "preheader", "known"}
        return cls(
            order=ids("order"),
            lead=str(data.get("lead", "")),
            dropped=ids("dropped"),
            subject=str(data.get("subject", ""))[:MAX_SUBJECT],
            preheader=str(data.get("preheader", ""))[:MAX_PREHEADER],
            known=ids("known"),
            updated_by=updated_by,
            updated_at=updated_at,
            extra={k: v for k, v in data.items() if k not in own},
        )

    def new_stories(self, ids: Sequence[str]) -> list[str]:
        """Those of `ids` the plan was not made over (arrived after it); none for an empty plan."""
        if self.empty:
            return []
        known = set(self.known) | set(self.order)
        return [i for i in ids if i not in known]


def apply_plan(stories: Sequence[S], plan: Plan | None) -> list[S]:
    """`stories` (ranked, lead first) in the plan's order: left-out stories removed, the pinned lead
    first, planned stories in the planned order, a story the plan does not know after its ranked neighbour.

    Never empties an edition: when every story is left out, the ranking stands.
    """
    if plan is None or plan.empty:
        return list(stories)
    dropped = set(plan.dropped)
    kept = [s for s in stories if s.id not in dropped] or list(stories)
    position = {sid: n for n, sid in enumerate(plan.order)}
    planned = sorted((s for s in kept if s.id in position), key=lambda s: position[s.id])
    result = list(planned)
    # A story the plan does not order goes right after the story ranked just above it (first when the
    # ranking puts it first): where the ranking would have put it, next to its neighbour.
    for rank, story in enumerate(kept):
        if story.id in position:
            continue
        above = kept[rank - 1].id if rank else ""
        at = next((i + 1 for i, s in enumerate(result) if s.id == above), 0)
        result.insert(at, story)
    if plan.lead:
        lead = next((s for s in result if s.id == plan.lead), None)
        if lead is not None:
            result.remove(lead)
            result.insert(0, lead)
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PlanStore(RecordStore):
    """Plans per (newsletter, edition date, language) in `data/desk.sqlite` or PostgreSQL."""

    def __init__(self, source: Path | Database) -> None:
        self.db = source if isinstance(source, Database) else open_sqlite("the edition plans", source, schema=SCHEMA)

    def get(self, newsletter: str, edition: date, language: str) -> Plan | None:
        row = self.db.one(
            "SELECT plan, updated_by, updated_at FROM desk_plans WHERE newsletter = ? AND edition = ? AND language = ?",
            (newsletter, edition.isoformat(), language),
        )
        if row is None:
            return None
        try:
            return Plan.from_json(str(row[0]), str(row[1]), str(row[2]))
        except ValueError as exc:
            raise self.db.error(f"the plan of {edition.isoformat()}/{language} is unreadable ({exc})") from None

    def put(self, newsletter: str, edition: date, language: str, plan: Plan, by: str) -> Plan:
        """Store `plan` as the edition's plan, changed by `by` now; the plan as stored."""
        stored = replace(plan, updated_by=by, updated_at=_now())
        row = {
            "newsletter": newsletter,
            "edition": edition.isoformat(),
            "language": language,
            "plan": stored.to_json(),
            "updated_by": by,
            "updated_at": stored.updated_at,
        }
        self.db.upsert("desk_plans", row, ("newsletter", "edition", "language"), ("plan", "updated_by", "updated_at"))
        return stored

    def clear(self, newsletter: str, edition: date, language: str) -> bool:
        sql = "DELETE FROM desk_plans WHERE newsletter = ? AND edition = ? AND language = ?"
        return self.db.execute(sql, (newsletter, edition.isoformat(), language)) > 0


def open_plans(settings: Settings) -> PlanStore:
    """The plans the settings name (SQLite `data/desk.sqlite`, or PostgreSQL with `database_url`)."""
    return PlanStore(open_desk(settings, "the edition plans", SCHEMA))


def plan_for(settings: Settings, edition: date, newsletter: str = "", language: str = "") -> Plan | None:
    """The plan of an edition as `build`, the scheduler and the preview read it: None when no desk was
    ever used here (no `data/desk.sqlite`, no `database_url`), so building never creates the file."""
    if not settings.database_url and not desk_path(settings).exists():
        return None
    with open_plans(settings) as store:
        return store.get(newsletter or settings.list.id, edition, language or settings.language)
