"""Where the desk's records live: `data/desk.sqlite` beside the other records files, or the PostgreSQL
database of `database_url` (tables of migration 0005_desk.sql, and those later migrations add).

Each store class (users, sessions, audit, plans, approvals) opens its own connection with its own
`CREATE TABLE IF NOT EXISTS` schema: on SQLite they share the file, on PostgreSQL the migrations made the
tables and the schema is not run.

Several stores of one process share `data/desk.sqlite`, so the file is checked (`open_sqlite`: header,
length, quick_check) only by the first one. Checking it again would open and close the file outside
SQLite, and closing any descriptor of a file drops every POSIX lock the process holds on it: another
process would then take this one's connections for gone, checkpoint and delete the WAL under them, and
their next writes would be lost.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ..config import Settings
from ..storage import Database, open_pg, open_sqlite, reconnect_seconds

DESK_FILE = "data/desk.sqlite"

_opened: set[Path] = set()  # desk files this process has checked and holds (or held) connections to
_opened_lock = threading.Lock()


def desk_path(settings: Settings) -> Path:
    """`data/desk.sqlite` under the newsletter folder."""
    return (settings.root / DESK_FILE).resolve()


def open_desk(settings: Settings, store: str, schema: str) -> Database:
    """A connection for the desk store `store` ("the audit log"): PostgreSQL when `database_url` is set,
    else `data/desk.sqlite`, created with `schema` where it is missing."""
    if settings.database_url:
        return open_pg(store, settings.database_url, reconnect=reconnect_seconds(settings))
    path = desk_path(settings)
    with _opened_lock:
        if path in _opened and path.exists():
            return _another(store, path, schema)
        database = open_sqlite(store, path, schema=schema)
        _opened.add(path)
        return database


def _another(store: str, path: Path, schema: str) -> Database:
    """One more connection to a desk file this process already checked (see the module docstring)."""

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    database = Database(store, str(path), connect, postgres=False)
    with database.raw() as db:
        db.executescript(schema)
    return database
