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

With `database_url` set, the same class keeps every edition's ledger in PostgreSQL, where many senders
share a mailing by claiming leased batches (sending.py); `open_ledger` (stores.py) picks the backend.

`EditionLock` keeps two runs from sending the same edition at once: an exclusive `flock` on a file next
to the ledger, released by the kernel when the process ends however it ends, so a crash never leaves a
stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from ..config import Settings
from ..storage import LEDGER_WALK, Database, ProcessLock, RecordStore, open_sqlite
from .batching import ResultBuffer
from .options import MAILING
from .sending import DEFAULT_LEASE, FleetSending, Sending, SoloSending, now_text
from .sending import Counts as Counts  # the ledger's types, where callers import them from
from .sending import Row as Row

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


def ledger_dir(settings: Settings) -> Path:
    return settings.options(MAILING).ledger_dir


def ledger_name(settings: Settings, day: date) -> str:
    """`<date>`, or `<date>.<lang>` when the list has several language editions (one ledger each), after
    `<newsletter>.` for a newsletter other than the default one: the file's name without `.sqlite`, and
    the edition key of the PostgreSQL ledger."""
    return settings.file_prefix + day.isoformat() + (f".{settings.language}" if settings.multilingual else "")


def parse_ledger_name(name: str) -> tuple[date, str] | None:
    """(date, language or "") from a ledger name of the default newsletter; None for anything else (another
    newsletter's, a backup, a dry run's copy)."""
    found = parse_ledger_key(name)
    return (found[1], found[2]) if found is not None and not found[0] else None


def parse_ledger_key(name: str) -> tuple[str, date, str] | None:
    """(newsletter or "" for the default one, date, language or "") from any ledger name; None for
    anything else. A newsletter id never holds a dot, so `weekly.2016-12-30.en` reads one way."""
    parts = name.split(".")
    letter = parts.pop(0) if parts and not parts[0][:1].isdigit() else ""
    if not parts or len(parts) > 2:
        return None
    try:
        return letter, date.fromisoformat(parts[0]), parts[1] if len(parts) > 1 else ""
    except ValueError:
        return None


def ledger_path(settings: Settings, day: date) -> Path:
    """`<date>.sqlite`; `<date>.<lang>.sqlite` when the list has several language editions (one ledger each)."""
    return ledger_dir(settings) / f"{ledger_name(settings, day)}.sqlite"


_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
_SQLITE_NAMES = {"recipients": "recipients", "runs": "runs", "meta": "meta", "scope": ""}
PG_NAMES = {
    "recipients": "ledger_recipients",
    "runs": "ledger_runs",
    "meta": "ledger_meta",
    "scope": "edition = :edition AND ",
}


