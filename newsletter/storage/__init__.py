"""Where records live, and the record-keeping the other subsystems share.

In:  a path (a SQLite file, a lock file), or a `postgresql://` URL from the settings.
Out: `Database`, the one adapter every record store is written on (a SQLite file or PostgreSQL, the same
     calls); `StorageError` for whatever goes wrong in it; the check that refuses a damaged file; the
     one-process-at-a-time lock, the owner identity used to tell a run that crashed from one still going,
     and the PostgreSQL schema (versioned migrations, advisory lock keys).

    adapter.py     Database (execute/query/transaction/atomic/upsert), open_sqlite, open_pg, reconnecting
    integrity.py   is a records file whole? header, length, quick_check; `newsletter db check`
    checkup.py     every store of a newsletter, checked (SQLite files and the PostgreSQL database)
    records.py     ProcessLock, owners
    database.py    Postgres: upgrade (migrations/NNNN_*.sql), schema check, advisory lock keys
    migrate.py     copy an existing set of SQLite files into PostgreSQL, row for row
    backup.py      consistent backups of every SQLite file and the database (pg_dump), checked restores
    readerbase.py  the reader base: one database for readers, subscriptions, history and suppression
    subscribers.py the reader record: one small interface (`SubscriberStore`), one class, `open_store`
    history.py     a reader's subscriptions and history events
    suppression.py the suppression list (addresses never to be mailed again, and why)
    readers.py     every change of a reader's state, in one transaction (`ReaderBase`)
    reader_open.py the reader base the settings name (`open_readers`)
    reader_fields.py  an operator's add / an import row: only the given fields, nothing resurrected

Each record store (delivery's ledger and suppression list, the schedule's runs, the bounce records, the
subscribers) is one class on `Database`; an `open_*` factory in its subsystem opens the backend the
settings name. What only PostgreSQL does (claims with leases, advisory locks) is a small strategy inside
the store, not a second copy of it.

Public face: the names in `__all__`.
"""

from __future__ import annotations

from ..config import DEFAULT_NEWSLETTER, default_newsletter_id
from .adapter import DEFAULT_RECONNECT, Database, RecordStore, open_pg, open_sqlite, reconnect_seconds
from .backup import BackupError, BackupReport, backup, restore, sqlite_files, verify
from .checkup import Finding, check_stores
from .database import Postgres, head_version, lock_key, open_postgres, redact
from .history import ReaderEvent, ReaderEvents, Subscription, SubscriptionStore
from .integrity import LEDGER_WALK, check_file
from .migrate import Moved, migrate_from_sqlite
from .reader_fields import Fields
from .reader_open import open_readers, reader_base_path, upgrade_reader_base_file
from .readerbase import READER_STATUSES, hashed_key
from .readers import ReaderBase, SqlSubscriberStore, open_store
from .records import ProcessLock, owner_alive, this_owner
from .subscribers import (
    STATUSES,
    Consent,
    SubscriberRecord,
    SubscriberStore,
    clean_zone,
    now_iso,
    store_location,
)
from .suppression import REASONS, Entry, SuppressionList

__all__ = [
    "DEFAULT_NEWSLETTER",
    "DEFAULT_RECONNECT",
    "LEDGER_WALK",
    "READER_STATUSES",
    "REASONS",
    "STATUSES",
    "BackupError",
    "BackupReport",
    "Consent",
    "Database",
    "Entry",
    "Fields",
    "Finding",
    "Moved",
    "Postgres",
    "ProcessLock",
    "ReaderBase",
    "ReaderEvent",
    "ReaderEvents",
    "RecordStore",
    "SqlSubscriberStore",
    "SubscriberRecord",
    "SubscriberStore",
    "Subscription",
    "SubscriptionStore",
    "SuppressionList",
    "backup",
    "check_file",
    "check_stores",
    "clean_zone",
    "default_newsletter_id",
    "hashed_key",
    "head_version",
    "lock_key",
    "migrate_from_sqlite",
    "now_iso",
    "open_pg",
    "open_postgres",
    "open_readers",
    "open_sqlite",
    "open_store",
    "owner_alive",
    "reader_base_path",
    "reconnect_seconds",
    "redact",
    "restore",
    "sqlite_files",
    "store_location",
    "this_owner",
    "upgrade_reader_base_file",
    "verify",
]
