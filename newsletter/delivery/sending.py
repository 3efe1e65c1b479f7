"""How a ledger hands out rows and writes outcomes: the one thing its two backends really do differently.

`SoloSending` (a SQLite file): one sender at a time (`EditionLock`), rows read in list order a page at a
time, outcomes written by the send loop's own thread in one transaction per window.

`FleetSending` (PostgreSQL): several `newsletter send` processes, on any machines, share one edition:

- **Enrolment happens once.** The first sender takes the edition's advisory lock and enrols the list; the
  others wait for it, then join. A sender enrols only when nothing of the edition is pending (a first run,
  or a rerun after the mailing finished); a run that joins a mailing under way leaves the list alone.
- **Rows are claimed in batches** with `SELECT … FOR UPDATE SKIP LOCKED`, each claim a *lease* that the
  database's clock ends (`[mailing] lease_seconds`, default 60). A sender renews its leases — and its
  heartbeat, `ledger_runs.seen_at`, which `newsletter status` reads to tell a lost sender — while it
  works; one that dies stops renewing and another sender takes the rows when the lease lapses.
  Message-IDs are derived from the edition and the address, so a resent message carries the same one.
- **Results are written behind the send loop** on a connection of their own, one statement per kind of
  outcome for a whole window (`unnest` of arrays): at most one window of records is lost with a sender.
- **The database may go away** (a restart, a failover): every connection waits for it and reconnects
  (`[database] reconnect_seconds`); a claim or a window of results is simply run again.

A sender that runs out of rows to claim keeps waiting while other senders still hold leases, so every
sender returns only when the whole mailing is done (or its leases had to be taken over and were).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ..errors import StorageError
from ..storage import Database, lock_key, this_owner
from .batching import Result, runs_of

CLAIM_BATCH = 500  # rows per claim: a few seconds of work at relay speeds, so a fleet shares a mailing evenly
DEFAULT_LEASE = 60.0


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    address: str
    name: str
    attempts: int
    suppressed: bool | None = None  # looked up with the row (a claim, or the batch's list query); None: ask


@dataclass
class Counts:
    pending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.sent + self.failed + self.skipped


Suppressed = Callable[[list[str]], set[str]] | None


class Sending(Protocol):
    """What a ledger's backend decides: enrolment, handing out rows, writing outcomes, the fleet's view."""

    owner: str

    def started(self, run: int) -> None: ...
    def enrolment(self, run: int) -> contextlib.AbstractContextManager[bool]: ...
    def enrol_rows(self, run: int, rows: Sequence[tuple[str, str, str, str, int]]) -> None: ...
    def pending(self, run: int | None, batch: int, suppressed: Suppressed, part: tuple[int, int]) -> Iterator[Row]: ...
    def write(self, items: list[Result]) -> None: ...
    def senders(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


_ENROL_SQL = (
    "INSERT INTO recipients (key, address, name, locale, line, seen_run, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET name = excluded.name, locale = excluded.locale, "
    "line = excluded.line, seen_run = excluded.seen_run, "
    "state = CASE WHEN recipients.state = 'skipped' THEN 'pending' ELSE recipients.state END "
    "WHERE recipients.seen_run != excluded.seen_run"
)

_SOLO_RESULTS = {
    "sent": "UPDATE recipients SET state = 'sent', attempts = attempts + ?, code = ?, reply = ?, sent_at = ?, "
    "updated_at = ? WHERE id = ?",
    "failed": "UPDATE recipients SET state = 'failed', attempts = attempts + ?, code = ?, reply = ?, updated_at = ? "
    "WHERE id = ?",
    "deferred": "UPDATE recipients SET attempts = attempts + ?, code = ?, reply = ?, updated_at = ? WHERE id = ?",
    "skipped": "UPDATE recipients SET state = 'skipped', reply = ?, updated_at = ? WHERE id = ?",
}


class SoloSending:
    """A SQLite ledger file: one sender, rows in list order, outcomes written on the caller's thread."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.owner = this_owner()

    def started(self, run: int) -> None:
        pass

    @contextlib.contextmanager
    def enrolment(self, run: int) -> Iterator[bool]:
        """Every run enrols the list here: one process at a time sends an edition (`EditionLock`)."""
        yield True

    def enrol_rows(self, run: int, rows: Sequence[tuple[str, str, str, str, int]]) -> None:
        now = now_text()
        self.db.many(_ENROL_SQL, [(*row, run, now) for row in rows])

    def pending(self, run: int | None, batch: int, suppressed: Suppressed, part: tuple[int, int]) -> Iterator[Row]:
        """Pending rows in list order, fetched a batch at a time (rows change state while we iterate).

        `suppressed(addresses)` answers which are on the suppression list, asked for 200 rows at a time just
        before they are handed on (so an unsubscribe mid-run counts) and written into `Row.suppressed`.
        `part=(k, n)`: only the rows whose id is k modulo n (sender process k of n, processes.py).
        """
        by_run = "AND seen_run = :run " if run is not None else ""
        by_part = "AND id % :n = :k " if part[1] > 1 else ""
        sql = (
            "SELECT id, address, name, attempts FROM recipients WHERE state = 'pending' AND id > :after "
            f"{by_run}{by_part}ORDER BY id LIMIT :batch"
        )
        after = 0
        while True:
            rows = self.db.query(sql, {"after": after, "run": run, "batch": batch, "k": part[0], "n": part[1]})
            if not rows:
                return
            for i in range(0, len(rows), 200):
                some = rows[i : i + 200]
                blocked = suppressed([r[1] for r in some]) if suppressed is not None else None
                for row in some:
                    yield Row(row[0], row[1], row[2], row[3], None if blocked is None else row[1] in blocked)
            after = rows[-1][0]

    def write(self, items: list[Result]) -> None:
        with self.db.transaction():
            for kind, group in runs_of(items):
                self.db.many(_SOLO_RESULTS[kind], group)

    def senders(self) -> list[dict[str, Any]]:
        return []  # one sender at a time: the per-sender view is the runs table

    def close(self) -> None:
        pass


