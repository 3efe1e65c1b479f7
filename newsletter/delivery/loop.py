"""The delivery loop: workers take messages from a due-time queue, so no message waits on another.

    ledger pending rows ──personalize──▶ fresh (list order, bounded)  ─┐
                                                                        ├──▶ workers ──▶ sink
                          deferred (a heap by due time)  ◀── 4xx ───────┘        │
                                                                  ledger ◀── sent / failed / left pending

A deferred message goes back into the queue with its due time (exponential backoff with jitter) and the
worker moves on to the next message at once: a due retry comes first, then the next fresh message, so
retries interleave with first tries and a connection never sits idle through a backoff. A message whose
connection broke under it, or was closed with a 421, had no verdict: its first retry is due at once, on
whichever connection is free. A message leaves the queue when it is sent, refused for good, or past
`max_attempts` tries or `max_defer` seconds since its first try — then it stays pending in the ledger for
the next run, as does every message still waiting when the run is stopped.

Some faults end the run at once, because no retry can help: a sink that cannot write locally
(`WriteError`, naming the path), a server that cannot be reached after a message's tries, and a relay that
fails `stop_after_same_failures` messages in a row in the same way (the last reply is in the error). The
rest stay pending; nothing is lost.

A local sink (`sink.inline`: the null sink, memory) is sent to from the loop's own thread, through the
same queue: for a message that costs microseconds to deliver, waking a worker would cost more than the
send — on a million-recipient null-sink run, about half the time.

At most `sink.concurrency` messages are ever in flight, each outcome committed before its worker takes
the next one — the most a crash can duplicate.
"""

from __future__ import annotations

import heapq
import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

from ..errors import DeliveryError, PausedError, WriteError
from .breaker import Breaker
from .ledger import Row
from .options import MailingOptions
from .progress import Progress
from .ratelimit import RateLimiter
from .sinks.base import Envelope, Outcome, Sink
from .stores import LedgerStore
from .suppression import Suppression, at_send_source

_BAD_MAILBOX = re.compile(r"^\d{3}[ -]5\.1\.\d{1,3}\b")  # RFC 3463: 5.1.x, the address itself is wrong
_PERSONAL = re.compile(r"<[^>]*>|\S+@\S+|\d+")  # what differs between two replies that say the same thing
MAX_PROBLEMS = 200  # failures reported in full; beyond that only counted
RETRY_BACKLOG = 2000  # deferred messages held in memory before fresh ones wait (bounds memory)


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    deferred: int = 0  # left pending after transient errors
    retried: int = 0
    suppressed: int = 0
    bounced: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hook: Callable[[str, int], None] | None = None  # each count also goes here (the Prometheus counters)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)
        if self.hook is not None:
            self.hook(name, n)


@dataclass(order=True)
class Job:
    due: float
    seq: int
    row: Row = field(compare=False)
    envelope: Envelope = field(compare=False)
    attempts: int = field(default=0, compare=False)  # tries in this run
    first: float = field(default=0.0, compare=False)  # monotonic time of the first try
    last: Outcome | None = field(default=None, compare=False)


