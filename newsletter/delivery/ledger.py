"""The delivery ledger: one SQLite file per edition, one row per recipient, the truth about who got what.

    pending ──▶ sent        the sink accepted it (SMTP 250): never sent again
       │  └───▶ failed      permanent refusal (SMTP 5xx), with the reply
       └──────▶ skipped     suppressed, or no longer in the list (looked at again on every run)

A row becomes `sent` only after the sink has accepted the message, in its own committed transaction,
so a crash (even `kill -9`) can at worst resend the messages that were in flight at that instant; it can
never lose one. The file is in WAL mode: `newsletter status` reads it while a send writes it.

`EditionLock` keeps two runs from sending the same edition at once: an exclusive `flock` on a file next
to the ledger, released by the kernel when the process ends however it ends, so a crash never leaves a
stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigError
from ..storage import Meta, ProcessLock, connect

DEFAULT_DIR = "data/ledger"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recipients (
    id         INTEGER PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,              -- lower-cased address: duplicates differ only in case
    address    TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    locale     TEXT NOT NULL DEFAULT '',
    line       INTEGER,                           -- where the list had it, on the last run that saw it
    seen_run   INTEGER NOT NULL,                  -- the last run whose list contained it
    state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    code       INTEGER,                           -- last SMTP reply code
    reply      TEXT,                              -- last reply text, or why it was skipped
    created_at TEXT NOT NULL,
    updated_at TEXT,
    sent_at    TEXT
);
CREATE INDEX IF NOT EXISTS recipients_state ON recipients (state, id);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    pid         INTEGER,
    source      TEXT,
    sink        TEXT,
    status      TEXT NOT NULL DEFAULT 'running',   -- done, stopped, unreachable, error; a crash leaves 'running'
    sent        INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    invalid     INTEGER NOT NULL DEFAULT 0,
    duplicates  INTEGER NOT NULL DEFAULT 0,
    suppressed  INTEGER NOT NULL DEFAULT 0,
    retried     INTEGER NOT NULL DEFAULT 0,
    deferred    INTEGER NOT NULL DEFAULT 0
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def ledger_dir(settings: Settings) -> Path:
    value = settings.section("mailing").get("ledger_dir", DEFAULT_DIR)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[mailing] ledger_dir must be a folder path, got {value!r}")
    return (settings.root / value).resolve()


def ledger_path(settings: Settings, day: date) -> Path:
    """`<date>.sqlite`; `<date>.<lang>.sqlite` when the list has several language editions (one ledger each)."""
    suffix = f".{settings.language}" if settings.multilingual else ""
    return ledger_dir(settings) / f"{day.isoformat()}{suffix}.sqlite"


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    address: str
    name: str
    attempts: int


@dataclass
class Counts:
    pending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.sent + self.failed + self.skipped


class Ledger:
    """The recipients of one edition and their delivery state. Safe to share between the send threads."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if readonly:
            self._db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
        else:
            # WAL, synchronous=NORMAL: a committed row survives a process crash (kill -9); only a power cut
            # may lose the last commits, which then get resent — the same bound as a crash.
            self._db = connect(self.path, wal=True, shared=True)
            self._db.executescript(Meta.SCHEMA + _SCHEMA)
        self._db.execute("PRAGMA busy_timeout=30000")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- metadata and runs ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            return Meta.get(self._db, key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            Meta.set(self._db, key, value)

    def start_run(self, source: str, sink: str) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO runs (started_at, pid, source, sink) VALUES (?, ?, ?, ?)",
                (_now(), os.getpid(), source, sink),
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run: int, status: str, **counts: int) -> None:
        allowed = {"sent", "failed", "invalid", "duplicates", "suppressed", "retried", "deferred"}
        sets = ", ".join(f"{k} = ?" for k in counts if k in allowed)
        values = [v for k, v in counts.items() if k in allowed]
        with self._lock:
            self._db.execute(
                f"UPDATE runs SET finished_at = ?, status = ?{', ' + sets if sets else ''} WHERE id = ?",
                (_now(), status, *values, run),
            )

    def runs(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute("SELECT * FROM runs ORDER BY id")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # --- enrolment -----------------------------------------------------------------------------------

    def enrol(self, run: int, address: str, name: str, locale: str, line: int) -> int | None:
        """Add or refresh a recipient for this run; the line of the first entry when it is a duplicate here."""
        key = address.lower()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO recipients (key, address, name, locale, line, seen_run, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET name = excluded.name, locale = excluded.locale, "
                "line = excluded.line, seen_run = excluded.seen_run, "
                "state = CASE WHEN state = 'skipped' THEN 'pending' ELSE state END "
                "WHERE recipients.seen_run != excluded.seen_run",
                (key, address, name, locale, line, run, _now()),
            )
            if cur.rowcount:
                return None
            row = self._db.execute("SELECT line FROM recipients WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around many `enrol` calls: thousands of rows per commit instead of one."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with self._lock:
                self._db.execute("ROLLBACK")
            raise
        with self._lock:
            self._db.execute("COMMIT")

    def retire_unseen(self, run: int) -> int:
        """Pending rows the list no longer holds are skipped (and looked at again if they come back)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE recipients SET state = 'skipped', reply = 'not in the subscriber list any more', "
                "updated_at = ? WHERE state = 'pending' AND seen_run != ?",
                (_now(), run),
            )
            return cur.rowcount

    # --- sending -------------------------------------------------------------------------------------

    def pending(self, run: int | None = None, batch: int = 500) -> Iterator[Row]:
        """Pending rows in list order, fetched a batch at a time (rows change state while we iterate)."""
        after = 0
        while True:
            with self._lock:
                if run is None:
                    rows = self._db.execute(
                        "SELECT id, address, name, attempts FROM recipients "
                        "WHERE state = 'pending' AND id > ? ORDER BY id LIMIT ?",
                        (after, batch),
                    ).fetchall()
                else:
                    rows = self._db.execute(
                        "SELECT id, address, name, attempts FROM recipients "
                        "WHERE state = 'pending' AND seen_run = ? AND id > ? ORDER BY id LIMIT ?",
                        (run, after, batch),
                    ).fetchall()
            if not rows:
                return
            for row in rows:
                yield Row(*row)
            after = rows[-1][0]

    def _update(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, params)

    def mark_sent(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        now = _now()
        self._update(
            "UPDATE recipients SET state = 'sent', attempts = attempts + ?, code = ?, reply = ?, sent_at = ?, "
            "updated_at = ? WHERE id = ?",
            (attempts, code, reply, now, now, row_id),
        )

    def mark_failed(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        self._update(
            "UPDATE recipients SET state = 'failed', attempts = attempts + ?, code = ?, reply = ?, updated_at = ? "
            "WHERE id = ?",
            (attempts, code, reply, _now(), row_id),
        )

    def mark_deferred(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        """Still pending after transient errors: the next run tries again."""
        self._update(
            "UPDATE recipients SET attempts = attempts + ?, code = ?, reply = ?, updated_at = ? WHERE id = ?",
            (attempts, code, reply, _now(), row_id),
        )

    def mark_skipped(self, row_id: int, reason: str) -> None:
        self._update(
            "UPDATE recipients SET state = 'skipped', reply = ?, updated_at = ? WHERE id = ?", (reason, _now(), row_id)
        )

    # --- reading -------------------------------------------------------------------------------------

    def counts(self) -> Counts:
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM recipients GROUP BY state").fetchall()
        counts = Counts()
        for state, n in rows:
            setattr(counts, state, int(n))
        return counts

    def count_pending(self, run: int | None = None) -> int:
        with self._lock:
            if run is None:
                return int(self._db.execute("SELECT count(*) FROM recipients WHERE state = 'pending'").fetchone()[0])
            return int(
                self._db.execute(
                    "SELECT count(*) FROM recipients WHERE state = 'pending' AND seen_run = ?", (run,)
                ).fetchone()[0]
            )

    def rows(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(
                "SELECT id, address, state, attempts, code, reply, updated_at, sent_at FROM recipients "
                + ("WHERE state = ? " if state else "")
                + "ORDER BY id LIMIT ?",
                (state, limit) if state else (limit,),
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def state_of(self, address: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM recipients WHERE key = ?", (address.lower(),)).fetchone()
        return None if row is None else str(row[0])

    def backup_to(self, path: Path) -> None:
        """A consistent copy (for dry runs, which must not touch the real ledger)."""
        dest = sqlite3.connect(path)
        with self._lock:
            self._db.backup(dest)
        dest.close()


class EditionLock(ProcessLock):
    """An exclusive lock on one edition's sending; `LockedError` when another run holds it."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            path,
            lambda holder: f"{what} is being sent by another run (pid {holder}); wait for it to finish (lock {path})",
        )
        self.what = what
