"""The delivery ledger in PostgreSQL: the same methods as `Ledger`, plus what lets many senders share a mailing.

One table holds every edition's recipients, keyed by the ledger's name (`2016-12-30`, or `2016-12-30.fr`
for a language edition). Several `newsletter send` processes, on any machines, may work on one edition at
once:

- **Enrolment happens once.** The first sender takes the edition's advisory lock and enrols the list; the
  others wait for it, then join. A sender enrols only when nothing of the edition is pending (a first run,
  or a rerun after the mailing finished); a run that joins a mailing under way leaves the list alone.
- **Rows are claimed in batches** with `SELECT … FOR UPDATE SKIP LOCKED`, each claim a *lease* that the
  database's clock ends (`[mailing] lease_seconds`, default 60). A sender renews its leases while it
  works; one that dies (SIGKILL, a lost machine) stops renewing and another sender takes the rows when
  the lease lapses. Message-IDs are derived from the edition and the address, so a resent message
  carries the same one and mailboxes fold the copies.
- **Results are batched** exactly as in the SQLite ledger (`ResultBuffer`): at most one flush window of
  records is lost with a sender, never a message.

A sender that runs out of rows to claim keeps waiting while other senders still hold leases, so every
sender returns only when the whole mailing is done (or its leases had to be taken over and were).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..storage import Postgres, lock_key, this_owner
from .batching import Result, ResultBuffer, runs_of
from .ledger import _SCHEMA, Counts, Row, _dedupe, _now

CLAIM_BATCH = 500  # rows per claim: a few seconds of work at relay speeds, so a fleet shares a mailing evenly
DEFAULT_LEASE = 60.0

# One statement per kind of outcome for a whole flush: the parameters of each result, column by column,
# as arrays (`unnest`), so 300 outcomes are one round trip, not 300. The columns follow `mark_*`.
_RESULT_SQL = {
    "sent": "UPDATE ledger_recipients r SET state = 'sent', attempts = r.attempts + v.a, code = v.c, reply = v.r, "
    "sent_at = v.t, updated_at = v.t, done_by = v.o, lease_owner = NULL, lease_until = NULL "
    "FROM unnest(%s::int[], %s::int[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[]) "
    "AS v(a, c, r, t, t2, o, id) WHERE r.id = v.id",
    "failed": "UPDATE ledger_recipients r SET state = 'failed', attempts = r.attempts + v.a, code = v.c, reply = v.r, "
    "updated_at = v.t, done_by = v.o, lease_owner = NULL, lease_until = NULL "
    "FROM unnest(%s::int[], %s::int[], %s::text[], %s::text[], %s::text[], %s::bigint[]) AS v(a, c, r, t, o, id) "
    "WHERE r.id = v.id",
    # Given up on for this run: still pending, held until a later run releases it (see `enrolment`).
    "deferred": "UPDATE ledger_recipients r SET attempts = r.attempts + v.a, code = v.c, reply = v.r, "
    "updated_at = v.t, lease_owner = v.o, lease_until = 'infinity' "
    "FROM unnest(%s::int[], %s::int[], %s::text[], %s::text[], %s::text[], %s::bigint[]) AS v(a, c, r, t, o, id) "
    "WHERE r.id = v.id",
    "skipped": "UPDATE ledger_recipients r SET state = 'skipped', reply = v.r, updated_at = v.t, done_by = v.o, "
    "lease_owner = NULL, lease_until = NULL "
    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) AS v(r, t, o, id) WHERE r.id = v.id",
}

_ENROL_SQL = (
    "INSERT INTO ledger_recipients (edition, key, address, name, locale, line, seen_run, created_at) "
    "SELECT %s, key, address, name, locale, line, %s, %s FROM enrol_stage "
    "ON CONFLICT (edition, key) DO UPDATE SET name = excluded.name, locale = excluded.locale, "
    "line = excluded.line, seen_run = excluded.seen_run, "
    "state = CASE WHEN ledger_recipients.state = 'skipped' THEN 'pending' ELSE ledger_recipients.state END "
    "WHERE ledger_recipients.seen_run != excluded.seen_run"
)


class PgLedger:
    """One edition's recipients in PostgreSQL. Safe to share between the send threads of one process."""

    def __init__(
        self,
        pg: Postgres,
        edition: str,
        *,
        lease: float = DEFAULT_LEASE,
        owner: str | None = None,
        readonly: bool = False,
    ) -> None:
        self.pg = pg
        self.edition = edition  # the ledger's name (`ledger_name`)
        self.lease = lease
        self.owner = owner or this_owner()
        self.stop: threading.Event | None = None  # set by the send loop: ends a wait for other senders
        self._lock = threading.Lock()
        self._db = pg.connect()
        # Outcomes are written behind the send loop on a connection of their own, so a claim never waits
        # for a write to commit (nor a write for a claim).
        self._results = ResultBuffer(self._write_results, behind=True)
        self._writer_lock = threading.Lock()
        self._writer: Any = None  # that connection, opened with the first write
        self._readonly = readonly
        self._renewing = threading.Event()
        self._renewer: threading.Thread | None = None

    def describe(self) -> str:
        return f"{self.pg.describe()} edition {self.edition}"

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            cur = self._db.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        """Write the gathered outcomes, hand back the rows claimed but not sent, close."""
        try:
            self._renewing.set()
            if self._renewer is not None:
                self._renewer.join()
            self._results.close()
            with self._writer_lock:
                if self._writer is not None:
                    self._writer.close()
            if not self._readonly:
                self._q(
                    "UPDATE ledger_recipients SET lease_owner = NULL, lease_until = NULL WHERE edition = %s "
                    "AND state = 'pending' AND lease_owner = %s AND lease_until <> 'infinity'",
                    (self.edition, self.owner),
                )
        finally:
            with self._lock:
                self._db.close()

    def __enter__(self) -> PgLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self) -> None:
        self._results.flush()

    def _write_results(self, items: list[Result]) -> None:
        import psycopg

        with self._writer_lock:
            if self._writer is None:
                self._writer = self.pg.connect()
            for attempt in range(1, 4):
                try:
                    with self._writer.transaction():
                        self._apply(self._writer, items)
                    return
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    # Another statement locked the same rows in another order (a lease renewal): the
                    # server rolled this transaction back; applying it again is safe.
                    if attempt == 3:
                        raise

    @staticmethod
    def _apply(db: Any, items: list[Result]) -> None:
        for kind, group in runs_of(items):
            if len({params[-1] for params in group}) < len(group):  # one row twice: apply them in order
                for params in group:
                    db.execute(_RESULT_SQL[kind], [[value] for value in params])
            else:
                db.execute(_RESULT_SQL[kind], [list(column) for column in zip(*group, strict=True)])

    # --- metadata and runs ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM ledger_meta WHERE edition = %s AND key = %s", (self.edition, key))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._q(
            "INSERT INTO ledger_meta (edition, key, value) VALUES (%s, %s, %s) "
            "ON CONFLICT (edition, key) DO UPDATE SET value = excluded.value",
            (self.edition, key, value),
        )

    def start_run(self, source: str, sink: str) -> int:
        """A new run; from here on this sender is `host:pid/run` (its leases and results say so)."""
        run = int(self._q("SELECT nextval(pg_get_serial_sequence('ledger_runs', 'id'))")[0][0])
        self.owner = f"{self.owner.split('/')[0]}/{run}"
        self._q(
            "INSERT INTO ledger_runs (id, edition, started_at, pid, owner, source, sink) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (run, self.edition, _now(), os.getpid(), self.owner, source, sink),
        )
        return run

    def finish_run(self, run: int, status: str, **counts: int) -> None:
        allowed = {"sent", "failed", "invalid", "duplicates", "suppressed", "retried", "deferred"}
        sets = "".join(f", {k} = %s" for k in counts if k in allowed)
        values = [v for k, v in counts.items() if k in allowed]
        self._q(
            f"UPDATE ledger_runs SET finished_at = %s, status = %s{sets} WHERE id = %s", (_now(), status, *values, run)
        )

    def runs(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute("SELECT * FROM ledger_runs WHERE edition = %s ORDER BY id", (self.edition,))
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # --- enrolment -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def enrolment(self, run: int) -> Iterator[bool]:
        """Hold the edition's enrolment lock; yields whether this run should enrol the list.

        Only when nothing of the edition is pending: a sender joining a mailing under way must not
        re-enrol (that would be a million writes per sender). Rows a finished run gave up on (deferred)
        are released here, so this run retries them.
        """
        key = lock_key(f"enrol:{self.edition}")
        self._q("SELECT pg_advisory_lock(%s)", (key,))
        try:
            self._q(
                "UPDATE ledger_recipients SET lease_owner = NULL, lease_until = NULL "
                "WHERE edition = %s AND state = 'pending' AND lease_until = 'infinity'",
                (self.edition,),
            )
            busy = self._q(
                "SELECT 1 FROM ledger_recipients WHERE edition = %s AND state = 'pending' LIMIT 1", (self.edition,)
            )
            yield not busy
        finally:
            self._q("SELECT pg_advisory_unlock(%s)", (key,))

    def enrol(self, run: int, address: str, name: str, locale: str, line: int) -> int | None:
        dups = self.enrol_many(run, [(address, name, locale, line)])
        return dups[0][1] if dups else None

    def enrol_many(self, run: int, subs: Sequence[tuple[str, str, str, int]]) -> list[tuple[int, int, str]]:
        """As `Ledger.enrol_many`; the rows go in by COPY into a session-local staging table, then one upsert."""
        unique, dups = _dedupe(subs)
        with self._lock:
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS enrol_stage (key TEXT, address TEXT, name TEXT, locale TEXT, "
                "line INTEGER)"
            )
            self._db.execute("TRUNCATE enrol_stage")
            with self._db.cursor().copy("COPY enrol_stage (key, address, name, locale, line) FROM STDIN") as copy:
                for key, sub in unique.items():
                    copy.write_row((key, *sub))
            seen = {
                str(k): int(line or 0)
                for k, line in self._db.execute(
                    "SELECT key, line FROM ledger_recipients WHERE edition = %s AND seen_run = %s AND key = ANY(%s)",
                    (self.edition, run, list(unique)),
                ).fetchall()
            }
            # Rows this run already enrolled are left alone by the upsert's WHERE (seen_run is this run).
            self._db.execute(_ENROL_SQL, (self.edition, run, _now()))
        dups.extend((unique[k][3], first, unique[k][0]) for k, first in seen.items())
        return sorted(dups)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around enrolment statements."""
        with self._lock:
            self._db.execute("BEGIN")
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
        self.flush()
        with self._lock:
            cur = self._db.execute(
                "UPDATE ledger_recipients SET state = 'pending', attempts = 0, updated_at = %s, "
                "lease_owner = NULL, lease_until = NULL WHERE edition = %s AND state = 'failed'",
                (_now(), self.edition),
            )
            return cur.rowcount

    def retire_unseen(self, run: int) -> int:
        with self._lock:
            cur = self._db.execute(
                "UPDATE ledger_recipients SET state = 'skipped', reply = 'not in the subscriber list any more', "
                "updated_at = %s WHERE edition = %s AND state = 'pending' AND seen_run != %s",
                (_now(), self.edition, run),
            )
            return cur.rowcount

    # --- claiming and sending ------------------------------------------------------------------------

    def claim(self, n: int = CLAIM_BATCH, after: int = 0) -> list[Row]:
        """Lease up to `n` pending rows no live sender holds, in list order (from row id `after` on), each
        looked up in the suppression list at the same moment (one query for the batch, not one per row)."""
        self._start_renewing()
        rows = self._q(
            "UPDATE ledger_recipients SET lease_owner = %s, lease_until = now() + make_interval(secs => %s) "
            "WHERE id IN (SELECT id FROM ledger_recipients WHERE edition = %s AND state = 'pending' AND id > %s "
            "AND (lease_until IS NULL OR lease_until < now()) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING id, address, name, attempts, "
            "EXISTS (SELECT 1 FROM suppression s WHERE s.key = ledger_recipients.key)",
            (self.owner, self.lease, self.edition, after, n),
        )
        return [Row(int(r[0]), str(r[1]), str(r[2]), int(r[3]), bool(r[4])) for r in sorted(rows)]

    def held_elsewhere(self) -> int:
        """Pending rows other senders hold on a live lease (rows given up on for this run do not count)."""
        rows = self._q(
            "SELECT count(*) FROM ledger_recipients WHERE edition = %s AND state = 'pending' "
            "AND lease_until >= now() AND lease_until <> 'infinity' AND lease_owner IS DISTINCT FROM %s",
            (self.edition, self.owner),
        )
        return int(rows[0][0])

    def pending(
        self,
        run: int | None = None,
        batch: int = CLAIM_BATCH,
        *,
        suppressed: Callable[[list[str]], set[str]] | None = None,
    ) -> Iterator[Row]:
        """Claimed rows, a batch at a time, until no row is left to claim and no other sender holds one.

        Each claim looks the rows up in the suppression list itself (`suppressed` is not needed here).
        """
        with ThreadPoolExecutor(1, thread_name_prefix="ledger-claim") as ahead:
            rows = self.claim(batch)
            while True:
                if rows:
                    # The next batch is claimed while this one is sent: the loop never waits for a claim. It
                    # starts after this batch, not at the edition's first row: the index is not walked
                    # again through every row already done.
                    following = ahead.submit(self.claim, batch, rows[-1].id)
                    yield from rows
                    rows = following.result() or self.claim(batch)  # from the start: lapsed leases, given-back rows
                    continue
                if not self.held_elsewhere():
                    return
                # Another sender holds rows: wait; if it dies, its lease lapses and the next claim takes them.
                if self.stop is not None:
                    if self.stop.wait(min(1.0, self.lease / 4)):
                        return
                else:
                    threading.Event().wait(min(1.0, self.lease / 4))
                rows = self.claim(batch)

    def _start_renewing(self) -> None:
        if self._renewer is None and not self._readonly:
            self._renewer = threading.Thread(target=self._renew, name="ledger-lease", daemon=True)
            self._renewer.start()

    def _renew(self) -> None:
        """Push this sender's leases forward every third of a lease, on a connection of its own."""
        with contextlib.closing(self.pg.connect()) as db:
            while not self._renewing.wait(self.lease / 3):
                db.execute(
                    "UPDATE ledger_recipients SET lease_until = now() + make_interval(secs => %s) WHERE edition = %s "
                    "AND state = 'pending' AND lease_owner = %s AND lease_until <> 'infinity'",
                    (self.lease, self.edition, self.owner),
                )

    def mark_sent(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        now = _now()
        self._results.add("sent", (attempts, code, reply, now, now, self.owner, row_id))

    def mark_failed(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        self._results.add("failed", (attempts, code, reply, _now(), self.owner, row_id))

    def mark_deferred(self, row_id: int, attempts: int, code: int | None, reply: str) -> None:
        self._results.add("deferred", (attempts, code, reply, _now(), self.owner, row_id))

    def mark_skipped(self, row_id: int, reason: str) -> None:
        self._results.add("skipped", (reason, _now(), self.owner, row_id))

    # --- reading -------------------------------------------------------------------------------------

    def counts(self) -> Counts:
        self._results.flush()
        counts = Counts()
        for state, n in self._q(
            "SELECT state, count(*) FROM ledger_recipients WHERE edition = %s GROUP BY state", (self.edition,)
        ):
            setattr(counts, state, int(n))
        return counts

    def count_pending(self, run: int | None = None) -> int:
        self._results.flush()
        rows = self._q(
            "SELECT count(*) FROM ledger_recipients WHERE edition = %s AND state = 'pending'", (self.edition,)
        )
        return int(rows[0][0])

    def rows(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        self._results.flush()
        with self._lock:
            cur = self._db.execute(
                "SELECT id, address, state, attempts, code, reply, updated_at, sent_at FROM ledger_recipients "
                "WHERE edition = %s " + ("AND state = %s " if state else "") + "ORDER BY id LIMIT %s",
                (self.edition, state, limit) if state else (self.edition, limit),
            )
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def state_of(self, address: str) -> str | None:
        self._results.flush()
        rows = self._q(
            "SELECT state FROM ledger_recipients WHERE edition = %s AND key = %s", (self.edition, address.lower())
        )
        return str(rows[0][0]) if rows else None

    def senders(self) -> list[dict[str, Any]]:
        """Per sender (host:pid): its run's status, what it recorded, and the rows it holds right now."""
        self._results.flush()
        by: dict[str, dict[str, Any]] = {}
        for owner, status, started in self._q(
            "SELECT owner, status, started_at FROM ledger_runs WHERE edition = %s ORDER BY id", (self.edition,)
        ):
            by[str(owner)] = {"sender": owner, "status": status, "started_at": started, "sent": 0, "failed": 0,
                              "skipped": 0, "holding": 0}  # fmt: skip
        for owner, state, n in self._q(
            "SELECT done_by, state, count(*) FROM ledger_recipients WHERE edition = %s AND done_by IS NOT NULL "
            "GROUP BY done_by, state",
            (self.edition,),
        ):
            by.setdefault(str(owner), {"sender": owner, "status": "?", "started_at": "", "sent": 0, "failed": 0,
                                       "skipped": 0, "holding": 0})[str(state)] = int(n)  # fmt: skip
        for owner, n in self._q(
            "SELECT lease_owner, count(*) FROM ledger_recipients WHERE edition = %s AND state = 'pending' "
            "AND lease_until >= now() AND lease_until <> 'infinity' GROUP BY lease_owner",
            (self.edition,),
        ):
            if str(owner) in by:
                by[str(owner)]["holding"] = int(n)
        return list(by.values())

    def backup_to(self, path: Path) -> None:
        """The edition's recipients as a SQLite ledger file (for dry runs, which must not touch this one)."""
        self._results.flush()
        rows = self._q(
            "SELECT key, address, name, locale, line, state, attempts, code, reply, created_at, updated_at, sent_at "
            "FROM ledger_recipients WHERE edition = %s ORDER BY id",
            (self.edition,),
        )
        with contextlib.closing(sqlite3.connect(path)) as dest:
            dest.executescript(_SCHEMA)
            dest.executemany(
                "INSERT INTO recipients (key, address, name, locale, line, seen_run, state, attempts, code, reply, "
                "created_at, updated_at, sent_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            dest.commit()