# One statement per kind of outcome for a whole flush: the parameters of each result, column by column,
# as arrays (`unnest`), so 300 outcomes are one round trip, not 300. The columns follow `Ledger.mark_*`;
# the first parameter is this sender (`done_by`, or the holder of a row given up on for this run).
_FLEET_RESULTS = {
    "sent": "UPDATE ledger_recipients r SET state = 'sent', attempts = r.attempts + v.a, code = v.c, reply = v.r, "
    "sent_at = v.t, updated_at = v.t, done_by = ?, lease_owner = NULL, lease_until = NULL "
    "FROM unnest(?::int[], ?::int[], ?::text[], ?::text[], ?::text[], ?::bigint[]) AS v(a, c, r, t, t2, id) "
    "WHERE r.id = v.id",
    "failed": "UPDATE ledger_recipients r SET state = 'failed', attempts = r.attempts + v.a, code = v.c, reply = v.r, "
    "updated_at = v.t, done_by = ?, lease_owner = NULL, lease_until = NULL "
    "FROM unnest(?::int[], ?::int[], ?::text[], ?::text[], ?::bigint[]) AS v(a, c, r, t, id) WHERE r.id = v.id",
    # Given up on for this run: still pending, held until a later run releases it (see `enrolment`).
    "deferred": "UPDATE ledger_recipients r SET attempts = r.attempts + v.a, code = v.c, reply = v.r, "
    "updated_at = v.t, lease_owner = ?, lease_until = 'infinity' "
    "FROM unnest(?::int[], ?::int[], ?::text[], ?::text[], ?::bigint[]) AS v(a, c, r, t, id) WHERE r.id = v.id",
    "skipped": "UPDATE ledger_recipients r SET state = 'skipped', reply = v.r, updated_at = v.t, done_by = ?, "
    "lease_owner = NULL, lease_until = NULL FROM unnest(?::text[], ?::text[], ?::bigint[]) AS v(r, t, id) "
    "WHERE r.id = v.id",
}

_FLEET_ENROL = (
    "INSERT INTO ledger_recipients (edition, key, address, name, locale, line, seen_run, created_at) "
    "SELECT ?, key, address, name, locale, line, ?, ? FROM enrol_stage "
    "ON CONFLICT (edition, key) DO UPDATE SET name = excluded.name, locale = excluded.locale, "
    "line = excluded.line, seen_run = excluded.seen_run, "
    "state = CASE WHEN ledger_recipients.state = 'skipped' THEN 'pending' ELSE ledger_recipients.state END "
    "WHERE ledger_recipients.seen_run != excluded.seen_run"
)