class Ledger(RecordStore):
    """The recipients of one edition and their delivery state. Safe to share between the send threads.

    `source` is the edition's SQLite file (created unless `readonly`; a damaged one is refused) or an open
    PostgreSQL `Database` with the ledger's name as `edition` (`open_ledger` picks). The SQL is written
    once: `{recipients}` and the other table names are the backend's, and `{scope}` narrows PostgreSQL's
    one table to this edition. How rows are handed out and outcomes written — one sender over its own
    file, or a fleet claiming leased batches — is the backend's `Sending` strategy (`self.sending`).
    """

    def __init__(
        self,
        source: str | Path | Database,
        *,
        edition: str = "",
        readonly: bool = False,
        lease: float = DEFAULT_LEASE,
        owner: str | None = None,
    ) -> None:
        self.edition = edition
        self.sending: Sending
        if isinstance(source, Database):
            self.db = source
            self.sending = FleetSending(source, edition, lease=lease, owner=owner, readonly=readonly)
        else:
            self.path = Path(source)
            store = f"the ledger of {self.path.stem}"
            self.db = open_sqlite(
                store,
                self.path,
                schema=_META + _SCHEMA,
                names=_SQLITE_NAMES,
                readonly=readonly,
                walk_up_to=0 if readonly else LEDGER_WALK,  # reading (status, monitoring) never sends
            )
            self.sending = SoloSending(self.db)
        self._results = ResultBuffer(self.sending.write, behind=self.db.postgres)

    def describe(self) -> str:
        return f"{self.db.where} edition {self.edition}" if self.db.postgres else self.db.where

    @property
    def owner(self) -> str:
        return self.sending.owner

    def close(self) -> None:
        """Write the outcomes still gathered, hand back what was claimed, close; after a crash rows are resent."""
        try:
            self._results.close()
            self.sending.close()
        finally:
            self.db.close()

    def flush(self) -> None:
        self._results.flush()

    def _p(self, **params: Any) -> dict[str, Any]:
        """Named parameters with the edition, which `{scope}` and PostgreSQL's inserts use."""
        return {"edition": self.edition, **params}

    # --- metadata and runs ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        found = self.db.scalar("SELECT value FROM {meta} WHERE {scope} key = :key", self._p(key=key))
        return None if found is None else str(found)

    def set_meta(self, key: str, value: str) -> None:
        row = {"edition": self.edition} if self.db.postgres else {}
        row |= {"key": key, "value": value}
        self.db.upsert(self.db.names["meta"], row, tuple(row)[:-1], ("value",))

    def start_run(self, source: str, sink: str) -> int:
        row: dict[str, Any] = {"edition": self.edition} if self.db.postgres else {}
        row |= {"started_at": now_text(), "pid": os.getpid(), "source": source, "sink": sink}
        cols, marks = ", ".join(row), ", ".join(f":{c}" for c in row)
        run = int(self.db.scalar(f"INSERT INTO {{runs}} ({cols}) VALUES ({marks}) RETURNING id", row))
        self.sending.started(run)
        return run

    def finish_run(self, run: int, status: str, **counts: int) -> None:
        allowed = {"sent", "failed", "invalid", "duplicates", "suppressed", "retried", "deferred"}
        values = {k: v for k, v in counts.items() if k in allowed}
        sets = "".join(f", {k} = :{k}" for k in values)
        self.db.execute(
            f"UPDATE {{runs}} SET finished_at = :now, status = :status{sets} WHERE id = :run",
            {**values, "now": now_text(), "status": status, "run": run},
        )

    def runs(self) -> list[dict[str, Any]]:
        return self.db.dicts("SELECT * FROM {runs} WHERE {scope} 1 = 1 ORDER BY id", self._p())

    # --- enrolment -----------------------------------------------------------------------------------

    def enrolment(self, run: int) -> contextlib.AbstractContextManager[bool]:
        """Yields whether this run should enrol the list (see the backend's `Sending.enrolment`)."""
        return self.sending.enrolment(run)

    def enrol(self, run: int, address: str, name: str, locale: str, line: int) -> int | None:
        """Add or refresh a recipient for this run; the line of the first entry when it is a duplicate here."""
        dups = self.enrol_many(run, [(address, name, locale, line)])
        return dups[0][1] if dups else None

    def enrol_many(self, run: int, subs: Sequence[tuple[str, str, str, int]]) -> list[tuple[int, int, str]]:
        """Add or refresh (address, name, locale, line) rows; the duplicates it found.

        A duplicate (line, line of the first entry, address) is an address already enrolled by this run,
        in an earlier call or earlier in `subs`. Call inside `batch()` for one transaction.
        """
        unique, dups = _dedupe(subs)
        sql = "SELECT key, line FROM {recipients} WHERE {scope} seen_run = :run AND key {in}"
        seen = {str(key): int(line or 0) for key, line in self.db.where_in(sql, list(unique), self._p(run=run))}
        # Rows this run already enrolled are left alone by the upsert's WHERE (seen_run is this run).
        self.sending.enrol_rows(run, [(key, *sub) for key, sub in unique.items() if key not in seen])
        dups.extend((unique[k][3], first, unique[k][0]) for k, first in seen.items())
        return sorted(dups)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around many `enrol_many` calls: thousands of rows per commit instead of one."""
        with self.db.transaction():
            yield

    def requeue_failed(self) -> int:
        """Failed rows back to pending, their attempts reset (the operator fixed the relay); how many."""
        self._results.flush()
        # A fleet's failed rows may still name the sender that failed them: released, any sender takes them.
        leases = ", lease_owner = NULL, lease_until = NULL" if isinstance(self.sending, FleetSending) else ""
        return self.db.execute(
            "UPDATE {recipients} SET state = 'pending', attempts = 0, updated_at = :now"
            + leases
            + " WHERE {scope} state = 'failed'",
            self._p(now=now_text()),
        )

    def retire_unseen(self, run: int) -> int:
        """Pending rows the list no longer holds are skipped (and looked at again if they come back)."""
        return self.db.execute(
            "UPDATE {recipients} SET state = 'skipped', reply = 'not in the subscriber list any more', "
            "updated_at = :now WHERE {scope} state = 'pending' AND seen_run != :run",
            self._p(now=now_text(), run=run),
        )

    # --- sending -------------------------------------------------------------------------------------

    def pending(
        self,
        run: int | None = None,
        batch: int = 500,
        *,
        suppressed: Callable[[list[str]], set[str]] | None = None,
        part: tuple[int, int] = (0, 1),
    ) -> Iterator[Row]:
        """Pending rows in list order, a batch at a time, each with whether it is suppressed (`Sending`).

        `part=(k, n)`: sender process k of n (processes.py) — on a SQLite file the rows whose id is k modulo
        n; a fleet's claims share the rows out anyway."""
        return self.sending.pending(run, batch, suppressed, part)

    # Outcomes are gathered and written a window at a time (see ResultBuffer and the module docstring).

    def mark_sent(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        now = now_text()
        self._results.add("sent", (attempts, code, reply, now, now, row_id))

    def mark_failed(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        self._results.add("failed", (attempts, code, reply, now_text(), row_id))

    def mark_deferred(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        """Still pending after transient errors: the next run tries again."""
        self._results.add("deferred", (attempts, code, reply, now_text(), row_id))

    def mark_skipped(self, row_id: int, reason: str) -> None:
        self._results.add("skipped", (reason, now_text(), row_id))

    # --- reading -------------------------------------------------------------------------------------

    def counts(self) -> Counts:
        self._results.flush()
        counts = Counts()
        sql = "SELECT state, count(*) FROM {recipients} WHERE {scope} 1 = 1 GROUP BY state"
        for state, n in self.db.query(sql, self._p()):
            setattr(counts, str(state), int(n))
        return counts

    def count_pending(self, run: int | None = None) -> int:
        """Pending rows: of this run's list (one sender per file), of the edition (a fleet shares it)."""
        self._results.flush()
        by_run = "AND seen_run = :run" if run is not None and not self.db.postgres else ""
        sql = f"SELECT count(*) FROM {{recipients}} WHERE {{scope}} state = 'pending' {by_run}"
        return int(self.db.scalar(sql, self._p(run=run)))

    def rows(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        self._results.flush()
        return self.db.dicts(
            "SELECT id, address, state, attempts, code, reply, updated_at, sent_at FROM {recipients} WHERE {scope} "
            + ("state = :state " if state else "1 = 1 ")
            + "ORDER BY id LIMIT :limit",
            self._p(state=state, limit=limit),
        )

    def senders(self) -> list[dict[str, Any]]:
        """Per sender of a fleet: its run's status ("lost" when its heartbeat stopped), what it recorded and
        the rows it holds now; empty for a SQLite file, which one sender at a time works on."""
        self._results.flush()
        return self.sending.senders()

    def state_of(self, address: str) -> str | None:
        self._results.flush()
        found = self.db.scalar("SELECT state FROM {recipients} WHERE {scope} key = :key", self._p(key=address.lower()))
        return None if found is None else str(found)

    def backup_to(self, path: Path) -> None:
        """The edition's recipients and meta as a SQLite ledger file, for dry runs (which must not touch this
        one); each read in one statement, so the copy is consistent."""
        self._results.flush()
        rows = self.db.query(
            "SELECT key, address, name, locale, line, state, attempts, code, reply, created_at, updated_at, sent_at "
            "FROM {recipients} WHERE {scope} 1 = 1 ORDER BY id",
            self._p(),
        )
        meta = self.db.query("SELECT key, value FROM {meta} WHERE {scope} 1 = 1", self._p())
        with contextlib.closing(sqlite3.connect(path)) as dest:
            dest.executescript(_META + _SCHEMA)
            dest.executemany(
                "INSERT INTO recipients (key, address, name, locale, line, seen_run, state, attempts, code, reply, "
                "created_at, updated_at, sent_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            dest.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta)
            dest.commit()


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
