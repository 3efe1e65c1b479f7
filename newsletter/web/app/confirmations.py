"""Sign-ups waiting for their confirmation email, and the worker thread that sends them.

The sign-up handler only writes one row (`put`), the same row for every address, and answers. Whether
the address is new, pending or already confirmed — and so whether an email is rendered and sent at all —
is decided here, on a worker thread, a moment later: a request never takes longer, nor does the next one
on the same connection, because the address was unknown. (Rendering in the request's wake, as a
background task, made the next request on the connection ~4 ms slower for a new address than for a known
one: enough to tell who is subscribed.)

The queue is a SQLite file (`data/confirmations.sqlite`, WAL): a sign-up is on disk before the answer
goes out, so a crash or a restart loses none; the next start sends what was waiting. Each worker process
runs one thread; a row is claimed for a minute before it is handled, so two processes never send the
same email, and a process that died holding one leaves it to the others when the claim lapses. A row
that fails (the relay is down) is tried again with a growing delay, then dropped with an error line.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ...config import Settings
from ...errors import StorageError
from ...storage import open_sqlite

log = logging.getLogger("newsletter.web")

DEFAULT_PATH = "data/confirmations.sqlite"
POLL = 0.5  # seconds between looks at the queue (and the least time a row waits: off the request's wake)
CLAIM = 60.0  # seconds a claimed row is this process's
MAX_ATTEMPTS = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signups (
    id          INTEGER PRIMARY KEY,
    address     TEXT NOT NULL,
    name        TEXT NOT NULL,
    lang        TEXT NOT NULL,
    source      TEXT NOT NULL,
    due         REAL NOT NULL,     -- unix time from which it may be handled
    attempts    INTEGER NOT NULL DEFAULT 0,
    claimed_by  TEXT,
    last_error  TEXT,
    timezone    TEXT NOT NULL DEFAULT '',  -- the form's optional time zone (an IANA name, checked later)
    newsletters TEXT NOT NULL DEFAULT ''   -- the newsletters ticked on the form, comma-separated ('': the default)
);
"""


@dataclass(frozen=True, slots=True)
class SignUp:
    address: str
    name: str
    lang: str
    source: str  # the form it came from (recorded with the consent)
    timezone: str = ""  # as typed into the form; the reader base keeps it only when it is an IANA name
    newsletters: tuple[str, ...] = ()  # the public newsletters ticked on the form; empty: the default one


class ConfirmationQueue:
    """`put` from the request; `start(handle)` runs the worker thread that calls `handle` per sign-up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # A damaged queue file is refused like any store (never read as an empty queue).
        self._db = open_sqlite("the confirmation queue", path, schema=_SCHEMA)
        columns = {str(r[1]) for r in self._db.query("SELECT * FROM pragma_table_info('signups')")}
        for column in ("timezone", "newsletters"):  # a queue of an older version
            if column not in columns:
                self._db.execute(f"ALTER TABLE signups ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner = f"{os.getpid()}:{id(self)}"

    @classmethod
    def for_settings(cls, settings: Settings) -> ConfirmationQueue:
        return cls((settings.root / DEFAULT_PATH).resolve())

    def put(self, signup: SignUp) -> None:
        self._db.execute(
            "INSERT INTO signups (address, name, lang, source, due, timezone, newsletters) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                signup.address,
                signup.name,
                signup.lang,
                signup.source,
                time.time() + POLL,
                signup.timezone,
                ",".join(signup.newsletters),
            ),
        )

    def waiting(self) -> int:
        return int(self._db.scalar("SELECT count(*) FROM signups"))

    def start(self, handle: Callable[[SignUp], None]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(handle,), name="confirmations", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._db.close()

    # --- the worker -----------------------------------------------------------------------------------

    def _run(self, handle: Callable[[SignUp], None]) -> None:
        while not self._stop.wait(POLL):
            try:
                for row_id, signup, attempts in self._claim():
                    self._handle(handle, row_id, signup, attempts)
            except StorageError as exc:  # a locked or full disk: the rows wait for the next look
                log.error("confirmation queue %s: %s", self.path, exc)

    def _claim(self) -> Iterator[tuple[int, SignUp, int]]:
        now = time.time()
        with self._db.transaction() as db:
            rows = db.query(
                "SELECT id, address, name, lang, source, attempts, timezone, newsletters FROM signups WHERE due <= ? "
                "ORDER BY due "
                "LIMIT 20",
                (now,),
            )
            db.many(
                "UPDATE signups SET due = ?, claimed_by = ? WHERE id = ?",
                [(now + CLAIM, self._owner, r[0]) for r in rows],
            )
        for row in rows:
            letters = tuple(n for n in str(row[7] or "").split(",") if n)
            yield int(row[0]), SignUp(row[1], row[2], row[3], row[4], str(row[6] or ""), letters), int(row[5])

    def _handle(self, handle: Callable[[SignUp], None], row_id: int, signup: SignUp, attempts: int) -> None:
        try:
            handle(signup)
        except Exception as exc:  # the relay, the store: try again later, never lose the thread
            attempts += 1
            if attempts >= MAX_ATTEMPTS:
                log.error("confirmation email not sent after %d attempts, dropped: %s", attempts, exc)
            else:
                self._db.execute(
                    "UPDATE signups SET due = ?, attempts = ?, last_error = ?, claimed_by = NULL WHERE id = ?",
                    (time.time() + 30 * 2**attempts, attempts, str(exc)[:500], row_id),
                )
                log.warning("confirmation email not sent (attempt %d), trying again later: %s", attempts, exc)
                return
        self._db.execute("DELETE FROM signups WHERE id = ?", (row_id,))
