"""`newsletter db check`: every store of a newsletter, checked, and what was found, one line each.

SQLite files get SQLite's `integrity_check` (thorough: every page, every index entry) after the header
and length checks a store makes on open. PostgreSQL gets its schema version checked and every table read
through (a page that cannot be read is an error there, and so is a checksum failure where the cluster
has data checksums). The caller names the files, since which files a newsletter keeps is its
subsystems' business; a file that does not exist is reported, not created.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .adapter import redact_text
from .database import Postgres, head_version, redact
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


def check_stores(files: Iterable[tuple[str, Path]], database_url: str = "") -> list[Finding]:
    """Every store: the SQLite files given, and the PostgreSQL database when `database_url` is set."""
    found = check_files(files)
    if database_url:
        found += check_postgres(database_url)
    return found
