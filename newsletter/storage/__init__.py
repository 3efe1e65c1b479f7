"""Where records live, and the record-keeping the other subsystems share.

In:  a path (a SQLite file, a lock file), or a `postgresql://` URL from the settings.
Out: connections set up the same way everywhere (WAL, busy timeout), the one-process-at-a-time lock, the
     owner identity used to tell a run that crashed from one still going, and the PostgreSQL backend
     (connections, versioned migrations, advisory locks) that every record store switches to when
     `database_url` is set.

    records.py     SQLite connections, Meta, ProcessLock, owners
    database.py    Postgres: connect, upgrade (migrations/NNNN_*.sql), schema check, advisory lock keys
    migrate.py     copy an existing set of SQLite files into PostgreSQL, row for row
    backup.py      consistent backups of every SQLite file and the database (pg_dump), checked restores
    subscribers.py the subscriber store: one small interface (`SubscriberStore`), SQLite by default
    subscribers_pg.py  the same store in PostgreSQL, and `open_store`, which picks the backend

Each record store (delivery's ledger and suppression list, the schedule's runs) has a SQLite class and
a PostgreSQL class with the same methods; `open_*` factories in those subsystems pick by the settings.

Public face: the names in `__all__`.
"""

from __future__ import annotations

from .backup import BackupError, BackupReport, backup, restore, sqlite_files, verify
from .database import Postgres, head_version, lock_key, open_postgres, redact
from .migrate import Moved, migrate_from_sqlite
from .records import FileLock, Meta, ProcessLock, connect, owner_alive, this_owner
from .subscribers import (
    STATUSES,
    Consent,
    SqliteSubscriberStore,
    SubscriberRecord,
    SubscriberStore,
    clean_zone,
    now_iso,
    store_location,
)
from .subscribers_pg import PgSubscriberStore, open_store

__all__ = [
    "STATUSES",
    "BackupError",
    "BackupReport",
    "Consent",
    "FileLock",
    "Meta",
    "Moved",
    "PgSubscriberStore",
    "Postgres",
    "ProcessLock",
    "SqliteSubscriberStore",
    "SubscriberRecord",
    "SubscriberStore",
    "backup",
    "clean_zone",
    "connect",
    "head_version",
    "lock_key",
    "migrate_from_sqlite",
    "now_iso",
    "open_postgres",
    "open_store",
    "owner_alive",
    "redact",
    "restore",
    "sqlite_files",
    "store_location",
    "this_owner",
    "verify",
]
