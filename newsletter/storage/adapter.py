"""One adapter under every record store: a SQLite file or a PostgreSQL database behind the same calls.

    Database     execute / query / one / many / transaction / atomic / upsert, thread-safe
    open_sqlite  a records file, checked before it is trusted (`integrity.check_file`), created only where
                 no file exists
    open_pg      a connection to `database_url`, that waits for a server coming back (`reconnect`)

Stores write their SQL once, with `?` or `:name` placeholders; PostgreSQL gets `%s` / `%(name)s`. Both
backends speak `INSERT … ON CONFLICT … DO UPDATE/NOTHING` and `RETURNING`, so what differs is small: the
placeholder style, the name of a store's tables (`names`) and the locking a store picks for each backend.

Every sqlite3 or psycopg error leaves this module as one `StorageError` naming the store and its file or
URL (without user information), the way httpx maps its transport's errors at one boundary.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from ..config import Settings
from ..errors import ConfigError, StorageError
from .database import redact
from .integrity import check_file

T = TypeVar("T")
Params = Sequence[Any] | Mapping[str, Any]

DEFAULT_RECONNECT = 180.0  # seconds a sender or scheduler waits for its database to come back
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """`?` → `%s`, `:name` → `%(name)s` (a `::type` cast is left alone), a literal `%` doubled."""
    sql = sql.replace("%", "%%").replace("?", "%s")
    return _NAMED.sub(r"%(\1)s", sql)


def _detail(exc: BaseException) -> str:
    """The error's first line (psycopg adds the statement and a caret below it), spaces folded."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[0].split()) if lines else type(exc).__name__


