"""The delivery ledger: one SQLite file per edition, one row per recipient, the truth about who got what.

    pending ──▶ sent        the sink accepted it (SMTP 250): never sent again
       │  └───▶ failed      permanent refusal (SMTP 5xx), with the reply
       └──────▶ skipped     suppressed, or no longer in the list (looked at again on every run)

A row becomes `sent` only after the sink has accepted the message. Results are written in batches
(`ResultBuffer`): one transaction when ~50 ms or 300 results have gathered, whichever comes first, and
on close — one commit per row would make the ledger, not the relay, the ceiling of a big send. A crash
(even `kill -9`) therefore loses at most one flush window of *records*, never a message: those rows are
still pending and get resent, with the same Message-ID, so the worst case is the messages in flight plus
one window. The file is in WAL mode: `newsletter status` reads it while a send writes it.

`open_ledger` picks the backend: this file, or `PgLedger` (ledger_pg.py) when `database_url` is set.

`EditionLock` keeps two runs from sending the same edition at once: an exclusive `flock` on a file next
to the ledger, released by the kernel when the process ends however it ends, so a crash never leaves a
stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..config import Settings
from ..storage import FileLock, Meta, ProcessLock, connect
from .batching import Result, ResultBuffer, runs_of
from .options import MAILING

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
    return settings.options(MAILING).ledger_dir


def ledger_name(settings: Settings, day: date) -> str:
    """`<date>`, or `<date>.<lang>` when the list has several language editions (one ledger each): the file's
    name without `.sqlite`, and the edition key of the PostgreSQL ledger."""
    return day.isoformat() + (f".{settings.language}" if settings.multilingual else "")


def parse_ledger_name(name: str) -> tuple[date, str] | None:
    """(date, language or "") from a ledger name; None for anything else (a backup, a dry run's copy)."""
    day, _, lang = name.partition(".")
    try:
        return date.fromisoformat(day), lang
    except ValueError:
        return None


def ledger_path(settings: Settings, day: date) -> Path:
    """`<date>.sqlite`; `<date>.<lang>.sqlite` when the list has several language editions (one ledger each)."""
    return ledger_dir(settings) / f"{ledger_name(settings, day)}.sqlite"


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    address: str
    name: str
    attempts: int
    suppressed: bool | None = None  # looked up with the row (a PostgreSQL claim); None: ask the list


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
        self._lock = FileLock(self.path)
        with self._lock:  # a file that cannot be opened or written is named in the error
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
        self._results = ResultBuffer(self._write_results)

    def describe(self) -> str:
        return str(self.path)

    def close(self) -> None:
        """Write the outcomes still gathered, then close; after a crash they are simply resent."""
        try:
            self._results.close()
        finally:
            with self._lock:
                self._db.close()

    def flush(self) -> None:
        self._results.flush()

    def _write_results(self, items: list[Result]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for kind, group in runs_of(items):
                    self._db.executemany(_RESULT_SQL[kind], group)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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
            cur = self._db.execute(_ENROL_SQL, (key, address, name, locale, line, run, _now()))
            if cur.rowcount:
                return None
            row = self._db.execute("SELECT line FROM recipients WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    @contextlib.contextmanager
    def enrolment(self, run: int) -> Iterator[bool]:
        """Every run enrols the list here: one process at a time sends an edition (`EditionLock`)."""
        yield True

    def enrol_many(self, run: int, subs: Sequence[tuple[str, str, str, int]]) -> list[tuple[int, int, str]]:
        """Add or refresh (address, name, locale, line) rows in one statement; the duplicates it found.

        A duplicate (line, line of the first entry, address) is an address already enrolled by this run,
        in an earlier call or earlier in `subs`. Call inside `batch()` for one transaction.
        """
        unique, dups = _dedupe(subs)
        keys = list(unique)
        with self._lock:
            seen: dict[str, int] = {}
            for i in range(0, len(keys), 900):  # SQLite's bound-parameter limit
                part = keys[i : i + 900]
                marks = ",".join("?" * len(part))
                for key, line in self._db.execute(
                    f"SELECT key, line FROM recipients WHERE seen_run = ? AND key IN ({marks})", (run, *part)
                ):
                    seen[key] = int(line or 0)
            now = _now()
            self._db.executemany(
                _ENROL_SQL,
                [(k, a, n, loc, line, run, now) for k, (a, n, loc, line) in unique.items() if k not in seen],
            )
        dups.extend((unique[k][3], first, unique[k][0]) for k, first in seen.items())
        return sorted(dups)

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

    def requeue_failed(self) -> int:
        """Failed rows back to pending, their attempts reset (the operator fixed the relay); how many."""
        self._results.flush()
        with self._lock:
            cur = self._db.execute(
                "UPDATE recipients SET state = 'pending', attempts = 0, updated_at = ? WHERE state = 'failed'",
                (_now(),),
            )
            return cur.rowcount

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

    def pending(
        self, run: int | None = None, batch: int = 500, *, suppressed: Callable[[list[str]], set[str]] | None = None
    ) -> Iterator[Row]:
        """Pending rows in list order, fetched a batch at a time (rows change state while we iterate).

        `suppressed(addresses)` answers which are on the suppression list, asked for 200 rows at a time just
        before they are handed on (so an unsubscribe mid-run counts) and written into `Row.suppressed`.
        """
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
            for i in range(0, len(rows), 200):
                part = rows[i : i + 200]
                blocked = suppressed([r[1] for r in part]) if suppressed is not None else None
                for row in part:
                    yield Row(row[0], row[1], row[2], row[3], None if blocked is None else row[1] in blocked)
            after = rows[-1][0]

    # Outcomes are gathered and written a window at a time (see ResultBuffer and the module docstring).

    def mark_sent(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        now = _now()
        self._results.add("sent", (attempts, code, reply, now, now, row_id))

    def mark_failed(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        self._results.add("failed", (attempts, code, reply, _now(), row_id))

    def mark_deferred(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        """Still pending after transient errors: the next run tries again."""
        self._results.add("deferred", (attempts, code, reply, _now(), row_id))

    def mark_skipped(self, row_id: int, reason: str) -> None:
        self._results.add("skipped", (reason, _now(), row_id))

    # --- reading -------------------------------------------------------------------------------------

    def counts(self) -> Counts:
        self._results.flush()
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM recipients GROUP BY state").fetchall()
        counts = Counts()
        for state, n in rows:
            setattr(counts, state, int(n))
        return counts

    def count_pending(self, run: int | None = None) -> int:
        self._results.flush()
        with self._lock:
            if run is None:
                return int(self._db.execute("SELECT count(*) FROM recipients WHERE state = 'pending'").fetchone()[0])
            return int(
                self._db.execute(
                    "SELECT count(*) FROM recipients WHERE state = 'pending' AND seen_run = ?", (run,)
                ).fetchone()[0]
            )

    def rows(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        self._results.flush()
        with self._lock:
            cur = self._db.execute(
                "SELECT id, address, state, attempts, code, reply, updated_at, sent_at FROM recipients "
                + ("WHERE state = ? " if state else "")
                + "ORDER BY id LIMIT ?",
                (state, limit) if state else (limit,),
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def senders(self) -> list[dict[str, Any]]:
        """One sender at a time on SQLite: the per-sender view is the runs table (see PgLedger.senders)."""
        return []

    def state_of(self, address: str) -> str | None:
        self._results.flush()
        with self._lock:
            row = self._db.execute("SELECT state FROM recipients WHERE key = ?", (address.lower(),)).fetchone()
        return None if row is None else str(row[0])

    def backup_to(self, path: Path) -> None:
        """A consistent copy (for dry runs, which must not touch the real ledger)."""
        self._results.flush()
        dest = sqlite3.connect(path)
        with self._lock:
            self._db.backup(dest)
        dest.close()


_ENROL_SQL = (
    "INSERT INTO recipients (key, address, name, locale, line, seen_run, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET name = excluded.name, locale = excluded.locale, "
    "line = excluded.line, seen_run = excluded.seen_run, "
    "state = CASE WHEN state = 'skipped' THEN 'pending' ELSE state END "
    "WHERE recipients.seen_run != excluded.seen_run"
)

_RESULT_SQL = {
    "sent": "UPDATE recipients SET state = 'sent', attempts = attempts + ?, code = ?, reply = ?, sent_at = ?, "
    "updated_at = ? WHERE id = ?",
    "failed": "UPDATE recipients SET state = 'failed', attempts = attempts + ?, code = ?, reply = ?, updated_at = ? "
    "WHERE id = ?",
    "deferred": "UPDATE recipients SET attempts = attempts + ?, code = ?, reply = ?, updated_at = ? WHERE id = ?",
    "skipped": "UPDATE recipients SET state = 'skipped', reply = ?, updated_at = ? WHERE id = ?",
}


def _dedupe(subs: Sequence[tuple[str, str, str, int]]) -> tuple[dict[str, tuple[str, str, str, int]], list[Any]]:
    """Rows by lower-cased key (the first entry wins) and (line, first line, address) for the repeats."""
    unique: dict[str, tuple[str, str, str, int]] = {}
    dups: list[tuple[int, int, str]] = []
    for sub in subs:
        key = sub[0].lower()
        first = unique.get(key)
        if first is None:
            unique[key] = sub
        else:
            dups.append((sub[3], first[3], sub[0]))
    return unique, dups


class EditionLock(ProcessLock):
    """An exclusive lock on one edition's sending; `LockedError` when another run holds it."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            path,
            lambda holder: f"{what} is being sent by another run (pid {holder}); wait for it to finish (lock {path})",
        )
        self.what = what