_MINE = "edition = ? AND state = 'pending' AND lease_owner = ? AND lease_until <> 'infinity'"


class FleetSending:
    """PostgreSQL: claims with leases, a heartbeat, results written behind on a connection of their own."""

    def __init__(self, db: Database, edition: str, *, lease: float, owner: str | None, readonly: bool) -> None:
        self.db = db
        self.edition = edition
        self.lease = lease
        self.owner = owner or this_owner()
        self.run: int | None = None
        self.stop: threading.Event | None = None  # set by the send loop: ends a wait for other senders
        self._readonly = readonly
        self._writer: Database | None = None  # outcomes: a claim never waits for a write to commit
        self._renewing = threading.Event()
        self._renewer: threading.Thread | None = None

    def _another(self) -> Database:
        return Database(self.db.store, self.db.where, self.db.connector, postgres=True, reconnect=self.db.reconnect)

    def started(self, run: int) -> None:
        """From here on this sender is `host:pid/run` (its leases, results and heartbeat say so)."""
        self.run = run
        self.owner = f"{self.owner.split('/')[0]}/{run}"
        self.db.execute("UPDATE ledger_runs SET owner = ?, seen_at = now() WHERE id = ?", (self.owner, run))

    @contextlib.contextmanager
    def enrolment(self, run: int) -> Iterator[bool]:
        """Hold the edition's enrolment lock; yields whether this run should enrol the list.

        Only when nothing of the edition is pending: a sender joining a mailing under way must not
        re-enrol (that would be a million writes per sender). Rows a finished run gave up on (deferred)
        are released here, so this run retries them.
        """
        key = lock_key(f"enrol:{self.edition}")
        self.db.query("SELECT pg_advisory_lock(?)", (key,))
        try:
            self.db.execute(
                "UPDATE ledger_recipients SET lease_owner = NULL, lease_until = NULL "
                "WHERE edition = ? AND state = 'pending' AND lease_until = 'infinity'",
                (self.edition,),
            )
            busy = self.db.one(
                "SELECT 1 FROM ledger_recipients WHERE edition = ? AND state = 'pending' LIMIT 1", (self.edition,)
            )
            yield busy is None
        finally:
            self.db.query("SELECT pg_advisory_unlock(?)", (key,))

    def enrol_rows(self, run: int, rows: Sequence[tuple[str, str, str, str, int]]) -> None:
        """The rows go in by COPY into a session-local staging table, then one upsert."""
        with self.db.raw() as conn:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS enrol_stage (key TEXT, address TEXT, name TEXT, locale TEXT, "
                "line INTEGER)"
            )
            conn.execute("TRUNCATE enrol_stage")
            with conn.cursor().copy("COPY enrol_stage (key, address, name, locale, line) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        self.db.execute(_FLEET_ENROL, (self.edition, run, now_text()))

    def claim(self, n: int = CLAIM_BATCH, after: int = 0) -> list[Row]:
        """Lease up to `n` pending rows no live sender holds, in list order (from row id `after` on), each
        looked up in the suppression list at the same moment (one query for the batch, not one per row)."""
        self._start_renewing()
        rows = self.db.query(
            "UPDATE ledger_recipients SET lease_owner = ?, lease_until = now() + make_interval(secs => ?) "
            "WHERE id IN (SELECT id FROM ledger_recipients WHERE edition = ? AND state = 'pending' AND id > ? "
            "AND (lease_until IS NULL OR lease_until < now()) ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) "
            "RETURNING id, address, name, attempts, "
            "EXISTS (SELECT 1 FROM suppression s WHERE s.key = ledger_recipients.key)",
            (self.owner, self.lease, self.edition, after, n),
        )
        return [Row(int(r[0]), str(r[1]), str(r[2]), int(r[3]), bool(r[4])) for r in sorted(rows)]

    def held_elsewhere(self) -> int:
        """Pending rows other senders hold on a live lease (rows given up on for this run do not count)."""
        return int(
            self.db.scalar(
                "SELECT count(*) FROM ledger_recipients WHERE edition = ? AND state = 'pending' "
                "AND lease_until >= now() AND lease_until <> 'infinity' AND lease_owner IS DISTINCT FROM ?",
                (self.edition, self.owner),
            )
        )

    def pending(self, run: int | None, batch: int, suppressed: Suppressed, part: tuple[int, int]) -> Iterator[Row]:
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
                if (self.stop or self._renewing).wait(min(1.0, self.lease / 4)) and self.stop is not None:
                    return  # the run was told to stop (`_renewing` is set only once the ledger closes)
                rows = self.claim(batch)

    def _start_renewing(self) -> None:
        if self._renewer is None and not self._readonly:
            self._renewer = threading.Thread(target=self._renew, name="ledger-lease", daemon=True)
            self._renewer.start()

    def _renew(self) -> None:
        """Push this sender's leases and heartbeat forward every third of a lease, on a connection of its own."""
        with self._another() as db:
            while not self._renewing.wait(self.lease / 3):
                # A failed renewal (a deadlock with a results write, a server gone past the wait) is tried
                # again next time: the send loop, not this thread, decides when the run stops.
                with contextlib.suppress(StorageError):
                    db.execute(
                        f"UPDATE ledger_recipients SET lease_until = now() + make_interval(secs => ?) WHERE {_MINE}",
                        (self.lease, self.edition, self.owner),
                    )
                    if self.run is not None:
                        db.execute("UPDATE ledger_runs SET seen_at = now() WHERE id = ?", (self.run,))

    def write(self, items: list[Result]) -> None:
        if self._writer is None:
            self._writer = self._another()
        self._writer.atomic(lambda db: self._apply(db, items))

    def _apply(self, db: Database, items: list[Result]) -> None:
        for kind, group in runs_of(items):
            if len({params[-1] for params in group}) < len(group):  # one row twice: apply them in order
                for params in group:
                    db.execute(_FLEET_RESULTS[kind], [self.owner, *([value] for value in params)])
            else:
                db.execute(_FLEET_RESULTS[kind], [self.owner, *(list(column) for column in zip(*group, strict=True))])

    def senders(self) -> list[dict[str, Any]]:
        """Per sender (host:pid/run): its run's status — "lost (last seen …)" when a running sender's
        heartbeat is older than a lease and a half —, what it recorded, and the rows it holds right now."""
        by: dict[str, dict[str, Any]] = {}
        for owner, status, started, seen, lost in self.db.query(
            "SELECT owner, status, started_at, seen_at, status = 'running' AND "
            "coalesce(seen_at, started_at::timestamptz) < now() - make_interval(secs => ?) "
            "FROM ledger_runs WHERE edition = ? ORDER BY id",
            (self.lease * 1.5, self.edition),
        ):
            when = (seen or datetime.fromisoformat(str(started))).astimezone(UTC).isoformat(timespec="seconds")
            by[str(owner)] = _sender(owner, f"lost (last seen {when})" if lost else str(status), started)
        for owner, state, n in self.db.query(
            "SELECT done_by, state, count(*) FROM ledger_recipients WHERE edition = ? AND done_by IS NOT NULL "
            "GROUP BY done_by, state",
            (self.edition,),
        ):
            entry = by.setdefault(_sender_of(str(owner), by), _sender(owner, "?", ""))
            entry[str(state)] = entry.get(str(state), 0) + int(n)  # a sender's processes count as that sender
        for owner, n in self.db.query(
            "SELECT lease_owner, count(*) FROM ledger_recipients WHERE edition = ? AND state = 'pending' "
            "AND lease_until >= now() AND lease_until <> 'infinity' GROUP BY lease_owner",
            (self.edition,),
        ):
            if _sender_of(str(owner), by) in by:
                by[_sender_of(str(owner), by)]["holding"] += int(n)
        return list(by.values())

    def close(self) -> None:
        """Stop renewing, close the writer, hand back the rows claimed but not sent."""
        self._renewing.set()
        if self._renewer is not None:
            self._renewer.join()
        if self._writer is not None:
            self._writer.close()
        if not self._readonly:
            self.db.execute(
                f"UPDATE ledger_recipients SET lease_owner = NULL, lease_until = NULL WHERE {_MINE}",
                (self.edition, self.owner),
            )


def _sender(owner: object, status: str, started: object) -> dict[str, Any]:
    return {"sender": owner, "status": status, "started_at": started, "sent": 0, "failed": 0, "skipped": 0,
            "holding": 0}  # fmt: skip


def _sender_of(owner: str, runs: dict[str, Any]) -> str:
    """`host:pid/run+k` (process k of that run's sender, processes.py) → `host:pid/run` when that run is known."""
    base = owner.rpartition("+")[0]
    return base if base and base in runs else owner