class Database:
    """One connection to one store, guarded by a lock (the stores are shared by a process's threads).

    `store` names the records ("the suppression list") and `where` their file or redacted URL: both lead
    every error message. `names` maps a store's logical table names to this backend's (`{runs}` in SQL).
    """

    def __init__(
        self,
        store: str,
        where: str,
        connect: Callable[[], Any],
        *,
        postgres: bool,
        names: Mapping[str, str] | None = None,
        reconnect: float = 0.0,
    ) -> None:
        self.store = store
        self.where = where
        self.postgres = postgres
        self.names = dict(names or {})
        self.reconnect = reconnect
        self.connector = connect  # opens another connection to the same store (a lock holder, a writer)
        self._conn: Any = None
        self._lock = threading.RLock()
        self._depth = 0  # open transactions on this connection (a lost one cannot be replayed statement-wise)
        if postgres and reconnect > 0:  # a sender's second connection, opened while the server restarts
            self._with_reconnect(self._live)
        else:
            with self._mapped():
                self._conn = connect()

    # --- errors ----------------------------------------------------------------------------------------

    def error(self, detail: str) -> StorageError:
        return StorageError(f"{self.where}: {self.store}: {detail}")

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            raise self.error(_detail(exc)) from None
        except Exception as exc:
            if not _is_psycopg(exc):
                raise
            error = self.error(redact_text(_detail(exc)))
            # A deadlock or a serialization failure: the server rolled the transaction back; run it again.
            error.transient = getattr(exc, "sqlstate", None) in ("40P01", "40001")
            raise error from None

    # --- statements --------------------------------------------------------------------------------------

    def sql(self, text: str) -> str:
        """The statement for this backend: table names filled in, placeholders converted."""
        if self.names:
            text = text.format_map(self.names)
        return pg_sql(text) if self.postgres else text

    def _run(self, work: Callable[[Any], T]) -> T:
        """`work(connection)` under the lock; on PostgreSQL, retried on a new connection while the server
        is away (up to `reconnect` seconds), unless a transaction was open (see `atomic`)."""
        with self._lock:
            if not self.postgres or self._depth:
                with self._mapped():
                    return work(self._conn)
            return self._with_reconnect(lambda: work(self._live()))

    def _live(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self.connector()
        return self._conn

    def _with_reconnect(self, attempt: Callable[[], T]) -> T:
        import psycopg

        deadline: float | None = None
        wait = 0.2
        while True:
            try:
                return attempt()
            except psycopg.OperationalError as exc:
                if not self._lost():
                    raise self.error(redact_text(_detail(exc))) from None
                deadline = deadline or time.monotonic() + self.reconnect
                if time.monotonic() >= deadline:
                    raise self.error(
                        f"the database went away and did not come back within {self.reconnect:g} s "
                        f"({redact_text(_detail(exc))})"
                    ) from None
                self._drop()
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                wait = min(wait * 2, 5.0)
            except psycopg.Error as exc:
                raise self.error(redact_text(_detail(exc))) from None

    def _lost(self) -> bool:
        """Is this the connection going away (a restart, a network cut), not a statement's fault?"""
        conn = self._conn
        return self.reconnect > 0 and (conn is None or bool(conn.closed) or bool(getattr(conn, "broken", False)))

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        text = self.sql(sql)
        return self._run(lambda db: int(db.execute(text, params).rowcount))

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        text = self.sql(sql)

        def work(db: Any) -> list[tuple[Any, ...]]:
            cur = db.execute(text, params)
            return list(cur.fetchall()) if cur.description else []

        return self._run(work)

    def one(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        found = self.query(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: Params = ()) -> Any:
        found = self.one(sql, params)
        return None if found is None else found[0]

    def dicts(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Rows as {column: value}, for the views that print them."""
        text = self.sql(sql)

        def work(db: Any) -> list[dict[str, Any]]:
            cur = db.execute(text, params)
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        return self._run(work)

    def many(self, sql: str, rows: Iterable[Params]) -> None:
        text = self.sql(sql)
        batch = list(rows)
        if batch:
            self._run(lambda db: (db.cursor() if self.postgres else db).executemany(text, batch))

    def upsert(self, table: str, row: Mapping[str, Any], key: Sequence[str], update: Sequence[str] = ()) -> int:
        """Insert `row`, or on a clash of `key` set the `update` columns from it (none: leave the row)."""
        cols = list(row)
        action = "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update) if update else "DO NOTHING"
        return self.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)}) "
            f"ON CONFLICT ({', '.join(key)}) {action}",
            dict(row),
        )

    def where_in(
        self, sql: str, values: Sequence[Any], params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """`sql` with `{in}` standing for "the column is one of `values`", as one statement with one
        parameter however many values: an array on PostgreSQL, a JSON array read by `json_each` on SQLite
        (no bound-parameter limit, and the statement is prepared once)."""
        if not values:
            return []
        if self.postgres:
            return self.query(sql.replace("{in}", "= ANY(:values)"), {**(params or {}), "values": list(values)})
        found = "IN (SELECT value FROM json_each(:values))"
        return self.query(sql.replace("{in}", found), {**(params or {}), "values": json.dumps(list(values))})

    # --- transactions ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """One transaction (SQLite: the write lock taken at once, so readers of the row cannot interleave).
        Opened inside another one on this connection, it joins it (a change made of smaller changes)."""
        with self._lock:
            if self._depth:
                yield self
                return
            self._begin()
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                with contextlib.suppress(Exception):
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            with self._mapped():
                self._conn.execute("COMMIT")

    def _begin(self) -> None:
        if self.postgres:
            self._with_reconnect(lambda: self._live().execute("BEGIN"))
        else:
            with self._mapped():
                self._conn.execute("BEGIN IMMEDIATE")

    def atomic(self, work: Callable[[Database], T]) -> T:
        """`work(self)` in one transaction, run again from the start on a new connection when the server
        went away in the middle, or after a deadlock (PostgreSQL rolled it back either way): for writes
        that may be applied twice."""
        if not self.postgres or self._depth:
            with self.transaction():
                return work(self)
        deadline = time.monotonic() + self.reconnect
        conflicts = 0
        while True:
            try:
                with self.transaction():
                    return work(self)
            except StorageError as exc:
                if exc.transient and conflicts < 3:
                    conflicts += 1
                    continue
                if not self._lost() or time.monotonic() >= deadline:
                    raise
                self._drop()
                time.sleep(0.5)

    # --- the raw connection, for a backend's own strategy (COPY, backup) ---------------------------------------

    @contextlib.contextmanager
    def raw(self) -> Iterator[Any]:
        """The connection itself under the lock, errors mapped: for what only one backend has."""
        with self._lock, self._mapped():
            yield self._live() if self.postgres else self._conn

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordStore:
    """What every store over a `Database` shares: closing it, and `with` around it."""

    db: Database

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_psycopg(exc: BaseException) -> bool:
    # psycopg is imported only when a database_url asks for it; its errors are recognised by class here,
    # at the one boundary that knows both backends.
    import sys

    module = sys.modules.get("psycopg")
    return module is not None and isinstance(exc, module.Error)


def redact_text(text: str) -> str:
    """A message without any `postgresql://user:password@` it may quote."""
    return re.sub(r"(postgres(?:ql)?://)[^/@\s]*@", r"\1", text)


def reconnect_seconds(settings: Settings) -> float:
    """`[database] reconnect_seconds`: how long a sender or scheduler waits for PostgreSQL to come back
    (default 180; 0 gives up at once)."""
    value = settings.section("database").get("reconnect_seconds", DEFAULT_RECONNECT)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86400:
        raise ConfigError(f"[database] reconnect_seconds must be a number of seconds from 0 to 86400, got {value!r}")
    return float(value)


def open_sqlite(
    store: str,
    path: Path,
    *,
    schema: str = "",
    names: Mapping[str, str] | None = None,
    readonly: bool = False,
    timeout: float = 30,
    walk_up_to: int | None = None,
) -> Database:
    """The records file `path` of `store`, checked before it is trusted; created (with `schema`) only where
    no file exists. A file that is there but empty, truncated, not a database or fails its quick check is a
    `DamagedStoreError`: a damaged suppression list must never read as an empty one. Its pages are walked
    only when it is at most `walk_up_to` bytes (see `integrity`)."""
    path = Path(path)
    try:
        if path.exists():
            if not _open_here(path):  # a file this process holds open was checked when it was opened
                check_file(path, store, walk_up_to=walk_up_to)
        elif readonly:
            raise StorageError(f"{path}: {store}: no such file")
        else:
            _create(path, schema)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"{path}: {store}: {getattr(exc, 'strerror', None) or _detail(exc)}") from None

    def connect() -> sqlite3.Connection:
        if readonly:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            db = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
            # WAL: readers (`newsletter status`, the web app) never block the writer. NORMAL: a committed row
            # survives a process crash (kill -9); only a power cut may lose the last commits.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        return db

    database = Database(store, str(path), connect, postgres=False, names=names)
    _OPEN_FILES.setdefault(str(path.resolve()), weakref.WeakSet()).add(database)
    if schema and not readonly:
        with database.raw() as db:
            db.executescript(schema)
    return database


# The SQLite files this process has a connection to. Such a file is not checked again when another store
# of the process opens it: the check reads the header with a plain open(), and closing that descriptor
# drops every POSIX lock the process holds on the file — its live connections' too — so another process
# could take itself for the last user, checkpoint and delete the WAL under them, and their later commits
# would be lost. (The reader base is one file opened by several stores of one process.)
_OPEN_FILES: dict[str, weakref.WeakSet[Database]] = {}


def _open_here(path: Path) -> bool:
    found = _OPEN_FILES.get(str(path.resolve()))
    return found is not None and any(db.is_open for db in list(found))


def _create(path: Path, schema: str) -> None:
    """A new records file, made whole beside `path` and then linked into place: a crash while it is made
    leaves no half-made file (which the next open would have to refuse), and a file another process made
    first is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    try:
        with contextlib.closing(sqlite3.connect(new, isolation_level=None)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(schema or "PRAGMA user_version = 0;")
        with contextlib.suppress(FileExistsError):
            os.link(new, path)
    finally:
        for leftover in (new, new.with_name(new.name + "-wal"), new.with_name(new.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def open_pg(
    store: str, url: str, *, names: Mapping[str, str] | None = None, reconnect: float = DEFAULT_RECONNECT
) -> Database:
    """A connection to the PostgreSQL database at `url` (its schema checked once per process)."""
    from .database import open_postgres

    open_postgres(url)

    def connect() -> Any:
        import psycopg

        return psycopg.connect(url, autocommit=True, connect_timeout=10)

    return Database(store, redact(url), connect, postgres=True, names=names, reconnect=reconnect)