class DueQueue:
    """Fresh messages in list order and deferred ones by due time; thread-safe.

    `take` hands out a due retry first, else the next fresh message, else waits for whichever comes
    first; it returns None when everything is done (no fresh, no deferred, none in flight), or at once
    when the queue is cancelled or `stop` is set.
    """

    def __init__(self, stop: threading.Event, *, fresh_limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._stop = stop
        self._fresh_limit = fresh_limit
        self._clock = clock
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # workers wait here
        self._space = threading.Condition(self._lock)  # the feeder waits here
        self._fresh: deque[Job] = deque()
        self._retry: list[Job] = []
        self._busy = 0
        self._paused_until = 0.0  # the server could not be reached: only its probe (a retry) goes until then
        self._closed = False
        self._cancelled = False
        self._seq = itertools.count()

    def _ended(self) -> bool:
        return self._cancelled or self._stop.is_set()

    def put(self, row: Row, envelope: Envelope) -> bool:
        """Queue a fresh message, waiting while enough are queued; False when the run is ending."""
        with self._lock:
            while len(self._fresh) >= self._fresh_limit or len(self._retry) >= RETRY_BACKLOG:
                if self._ended():
                    return False
                self._space.wait(0.2)
            if self._ended():
                return False
            self._fresh.append(Job(0.0, next(self._seq), row, envelope))
            self._work.notify()
            return True

    def full(self) -> bool:
        """Whether `put` would wait now."""
        with self._lock:
            return len(self._fresh) >= self._fresh_limit or len(self._retry) >= RETRY_BACKLOG

    def take(self, *, block: bool = True) -> Job | None:
        """The next job; None when everything is done — or, with `block=False`, when none is ready now."""
        # Waits are short (0.2 s at most) so a stop or a retry falling due is seen without a wake-up call.
        with self._lock:
            while True:
                if self._ended():
                    return None
                now = self._clock()
                if self._retry and self._retry[0].due <= now:
                    job = heapq.heappop(self._retry)
                elif self._fresh and now >= self._paused_until:
                    job = self._fresh.popleft()
                    self._space.notify()
                elif self._closed and not self._fresh and not self._retry and self._busy == 0:
                    self._work.notify_all()
                    return None
                elif not block:
                    return None
                else:
                    wait = min(0.2, self._retry[0].due - now) if self._retry else 0.2
                    if self._fresh:
                        wait = min(wait, self._paused_until - now)
                    self._work.wait(max(wait, 0.001))
                    continue
                self._busy += 1
                return job

    def defer(self, job: Job, delay: float, *, pause: bool = False) -> None:
        """Back into the queue, due in `delay` s; `pause`: nothing fresh goes before it (the server is away)."""
        with self._lock:
            job.due = self._clock() + delay
            job.seq = next(self._seq)
            if pause:
                self._paused_until = max(self._paused_until, job.due)
            heapq.heappush(self._retry, job)
            self._busy -= 1
            self._work.notify()

    def done(self) -> None:
        with self._lock:
            self._busy -= 1
            if self._closed and self._busy == 0 and not self._fresh and not self._retry:
                self._work.notify_all()

    def close(self) -> None:
        """No more fresh messages will come."""
        with self._lock:
            self._closed = True
            self._work.notify_all()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            self._work.notify_all()
            self._space.notify_all()

    def waiting(self) -> list[Job]:
        """The deferred messages still queued (after the workers have stopped)."""
        with self._lock:
            jobs, self._retry = sorted(self._retry), []
            return jobs


def _no_verdict(outcome: Outcome) -> bool:
    """Whether a transient failure said nothing about the message: its connection broke mid-transaction,
    or the server closes that connection (421). Then another connection may take it at once; a refusal
    of the message itself (451 greylisting, 452…) waits its backoff. Not at connect: that is the server."""
    return outcome.reachable and outcome.stage != "connect" and (outcome.code is None or outcome.code == 421)


def _same_way(outcome: Outcome) -> tuple[str, int | None, str]:
    """What two failures must share to count as the same: stage, code, the reply without names and numbers."""
    return (outcome.stage, outcome.code, _PERSONAL.sub("", outcome.reply)[:120])


class Delivery:
    """Hands messages to the sink from `sink.concurrency` workers and records every outcome."""

    def __init__(
        self,
        *,
        ledger: LedgerStore,
        sink: Sink,
        limiter: RateLimiter,
        options: MailingOptions,
        suppression: Suppression,
        stop: threading.Event,
        progress: Progress,
        day: date,
        breaker: Breaker | None = None,
    ) -> None:
        self.ledger = ledger
        self.breaker = breaker
        self.sink = sink
        self.limiter = limiter
        self.options = options
        self.suppression = suppression
        self.stop = stop
        self.progress = progress
        self.day = day
        self.stats = Stats()
        self.fatal: DeliveryError | None = None
        self.fatal_status = ""  # the run's status in the ledger when `fatal` ended it
        self.crash: BaseException | None = None
        self._abort = threading.Event()
        self.queue = DueQueue(stop, fresh_limit=max(2, sink.concurrency * 2))
        self._streak_lock = threading.Lock()
        self._streak: tuple[tuple[str, int | None, str], int] | None = None

    def _give_up(self, error: DeliveryError, status: str) -> None:
        if self.fatal is None:
            self.fatal, self.fatal_status = error, status
        self._abort.set()
        self.queue.cancel()

    def pause(self, reason: str) -> None:
        """Pause the run as the circuit breaker does (another sender's breaker tripped)."""
        self._give_up(PausedError(reason), "paused")

    def _ending(self) -> bool:
        return self._abort.is_set() or self.stop.is_set()

    # --- one try ---------------------------------------------------------------------------------------

    def attempt(self, job: Job) -> None:
        """Try `job` once; record it, or put it back into the queue with its due time."""
        if self._ending() or not self.limiter.wait(self.stop):
            self._leave_pending(job)
            return
        if not job.attempts:
            job.first = time.monotonic()
        job.attempts += 1
        try:
            outcome = self.sink.send(job.envelope)
        except DeliveryError as exc:  # the sink can deliver nothing more (a local write failure)
            self._leave_pending(job)
            self._give_up(exc, "write error" if isinstance(exc, WriteError) else "sink error")
            return
        job.last = outcome
        if self.breaker is not None and (reason := self.breaker.record(outcome)):
            self._give_up(PausedError(f"paused: {reason}"), "paused")
        if outcome.sent:
            self.ledger.mark_sent(job.row.id, job.attempts, outcome.code, outcome.reply)
            self.limiter.success()
            self._count_same(None)
            self.stats.add("sent")
            self.progress.advance("sent")
            self.queue.done()
            return
        if outcome.status == "permanent":
            self._record_failure(job, outcome)
            if outcome.stage != "rcpt":  # a refusal at RCPT is about that address, not the relay
                self._count_same(outcome)
            self.queue.done()
            return
        self._transient(job, outcome)

    def _transient(self, job: Job, outcome: Outcome) -> None:
        if outcome.code == 421 or (outcome.stage in ("mail", "connect") and outcome.code is not None):
            self.limiter.throttle()
        elif outcome.code is not None:
            self.limiter.deferral(job.row.address)
        self._count_same(outcome)
        if not outcome.reachable and job.attempts >= self.options.max_attempts:
            self._leave_pending(job)
            self._give_up(
                DeliveryError(f"{outcome.reply} (after {job.attempts} tries); nothing lost, rerun"), "unreachable"
            )
            return
        delay = self.options.backoff(job.attempts)
        if job.attempts == 1 and _no_verdict(outcome):
            delay = 0.0  # whichever connection is free next takes it at once
        too_late = time.monotonic() + delay - job.first > self.options.max_defer
        if job.attempts >= self.options.max_attempts or too_late or self._ending():
            self._leave_pending(job)
            return
        self.stats.add("retried")
        self.progress.waiting(+1)
        self.queue.defer(job, delay, pause=not outcome.reachable)

    def _leave_pending(self, job: Job) -> None:
        """Out of this run: tries and last reply recorded, the row stays pending for the next run."""
        if job.attempts:
            last = job.last or Outcome("transient", None, "stopped before trying again")
            self.ledger.mark_deferred(job.row.id, job.attempts, last.code, last.reply or "stopped")
            self.stats.add("deferred")
            self.progress.advance("deferred")
        self.queue.done()

    def _count_same(self, outcome: Outcome | None) -> None:
        """Stop the run when `stop_after_same_failures` messages in a row fail the same way."""
        limit = self.options.stop_after_same_failures
        if limit <= 0:
            return
        with self._streak_lock:
            if outcome is None:
                self._streak = None
                return
            key = _same_way(outcome)
            n = self._streak[1] + 1 if self._streak and self._streak[0] == key else 1
            self._streak = (key, n)
        if n >= limit:
            self._give_up(
                DeliveryError(
                    f"the relay failed {n} messages in a row the same way, last reply: {outcome.reply or '(none)'}; "
                    "stopped, the rest stay pending"
                ),
                "relay failing",
            )

    def _record_failure(self, job: Job, outcome: Outcome) -> None:
        row = job.row
        self.ledger.mark_failed(row.id, job.attempts, outcome.code, outcome.reply)
        self.stats.add("failed")
        with self.stats.lock:
            if len(self.stats.failures) < MAX_PROBLEMS:
                self.stats.failures.append(f"{row.address}: {outcome.reply}")
        if self.options.suppress_bounces and _BAD_MAILBOX.match(outcome.reply):
            self.suppression.add(row.address, "bounced", at_send_source(self.day, outcome.reply))
            self.stats.add("bounced")
        self.progress.advance("failed")

    # --- the run ---------------------------------------------------------------------------------------

    def _worker(self, *, block: bool = True) -> None:
        while (job := self.queue.take(block=block)) is not None:
            if job.attempts:
                self.progress.waiting(-1)
            try:
                self.attempt(job)
            except BaseException as exc:  # a bug or a broken ledger, not a delivery problem: stop and re-raise it
                if self.crash is None:
                    self.crash = exc
                self._abort.set()
                self.queue.cancel()
                return

    def run(self, jobs: Iterator[tuple[Row, Envelope]]) -> None:
        """Deliver every job; returns when all are done, or the run is stopped or given up."""
        inline = self.sink.inline and self.sink.concurrency <= 1
        threads = [
            threading.Thread(target=self._worker, name=f"send-{i}", daemon=True)
            for i in range(0 if inline else max(1, self.sink.concurrency))
        ]
        for t in threads:
            t.start()
        try:
            for row, envelope in jobs:
                # Inline, a full backlog of retries is worked off here: no worker thread will.
                while inline and self.queue.full() and self.crash is None and not self._ending():
                    self._worker(block=False)
                    if self.queue.full():
                        time.sleep(0.01)  # the retries are not due yet
                if self.crash is not None or not self.queue.put(row, envelope):
                    break
                if inline:  # a local sink: sending costs less than handing the message to a thread
                    self._worker(block=False)
            self.queue.close()
            if inline and self.crash is None:
                self._worker()  # the retries still waiting for their due time
        except BaseException:
            self.queue.cancel()
            raise
        finally:
            for t in threads:
                t.join()
            for job in self.queue.waiting():  # stopped or given up during a backoff: the ledger still says so
                self.progress.waiting(-1)
                self._leave_pending_now(job)
        if self.crash is not None:
            raise self.crash

    def _leave_pending_now(self, job: Job) -> None:
        last = job.last or Outcome("transient", None, "stopped")
        self.ledger.mark_deferred(job.row.id, job.attempts, last.code, last.reply or "stopped")
        self.stats.add("deferred")
        self.progress.advance("deferred")
