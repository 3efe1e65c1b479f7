"""`newsletter db check`: every store of a newsletter, checked, and what was found, one line each.

SQLite files get SQLite's `integrity_check` (thorough: every page, every index entry) after the header
and length checks a store makes on open. PostgreSQL gets its schema version checked, then its indexes and
constraints against those the migrations make (a dropped unique index lets duplicates in and a dropped
partial index turns a claim into a table scan, with nothing else to show for it), then every table read
through (a page that cannot be read is an error there, and so is a checksum failure where the cluster
has data checksums).

What the migrations make is found by making it: every migration run in this session's temporary schema,
in a transaction rolled back at the end, and the catalogue read there. So the expectation is exactly the
shipped SQL's, whichever migrations there are, and nothing of it stays in the database.

The caller names the files, since which files a newsletter keeps is its
subsystems' business; a file that does not exist is reported, not created.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .adapter import redact_text
from .database import Postgres, head_version, migrations, redact
from .integrity import ADVICE, problem

PG_TABLES = (
    "suppression",
    "subscribers",
    "ledger_runs",
    "ledger_recipients",
    "ledger_meta",
    "schedule_runs",
    "schedule_meta",
    "bounce_processed",
    "bounce_soft",
    "bounce_events",
    "subscriptions",
    "reader_events",
    "reader_meta",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One store: where it is, whether it is sound, and the line saying so."""

    where: str
    ok: bool
    line: str


def check_files(files: Iterable[tuple[str, Path]]) -> list[Finding]:
    """(store, file) pairs, each checked in full; a missing file is fine (it is made when first needed)."""
    found: list[Finding] = []
    for store, path in files:
        if not path.exists():
            found.append(Finding(str(path), True, f"{path}: {store}: not created yet"))
            continue
        trouble = problem(path, thorough=True)
        if trouble is None:
            found.append(Finding(str(path), True, f"{path}: {store}: ok ({path.stat().st_size} bytes)"))
        else:
            found.append(Finding(str(path), False, f"{path}: {store} is damaged ({trouble}); {ADVICE}"))
    return found


def check_postgres(url: str) -> list[Finding]:
    """The database's schema version, then every table read through."""
    where = redact(url)
    pg = Postgres(url)
    try:
        have = pg.version()
    except ConfigError as exc:
        return [Finding(where, False, str(exc))]
    if have != head_version():
        return [Finding(where, False, f"{where}: schema version {have}, this newsletter needs {head_version()}")]
    found = [Finding(where, True, f"{where}: schema version {have}: ok")]
    with contextlib.closing(pg.connect()) as db:
        found += check_schema(db, where)
        for table in PG_TABLES:
            try:
                n = db.execute(f"SELECT count(*) FROM {table}").fetchone()
            except Exception as exc:  # psycopg's errors: the table cannot be read through
                detail = redact_text(" ".join(str(exc).split()))
                found.append(Finding(f"{where} {table}", False, f"{where}: table {table} cannot be read ({detail})"))
                continue
            rows = int(n[0]) if n else 0
            found.append(Finding(f"{where} {table}", True, f"{where}: table {table}: ok ({rows} rows)"))
    return found


# An index's or constraint's definition without the schema it lives in: `ON public.t` and `ON pg_temp.t`
# are the same index.
_SCHEMA_PREFIX = re.compile(r"\b(ON|REFERENCES) \w+\.")
_INDEXES = (
    "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = {schema} "
    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.contype IN ('p', 'u', 'x'))"
)
_CONSTRAINTS = (
    "SELECT c.conname, c.conrelid::regclass::text, pg_get_constraintdef(c.oid) FROM pg_constraint c "
    "JOIN pg_namespace n ON n.oid = c.connamespace "
    "WHERE n.nspname = {schema} AND c.contype IN ('p', 'u', 'c', 'f', 'x')"
)
_TEMP = "(SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema())"


def _catalogue(db: Any, schema: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """{index: definition} (those no constraint stands for) and {constraint: (table, definition)}."""
    indexes = {name: _SCHEMA_PREFIX.sub(r"\1 ", d) for name, d in db.execute(_INDEXES.format(schema=schema))}
    constraints = {
        name: (table.rsplit(".", 1)[-1], _SCHEMA_PREFIX.sub(r"\1 ", d))
        for name, table, d in db.execute(_CONSTRAINTS.format(schema=schema))
    }
    return indexes, constraints


def check_schema(db: Any, where: str) -> list[Finding]:
    """The indexes and constraints the migrations make, each looked for in the database (the schema of
    its search path); one line for each that is missing or differs, or one line saying all are there."""
    try:
        with db.transaction(force_rollback=True):
            db.execute("SET LOCAL search_path TO pg_temp")
            for _version, _name, sql in migrations():
                db.execute(sql.encode())
            want_indexes, want_constraints = _catalogue(db, _TEMP)
    except Exception as exc:  # psycopg's errors: the expectation could not be made here
        detail = redact_text(" ".join(str(exc).split()))
        return [Finding(f"{where} schema", False, f"{where}: cannot work out the expected indexes ({detail})")]
    have_indexes, have_constraints = _catalogue(db, "current_schema()")
    found: list[Finding] = []
    for name, (table, definition) in sorted(want_constraints.items()):
        if name not in have_constraints:
            line = f"{where}: constraint {name} of table {table} is missing (expected: {definition})"
        elif have_constraints[name] != (table, definition):
            line = f"{where}: constraint {name} differs (expected: {definition}; found: {have_constraints[name][1]})"
        else:
            continue
        found.append(Finding(f"{where} {name}", False, line))
    for name, definition in sorted(want_indexes.items()):
        if name not in have_indexes:
            line = f"{where}: index {name} is missing (expected: {definition})"
        elif have_indexes[name] != definition:
            line = f"{where}: index {name} differs (expected: {definition}; found: {have_indexes[name]})"
        else:
            continue
        found.append(Finding(f"{where} {name}", False, line))
    n, m = len(want_indexes), len(want_constraints)
    return found or [Finding(f"{where} schema", True, f"{where}: {n} indexes and {m} constraints: ok")]


def check_stores(files: Iterable[tuple[str, Path]], database_url: str = "") -> list[Finding]:
    """Every store: the SQLite files given, and the PostgreSQL database when `database_url` is set."""
    found = check_files(files)
    if database_url:
        found += check_postgres(database_url)
    return found
