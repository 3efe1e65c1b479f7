"""The delivery ledger's interface and the factory that picks its backend from the settings.

`LedgerStore` is what the send loop, `newsletter status` and the scheduler use; `Ledger` provides it over
either backend (one SQLite file per edition, or one PostgreSQL database for every edition, shared by
many senders).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from ..config import Settings
from ..storage import Database, open_pg, reconnect_seconds
from .ledger import PG_NAMES, Counts, Ledger, Row, ledger_name, ledger_path, parse_ledger_name
from .options import MAILING
from .sending import FleetSending


class LedgerStore(Protocol):
    """One edition's recipients and their delivery state; outcomes are written in batches (`flush`)."""

    def describe(self) -> str: ...
    def close(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> None: ...
    def flush(self) -> None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def start_run(self, source: str, sink: str) -> int: ...
    def finish_run(self, run: int, status: str, **counts: int) -> None: ...
    def runs(self) -> list[dict[str, Any]]: ...
    def enrolment(self, run: int) -> contextlib.AbstractContextManager[bool]: ...
    def enrol_many(self, run: int, subs: Sequence[tuple[str, str, str, int]]) -> list[tuple[int, int, str]]: ...
    def batch(self) -> contextlib.AbstractContextManager[None]: ...
    def retire_unseen(self, run: int) -> int: ...
    def requeue_failed(self) -> int: ...
    def pending(
        self,
        run: int | None = None,
        batch: int = ...,
        *,
        suppressed: Callable[[list[str]], set[str]] | None = None,
        part: tuple[int, int] = ...,
    ) -> Iterator[Row]: ...
    def mark_sent(self, row_id: int, attempts: int, code: int | None, reply: str) -> None: ...
    def mark_failed(self, row_id: int, attempts: int, code: int | None, reply: str) -> None: ...
    def mark_deferred(self, row_id: int, attempts: int, code: int | None, reply: str) -> None: ...
    def mark_skipped(self, row_id: int, reason: str) -> None: ...
    def counts(self) -> Counts: ...
    def count_pending(self, run: int | None = None) -> int: ...
    def rows(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...
    def state_of(self, address: str) -> str | None: ...
    def senders(self) -> list[dict[str, Any]]: ...
    def backup_to(self, path: Path) -> None: ...


def lease_seconds(settings: Settings) -> float:
    """`[mailing] lease_seconds`: how long a claimed batch stays a sender's without renewal (default 60)."""
    return settings.options(MAILING).lease_seconds


def _database(settings: Settings) -> Database:
    wait = reconnect_seconds(settings)
    return open_pg("the ledger", settings.database_url, names=PG_NAMES, reconnect=wait)


def open_ledger(
    settings: Settings, day: date, *, readonly: bool = False, stop: threading.Event | None = None
) -> LedgerStore:
    """Edition `day`'s ledger in the backend the settings name (the SQLite file is created unless `readonly`)."""
    if settings.database_url:
        ledger = Ledger(
            _database(settings), edition=ledger_name(settings, day), lease=lease_seconds(settings), readonly=readonly
        )
        if isinstance(ledger.sending, FleetSending):
            ledger.sending.stop = stop  # a fleet's wait for other senders ends with the run
        return ledger
    return Ledger(ledger_path(settings, day), readonly=readonly)


def ledger_exists(settings: Settings, day: date) -> bool:
    """Has edition `day` ever been enrolled?"""
    if settings.database_url:
        with Ledger(_database(settings), edition=ledger_name(settings, day), readonly=True) as ledger:
            return ledger.counts().total > 0 or bool(ledger.runs())
    return ledger_path(settings, day).exists()


def pending_editions(settings: Settings) -> list[tuple[date, str]]:
    """(date, language or "") of the editions with recipients still to send (PostgreSQL): what
    `newsletter worker` joins."""
    if not settings.database_url:
        return []
    with _database(settings) as db:
        rows = db.query(
            "SELECT DISTINCT edition FROM ledger_recipients WHERE state = 'pending' "
            "AND (lease_until IS NULL OR lease_until <> 'infinity') ORDER BY edition"
        )
    return [found for (name,) in rows if (found := parse_ledger_name(str(name))) is not None]
