"""Several sender processes over one mailing: every core personalizes and talks SMTP.

One Python process is one core: past a couple of thousand messages a second to a fast relay, the
sender's CPU, not the relay, sets the pace. `send --processes N` (or `[mailing] processes`) splits the
delivery phase of a mailing over N processes forked from the one that enrolled the list, so each child
starts with the edition already rendered and the personalizer ready.

    parent: build, enrol, count ──fork──▶ child k: its own ledger connection, relay connections,
            wait, add up the results            suppression list and send loop, rows of part k

How the children share the ledger:

- **SQLite**: each child takes the pending rows whose id is `k` modulo N (`Ledger.pending(part=…)`), so
  no row is ever offered to two processes; each writes its outcomes through its own connection in its
  own ~50 ms batches (the file is in WAL mode; a batch waits for the write lock at most for another
  batch). The edition's lock, held by the parent, covers the children (they inherit it).
- **PostgreSQL**: each child is one more sender of the mailing, claiming leased batches like a sender
  on another machine (`ledger_pg.py`).

The crash bound is the single process's, per process: a child that dies resends at most its messages
in flight plus one batch of records on the next run. `stop` (SIGTERM, Ctrl-C) reaches every child; the
rate limit is shared out evenly.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from multiprocessing.connection import Connection, wait
from typing import Any

from .. import metrics
from ..config import Settings
from ..errors import DeliveryError, NewsletterError, PausedError
from .breaker import Breaker
from .health import PAUSED
from .ledger import Row
from .loop import Delivery
from .options import MailingOptions
from .progress import Progress, SharedCounts
from .ratelimit import RateLimiter
from .sending import FleetSending
from .sinks.base import Envelope, Sink
from .stores import LedgerStore, open_ledger
from .suppression import Suppression, open_suppression

_PR_SET_PDEATHSIG = 1  # prctl(2)
MIN_PER_PROCESS = 500  # below this many messages a process more costs more than it gives

# The rows of one part: (ledger, suppression list, send loop, limit, (k, n)) → the part's jobs.
Feed = Callable[[LedgerStore, Suppression, Delivery, "int | None", tuple[int, int]], Iterator[tuple[Row, Envelope]]]


def process_count(requested: int | None, options: MailingOptions, *, smtp: bool, pending: int) -> int:
    """How many sender processes: asked for (flag, then `[mailing] processes`), else one per core for SMTP.

    The default never starts more processes than there are MIN_PER_PROCESS messages to send.
    """
    asked = requested if requested else options.processes
    if asked:
        return max(1, asked)
    if not smtp:
        return 1
    return max(1, min(os.cpu_count() or 1, pending // MIN_PER_PROCESS))


def claim_size(pending: int, n: int) -> int:
    """Rows fetched (SQLite) or claimed (PostgreSQL) at a time by one of n processes: a quarter of its
    share, 50 to 500, so that a small mailing is still shared out between processes and machines."""
    return max(50, min(500, pending // (4 * n)))


@dataclass
class Plan:
    """What every child needs. Inherited through fork, never pickled: the personalizer comes ready."""

    settings: Settings
    day: date
    options: MailingOptions
    rate: float
    limit: int | None
    stop: threading.Event
    feed: Feed
    sink: Callable[[], Sink]  # a child's own sink (its connections, the run's signing)
    labels: tuple[str, str, str]  # the metrics' newsletter, edition, language
    owner: str = ""  # PostgreSQL: the parent's sender name; child k is `<owner>+<k>` (status adds them up)
    breaker: Callable[[], Breaker | None] = lambda: None  # each child's circuit breaker
    counts: SharedCounts | None = None  # where each child counts its messages for the parent's progress bar


@dataclass
class PartResult:
    """What a child did, sent back to the parent."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    retried: int = 0
    suppressed: int = 0
    throttles: int = 0
    lowest: float | None = None
    final: float | None = None
    failures: list[str] = field(default_factory=list)
    fatal: str | None = None  # the DeliveryError that ended the part
    fatal_status: str = ""
    paused: bool = False  # that error was the circuit breaker's pause
    crash: str | None = None  # anything else: a bug, a dead process


def _part_limit(limit: int | None, k: int, n: int) -> int | None:
    return None if limit is None else limit // n + (1 if k < limit % n else 0)


def _child(plan: Plan, k: int, n: int, out: Connection) -> None:
    """Deliver part k of n; always answers on `out`. SIGTERM (from the parent) or SIGINT stops it."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # the parent tells the user what is going on; here, just stop
        signal.signal(sig, lambda *_: stop.set())
    _stop_with_parent(stop)
    metrics.after_fork()
    result = PartResult()
    try:
        _deliver_part(plan, k, n, stop, result)
    except NewsletterError as exc:
        result.fatal, result.fatal_status = str(exc), result.fatal_status or "error"
    except BaseException as exc:  # reported to the parent, which stops the run with it
        result.crash = f"{type(exc).__name__}: {exc}"
    out.send(result)
    out.close()


def _stop_with_parent(stop: threading.Event) -> None:
    """SIGTERM when the parent dies (Linux): a killed sender's processes finish their messages in flight
    and stop, as its threads would have, instead of sending on without it."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        stop.set()


