"""The audit log: every action taken at the desk or by an operator on its behalf, with who and when.

`AuditLog.record(actor, action, target, detail)` appends one entry; nothing updates or deletes one.
Actions are short dotted names (`login`, `login.refused`, `plan.move`, `user.add`, `approval.grant`, …);
`target` names what was acted on (a user, `2026-12-08/en`); `detail` is free text or a small mapping,
kept as JSON. Entries are read newest first (`entries`) and exported oldest first as CSV or JSON lines
(`export_entries`, `newsletter desk audit --export`).

A password, a session id or a reader's address never goes into an entry: callers pass names and ids.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ..config import Settings
from ..storage import Database, RecordStore, open_sqlite
from .store import open_desk

SCHEMA = """
CREATE TABLE IF NOT EXISTS desk_audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,            -- ISO 8601, UTC
    actor      TEXT NOT NULL,            -- a desk user's name, or "cli:<user>" for a command
    action     TEXT NOT NULL,
    target     TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '',
    newsletter TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS desk_audit_at ON desk_audit (at);
"""

_COLUMNS = "id, at, actor, action, target, detail, newsletter"
FIELDS = ("id", "at", "actor", "action", "target", "detail", "newsletter")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: str
    newsletter: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _one_line(value: str, limit: int) -> str:
    """A value fit for a log line: no control characters (a newline would forge a second entry in a
    text export), at most `limit` characters."""
    return "".join(c if c.isprintable() else " " for c in value)[:limit]


class AuditLog(RecordStore):
    """The desk's audit log in `data/desk.sqlite` or PostgreSQL (`source`: a file or an open `Database`)."""

    def __init__(self, source: Path | Database) -> None:
        self.db = source if isinstance(source, Database) else open_sqlite("the audit log", source, schema=SCHEMA)

    def record(
        self,
        actor: str,
        action: str,
        target: str = "",
        detail: str | Mapping[str, Any] = "",
        *,
        newsletter: str = "",
        at: str = "",
    ) -> None:
        text = detail if isinstance(detail, str) else json.dumps(dict(detail), sort_keys=True, ensure_ascii=False)
        row = {
            "at": at or _now(),
            "actor": _one_line(actor, 200),
            "action": _one_line(action, 100),
            "target": _one_line(target, 300),
            "detail": _one_line(text, 4000),
            "newsletter": _one_line(newsletter, 100),
        }
        self.db.execute(
            "INSERT INTO desk_audit (at, actor, action, target, detail, newsletter) "
            "VALUES (:at, :actor, :action, :target, :detail, :newsletter)",
            row,
        )

    def entries(
        self, *, limit: int = 100, before: int | None = None, actor: str = "", action: str = ""
    ) -> list[AuditEntry]:
        """The newest entries first (those older than the entry id `before`, for paging), filtered by
        actor and by action (an exact name, or a prefix ending in a dot: `plan.`)."""
        where, params = ["1 = 1"], {"limit": limit, "before": before, "actor": actor, "action": action}
        if before is not None:
            where.append("id < :before")
        if actor:
            where.append("actor = :actor")
        if action:
            where.append("action LIKE :prefix" if action.endswith(".") else "action = :action")
            params["prefix"] = action.replace("%", "").replace("_", "") + "%"
        sql = f"SELECT {_COLUMNS} FROM desk_audit WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :limit"
        return [_entry(row) for row in self.db.query(sql, params)]

    def walk(self, since: str = "") -> Iterator[AuditEntry]:
        """Every entry (at or after the ISO time `since`), oldest first, a page at a time."""
        last = 0
        while True:
            rows = self.db.query(
                f"SELECT {_COLUMNS} FROM desk_audit WHERE id > :last AND at >= :since ORDER BY id LIMIT 1000",
                {"last": last, "since": since},
            )
            if not rows:
                return
            yield from (_entry(row) for row in rows)
            last = int(rows[-1][0])


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    rowid, at, actor, action, target, detail, newsletter = row
    return AuditEntry(int(rowid), str(at), str(actor), str(action), str(target), str(detail), str(newsletter))


def export_entries(entries: Iterable[AuditEntry], out: IO[str], fmt: str = "csv") -> int:
    """Write `entries` to `out` as CSV (a header row, then one row each) or JSON lines; how many."""
    n = 0
    if fmt == "jsonl":
        for entry in entries:
            out.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
            n += 1
        return n
    if fmt != "csv":
        raise ValueError(f"format must be csv or jsonl, got {fmt!r}")
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for entry in entries:
        # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
        writer.writerow(["'" + v if isinstance(v, str) and v[:1] in "=+-@" else v for v in asdict(entry).values()])
        n += 1
    return n


def open_audit(settings: Settings) -> AuditLog:
    """The audit log the settings name (SQLite `data/desk.sqlite`, or PostgreSQL with `database_url`)."""
    return AuditLog(open_desk(settings, "the audit log", SCHEMA))
