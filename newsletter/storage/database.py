"""Which backend keeps the records, and the PostgreSQL one: connections, versioned migrations, locks.

SQLite is the default: one file per kind of record under `data/`, no server, nothing to configure. With
`database_url = "postgresql://…"` (or `NEWSLETTER_DATABASE_URL`) the suppression list, every edition's
ledger and the scheduler's runs live in one PostgreSQL database instead, so senders on several machines
can share one mailing. The schema is versioned SQL (`migrations/NNNN_name.sql`), applied in order by
`newsletter db upgrade` and recorded in `schema_migrations`; a store refuses to work on a database that
is behind the code, with one line saying what to run.

The password never sits in the URL (the settings refuse one): libpq reads PGPASSWORD or ~/.pgpass.
"""

from __future__ import annotations

import re
import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import psycopg

MIGRATIONS = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def redact(url: str) -> str:
    """The URL without user information, fit for messages and logs."""
    return re.sub(r"^(postgres(?:ql)?://)[^/@]*@", r"\1", url)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped with the code, in order."""
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path.stem, path.read_text(encoding="utf-8")))
    return found


def head_version() -> int:
    return max((v for v, _, _ in migrations()), default=0)


class Postgres:
    """A PostgreSQL database of newsletter records. Each caller opens its own connection (`connect`)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def describe(self) -> str:
        return f"PostgreSQL {redact(self.url)}"

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A new connection; a server that cannot be reached is one clear `ConfigError` line."""
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=autocommit, connect_timeout=10)
        except psycopg.Error as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"database_url: cannot connect to {redact(self.url)} ({detail})") from None

    def version(self) -> int:
        """The schema version the database is at (0: never upgraded)."""
        with self.connect() as db:
            exists = db.execute("SELECT to_regclass('schema_migrations')").fetchone()
            if exists is None or exists[0] is None:
                return 0
            row = db.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def upgrade(self) -> list[str]:
        """Apply the migrations the database has not got yet, each in its own transaction; their names.

        An advisory lock serializes two upgrades started at once (a fleet's units all starting together).
        """
        applied: list[str] = []
        with self.connect() as db:
            db.execute("SELECT pg_advisory_lock(%s)", (lock_key("schema"),))
            try:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                    "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                done = {int(r[0]) for r in db.execute("SELECT version FROM schema_migrations").fetchall()}
                for version, name, sql in migrations():
                    if version in done:
                        continue
                    with db.transaction():
                        db.execute(sql.encode())
                        db.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                    applied.append(name)
            finally:
                db.execute("SELECT pg_advisory_unlock(%s)", (lock_key("schema"),))
        return applied

    def require_current(self) -> None:
        """`ConfigError` unless the schema is at the version this code expects."""
        have, want = self.version(), head_version()
        if have < want:
            raise ConfigError(
                f"database {redact(self.url)} is at schema version {have}, this newsletter needs {want}: "
                "run `newsletter db upgrade`"
            )
        if have > want:
            raise ConfigError(
                f"database {redact(self.url)} is at schema version {have}, newer than this newsletter ({want}): "
                "upgrade the newsletter package"
            )


_checked: set[str] = set()
_checked_lock = threading.Lock()


def open_postgres(url: str) -> Postgres:
    """The database at `url`, its schema checked once per process."""
    pg = Postgres(url)
    with _checked_lock:
        if url not in _checked:
            pg.require_current()
            _checked.add(url)
    return pg


def lock_key(name: str) -> int:
    """A stable 31-bit advisory lock key for `name` (pg_advisory_lock takes a bigint)."""
    return zlib.crc32(f"newsletter:{name}".encode()) & 0x7FFFFFFF