def _deliver_part(plan: Plan, k: int, n: int, stop: threading.Event, result: PartResult) -> None:
    with contextlib.ExitStack() as stack:
        ledger = stack.enter_context(open_ledger(plan.settings, plan.day, stop=stop))
        sending = getattr(ledger, "sending", None)
        if isinstance(sending, FleetSending) and plan.owner:  # its own leases, counted as the parent's sender
            sending.owner = f"{plan.owner}+{k + 1}"
        suppression = open_suppression(plan.settings)
        stack.callback(suppression.close)
        sink = plan.sink()
        sink.open()
        stack.callback(sink.close)
        limiter = RateLimiter(plan.rate / n)
        delivery = Delivery(
            ledger=ledger,
            sink=sink,
            limiter=limiter,
            options=plan.options,
            suppression=suppression,
            stop=stop,
            progress=Progress(False, 0, "", report=plan.counts.reporter(k) if plan.counts else None),
            day=plan.day,
            breaker=plan.breaker(),
        )
        counter = metrics.message_counter(*plan.labels, ledger.count_pending(None) // n)
        stack.callback(counter.close)
        delivery.stats.hook = counter
        try:
            delivery.run(plan.feed(ledger, suppression, delivery, _part_limit(plan.limit, k, n), (k, n)))
        finally:
            s = delivery.stats
            result.sent, result.failed, result.deferred = s.sent, s.failed, s.deferred
            result.retried, result.suppressed, result.failures = s.retried, s.suppressed, s.failures
            result.throttles, result.lowest, result.final = limiter.throttles, limiter.lowest, limiter.rate
        if delivery.fatal is not None:
            result.fatal, result.fatal_status = str(delivery.fatal), delivery.fatal_status
            if isinstance(delivery.fatal, PausedError):  # the others see it within PAUSE_CHECK messages
                result.paused = True
                ledger.set_meta(PAUSED, str(delivery.fatal))


def deliver_in_processes(plan: Plan, n: int, progress: Progress | None = None) -> list[PartResult]:
    """Fork n children, one part each; return when all have ended (a stop reaches every one as SIGTERM).
    `progress` shows what the children counted into `plan.counts`, every 0.2 s and once all have ended."""
    ctx = multiprocessing.get_context("fork")  # the children need the parent's rendered edition, not a pickle
    children: list[tuple[Any, Connection]] = []
    stopped = False
    try:
        for k in range(n):
            receive, send = ctx.Pipe(duplex=False)
            child = ctx.Process(target=_child, args=(plan, k, n, send), name=f"newsletter-send-{k}")
            child.start()
            send.close()
            children.append((child, receive))
        results: dict[int, PartResult] = {}
        waiting: dict[Any, int] = {receive: k for k, (_, receive) in enumerate(children)}
        while waiting:
            if plan.stop.is_set() and not stopped:
                stopped = _stop(children)
            if progress is not None and plan.counts is not None:
                progress.show(plan.counts.total())
            for ready in wait(list(waiting), timeout=0.2):
                k = waiting.pop(ready)
                try:
                    results[k] = children[k][1].recv()
                except EOFError:  # killed before it could answer
                    children[k][0].join()
                    results[k] = PartResult(crash=f"sender process {k + 1} of {n} died ({_exit(children[k][0])})")
        if progress is not None and plan.counts is not None:
            progress.show(plan.counts.total())  # every child has ended: its last counts are in
        return [results[k] for k in range(n)]
    finally:
        if not stopped:
            _stop(children)  # only those still running: the parent is leaving early
        for child, receive in children:
            child.join()
            receive.close()


def _stop(children: list[tuple[Any, Connection]]) -> bool:
    for child, _ in children:
        if child.is_alive() and child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
    return True


def _exit(child: Any) -> str:
    code = child.exitcode
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"exit status {code}"


def combined_failure(results: list[PartResult]) -> tuple[DeliveryError | None, str]:
    """The error that ends the run when a part ended with one, and the run's status for it."""
    for r in results:
        if r.crash is not None:
            return DeliveryError(f"{r.crash}; its messages stay pending, rerun to send them"), "error"
    for r in results:
        if r.paused and r.fatal is not None:
            return PausedError(r.fatal), "paused"
    for r in results:
        if r.fatal is not None:
            return DeliveryError(r.fatal), r.fatal_status or "error"
    return None, ""
