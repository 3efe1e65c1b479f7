"""The send loop: one personalized message per subscriber, through a sink, every step in the ledger.

    subscriber list ──stream──▶ ledger (enrol: validate, dedupe, pending rows)
    ledger pending rows ──▶ suppression check ──▶ Personalizer ──▶ workers ──▶ DKIM signer ──▶ sink
                                                                    │
          circuit breaker ◀── ledger ◀── sent / failed / deferred ──┘

A run first enrols the list into the edition's ledger (streaming, so the list is never in memory; the
ledger's unique key catches duplicates), then walks the pending rows. `sink.concurrency` worker threads
deliver; each message's outcome is committed before the worker takes the next one, so at most
`concurrency` messages are ever in flight — the most a crash can duplicate.

Transient trouble (4xx, a dropped connection) is retried with exponential backoff, up to
`[mailing] max_attempts` tries or `max_defer` seconds; a deferred message waits in a due-time queue while
its connection moves on (loop.py). Only the server's load signals (421, 4xx to MAIL FROM or at connect,
deferrals of many recipients in a row) lower the send rate (ratelimit.py), which recovers by the second.
A permanent refusal (5xx) fails that recipient and the run goes on; an address the server says does not
exist (5.1.x) also goes on the suppression list. A server that cannot be reached, a relay that fails
every message the same way, or a sink that cannot write locally stops the run with `DeliveryError`, the
ledger intact for the rerun. The circuit breaker (breaker.py) pauses a run whose replies say the
sending domain is being hurt (a stale list bouncing, a provider refusing for policy): `PausedError`,
the reason kept in the ledger's meta `paused`, and no run goes on until `resume=True` (`send --resume`);
senders sharing a mailing (PostgreSQL) look at that meta every `PAUSE_CHECK` messages and stop too.
With `[dkim]` configured every message is signed on its way to the sink (dkim.py).

    [mailing]
    subscribers = "subscribers.csv"   # default for --subscribers (else the subscriber store)
    max_attempts = 5                  # tries per message for transient errors
    retry_base = 1.0                  # seconds before the first retry; doubles each time
    retry_max = 60.0                  # longest wait between two tries
    max_defer = 900                   # seconds after a message's first try: then it waits for the next run
    stop_after_same_failures = 20     # messages in a row failing the same way stop the run (0: never)
    suppress_bounces = true           # 5.1.x refusals go on the suppression list
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .. import metrics
from ..config import Settings
from ..edition import build
from ..errors import ConfigError, DeliveryError, PausedError, SubscriberError
from .breaker import Breaker
from .dkim import Signer, signer_for, signing
from .health import PAUSED
from .ledger import EditionLock, Ledger, Row, ledger_path
from .loop import Delivery
from .options import MailingOptions
from .personalize import Personalizer
from .processes import PartResult, Plan, combined_failure, deliver_in_processes, process_count
from .progress import Progress, SharedCounts
from .ratelimit import RateLimiter
from .report import SendReport
from .rows import MAX_PROBLEMS, check_edition, check_paused, enrol, pending_jobs, why_idle
from .sinks import configured_rate, make_sink, smtp_url
from .sinks.base import Envelope, Sink
from .sinks.memory import NullSink
from .stores import LedgerStore, ledger_exists, open_ledger
from .subscribers import SubscriberSource, check_address, store_source
from .suppression import Suppression, open_suppression
from .unsubscribe import secret_from_env
from .verp import ReturnPath, edition_mark

# --- the public functions --------------------------------------------------------------------------


def send_edition(
    settings: Settings,
    day: date | None,
    *,
    subscribers: str | Path | SubscriberSource | None = None,
    sink: Sink | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    to: str | None = None,
    stop: threading.Event | None = None,
    progress: bool | None = None,
    smtp: str | None = None,
    connections: int | None = None,
    rate: float | None = None,
    now: datetime | None = None,
    join: bool = False,
    retry_failed: bool = False,
    resume: bool = False,
    processes: int | None = None,
) -> SendReport:
    """Send edition `day` (None: the newest) to every subscriber; see the module docstring.

    `sink` defaults to SMTP (`smtp` or `[smtp] url`) else the outbox `outbox/<date>/mail/`; a dry run
    uses none. `limit` sends to the first N pending subscribers only (recorded as usual, so the next run
    sends the rest); `to` sends one test copy to that address, outside the ledger. Setting `stop` makes
    the run finish the messages in flight and return. `join` (PostgreSQL only) sends without a subscriber
    list, helping a mailing another sender enrolled. `retry_failed` puts the recipients recorded as failed
    back in the queue first (once the relay that refused them is fixed). `resume` goes on with a mailing
    the circuit breaker paused (without it such a mailing raises `PausedError` and sends nothing). `processes` sender
    processes share the delivery (processes.py; default `[mailing] processes`, else one per core when
    sending through SMTP).
    """
    started = time.monotonic()
    secret = secret_from_env()  # before anything else: no message may go out without a working unsubscribe link
    options = MailingOptions.from_settings(settings)
    signer = signer_for(settings)  # a missing or locked key stops here, before anything is sent
    per_second = configured_rate(settings, rate)
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be 0 or more, got {limit}")
    if to is not None:
        built = build(settings, day, skip_invalid=True)
        test_sink = sink or make_sink(settings, built.edition.date, smtp=smtp, connections=1, kind="test")
        line = _send_one(settings, built, secret, signing(settings, test_sink, signer), to, now)
        return SendReport(
            1, 0, 0, 0, 0, edition=built.edition.date, sent_now=1, test=True, sink=line, elapsed=_since(started)
        )
    source = None if join else _source(settings, subscribers or options.subscribers)
    built = build(settings, day, skip_invalid=True)  # send what can be shown; say what was left out
    personalizer = Personalizer(settings, built.edition, secret=secret, date=(now or datetime.now(UTC)))
    job = _Run(
        settings,
        built.edition.date,
        options,
        personalizer,
        envelope_sender(settings, secret, built.edition.date),
        signer,
    )
    job.limiter, job.per_second, job.stop = RateLimiter(per_second), per_second, stop or threading.Event()
    job.dry_run, job.limit, job.smtp, job.connections, job.progress = dry_run, limit, smtp, connections, progress
    job.report = _first_report(built, personalizer, dry_run)
    with contextlib.ExitStack() as stack:
        ledger, the_sink = _open_ledger(stack, job, sink, resume)
        suppression = open_suppression(settings)
        stack.callback(suppression.close)
        check_edition(ledger, built.rendered.html, built.rendered.text, job.report)
        the_sink.open()  # an unreachable server fails here, before the ledger changes
        stack.callback(the_sink.close)
        job.run = ledger.start_run(source.name if source else "(joined)", job.report.sink)
        workers = _Workers(own_sink=sink is None, processes=processes)
        _deliver(stack, job, ledger, the_sink, suppression, source, retry_failed, workers)
        _tally(job, ledger, workers)
    job.report.elapsed = _since(started)
    return job.report


# --- the steps of a run ----------------------------------------------------------------------------


@dataclass
class _Run:
    """One run of `send_edition`: what it was asked, and what it made ready before the ledger opened."""

    settings: Settings
    day: date
    options: MailingOptions
    personalizer: Personalizer
    sender: Callable[[str], str]  # recipient → MAIL FROM
    signer: Signer | None
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0))
    per_second: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    dry_run: bool = False
    limit: int | None = None
    smtp: str | None = None
    connections: int | None = None
    progress: bool | None = None
    report: SendReport = field(default_factory=lambda: SendReport(0, 0, 0, 0, 0))
    run: int = 0  # the ledger's run, once started

    @property
    def labels(self) -> tuple[str, str, str]:
        """The metrics' newsletter, edition and language."""
        return (self.settings.list.id, self.day.isoformat(), self.settings.language)

    def feed(
        self,
        ledger: LedgerStore,
        suppression: Suppression,
        delivery: Delivery,
        limit: int | None,
        part: tuple[int, int],
    ) -> Iterator[tuple[Row, Envelope]]:
        return pending_jobs(ledger, self.run, self.personalizer, suppression, delivery, self.sender, limit, part)

    def child_sink(self) -> Sink:
        """A sender process's own sink: its own connections, the same signing."""
        made = make_sink(self.settings, self.day, smtp=self.smtp, connections=self.connections)
        return signing(self.settings, made, self.signer)


@dataclass
class _Workers:
    """How a run's delivery went: by how many processes, and what this process kept count with."""

    own_sink: bool  # no sink object given: the run may fork (a sink object given is one process's)
    processes: int | None  # asked for (None: `[mailing] processes`, else by the cores)
    to_send: int = 0
    delivery: Delivery | None = None  # the send loop, when this process delivered
    counter: metrics.MessageCounter | None = None
    forked: bool = False  # sender processes did the delivery (each counted its own messages)


def _source(settings: Settings, spec: str | Path | SubscriberSource | None) -> SubscriberSource:
    """The list to enrol: the one named, else the subscriber store (its confirmed rows)."""
    if spec is None:
        return store_source(settings)
    return spec if isinstance(spec, SubscriberSource) else SubscriberSource(spec, settings.root)


def _first_report(built: Any, personalizer: Personalizer, dry_run: bool) -> SendReport:
    """The run's report before anything is sent: what the build left out, and the slow path if taken."""
    report = SendReport(0, 0, 0, 0, 0, edition=built.edition.date, dry_run=dry_run)
    report.stories_skipped = [str(error) for error in built.skipped]  # the CLI and the scheduler log them
    if not personalizer.fast:
        report.warnings.append(
            "the templates use the personal fields in a way the fast path cannot splice "
            f"({personalizer.mismatch}); rendering every message in full (slower)"
        )
    return report


def _open_ledger(stack: contextlib.ExitStack, job: _Run, sink: Sink | None, resume: bool) -> tuple[LedgerStore, Sink]:
    """The edition's ledger (held against other runs) and the signing sink; for a dry run, a copy of the
    ledger in a temporary folder and a sink that sends nothing."""
    settings, day = job.settings, job.day
    ledger: LedgerStore
    if job.dry_run:
        path = ledger_path(settings, day)
        copy = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsletter-dry-run-"))) / path.name
        if ledger_exists(settings, day):
            with open_ledger(settings, day, readonly=True) as real:
                real.backup_to(copy)
        ledger = stack.enter_context(Ledger(copy))
        the_sink: Sink = signing(settings, NullSink(), job.signer)  # the signing cost is part of a dry run
        job.report.sink = "dry run (nothing sent)"
        return ledger, the_sink
    if not settings.database_url:  # PostgreSQL: many senders share the edition by leases instead
        stack.enter_context(EditionLock(ledger_path(settings, day).with_suffix(".lock"), f"edition {day}"))
    ledger = stack.enter_context(open_ledger(settings, day, stop=job.stop))
    made = sink or make_sink(settings, day, smtp=job.smtp, connections=job.connections)
    the_sink = signing(settings, made, job.signer)
    check_paused(ledger, day, resume)
    job.report.sink = the_sink.describe()
    return ledger, the_sink


def _deliver(
    stack: contextlib.ExitStack,
    job: _Run,
    ledger: LedgerStore,
    the_sink: Sink,
    suppression: Suppression,
    source: SubscriberSource | None,
    retry_failed: bool,
    workers: _Workers,
) -> None:
    """Enrol the list, then send the pending rows here or in sender processes; however it ends, the run's
    row in the ledger says how, with what this run did."""
    report = job.report
    status = "error"
    try:
        _enrol_run(job, ledger, source, retry_failed)
        workers.to_send = ledger.count_pending(job.run)
        if job.limit is not None:
            report.limited = workers.to_send > job.limit
            workers.to_send = min(workers.to_send, job.limit)
        n = 1
        if not job.dry_run and workers.own_sink:
            smtp = smtp_url(job.settings, job.smtp) is not None
            n = process_count(workers.processes, job.options, smtp=smtp, pending=workers.to_send)
        report.processes = n
        if n > 1:
            workers.forked = True
            error, fatal_status = _in_processes(job, ledger, the_sink, n, workers.to_send)
        else:
            error, fatal_status = _in_this_process(stack, job, ledger, the_sink, suppression, workers)
        report.stopped = job.stop.is_set() and ledger.count_pending(job.run) > 0
        if error is not None:
            status = fatal_status
            if isinstance(error, PausedError):
                ledger.set_meta(PAUSED, str(error))
            raise error
        status = "stopped" if report.stopped else "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if workers.delivery is not None:  # what this run did, even when it ends with an exception
            _take_stats(report, workers.delivery, job.limiter)
        _finish_run(ledger, job.run, status, report)


def _enrol_run(job: _Run, ledger: LedgerStore, source: SubscriberSource | None, retry_failed: bool) -> None:
    """The first sender of a mailing enrols the list (and puts the failed back, if asked); a joining one
    only checks there is a mailing to join."""
    with ledger.enrolment(job.run) as first:
        if first and source is None:  # a worker joins mailings; it never starts one
            raise SubscriberError(f"edition {job.day} has nothing pending to join")
        if first and source is not None:
            enrol(ledger, job.run, source, job.report)
        if first and retry_failed:
            job.report.requeued = ledger.requeue_failed()


def _in_processes(
    job: _Run, ledger: LedgerStore, the_sink: Sink, n: int, to_send: int
) -> tuple[DeliveryError | None, str]:
    """Deliver in `n` sender processes, their counts summed on one progress bar here; what ended them,
    if anything, and the run's status then."""
    sending = time.monotonic()
    the_sink.close()  # every process opens its own connections
    plan = Plan(
        job.settings, job.day, job.options, job.per_second, job.limit, job.stop, job.feed, job.child_sink, job.labels
    )
    plan.owner = str(getattr(ledger, "owner", ""))
    plan.breaker = lambda: breaker_for(job.options)
    plan.counts = SharedCounts(n)
    bar = Progress(job.progress, to_send, f"sending {job.day}")
    try:
        parts = deliver_in_processes(plan, n, bar)
    finally:
        bar.close()
        job.report.send_seconds = _since(sending)
    _add_parts(job.report, parts)
    return combined_failure(parts)


def _in_this_process(
    stack: contextlib.ExitStack,
    job: _Run,
    ledger: LedgerStore,
    the_sink: Sink,
    suppression: Suppression,
    workers: _Workers,
) -> tuple[DeliveryError | None, str]:
    """Deliver from this process's worker threads; what ended the send loop, if anything, and the run's
    status then."""
    sending = time.monotonic()
    bar = Progress(job.progress, workers.to_send, f"sending {job.day}")
    delivery = Delivery(
        ledger=ledger,
        sink=the_sink,
        limiter=job.limiter,
        options=job.options,
        suppression=suppression,
        stop=job.stop,
        progress=bar,
        day=job.day,
        breaker=None if job.dry_run else breaker_for(job.options),
    )
    workers.delivery = delivery
    if not job.dry_run:
        workers.counter = metrics.message_counter(*job.labels, ledger.count_pending(None))
        stack.callback(workers.counter.close)
        delivery.stats.hook = workers.counter
    try:
        delivery.run(job.feed(ledger, suppression, delivery, job.limit, (0, 1)))
    finally:
        bar.close()
        job.report.send_seconds = _since(sending)
    return delivery.fatal, delivery.fatal_status


def _take_stats(report: SendReport, delivery: Delivery, limiter: RateLimiter) -> None:
    """What this process's send loop did, into the run's report."""
    stats = delivery.stats
    report.sent_now, report.failed_now, report.deferred = stats.sent, stats.failed, stats.deferred
    report.retried, report.suppressed, report.failures = stats.retried, stats.suppressed, stats.failures
    report.throttled = limiter.throttles
    report.rate_lowest, report.rate_final = limiter.lowest, limiter.rate


def _finish_run(ledger: LedgerStore, run: int, status: str, report: SendReport) -> None:
    ledger.finish_run(
        run,
        status,
        sent=report.sent_now,
        failed=report.failed_now,
        invalid=report.invalid,
        duplicates=report.duplicates,
        suppressed=report.suppressed,
        retried=report.retried,
        deferred=report.deferred,
    )


def _tally(job: _Run, ledger: LedgerStore, workers: _Workers) -> None:
    """The ledger's totals into the report, why nothing was sent if so, and the mailing's metrics closed."""
    report = job.report
    counts = ledger.counts()
    report.sent, report.failed, report.pending, report.total = counts.sent, counts.failed, counts.pending, counts.total
    report.skipped = report.invalid + report.duplicates + report.suppressed + report.removed
    if not job.dry_run and workers.to_send == 0:
        report.idle = why_idle(ledger, report)
    if workers.counter is not None or workers.forked:
        if workers.counter is not None:
            workers.counter.close()
        metrics.send_finished(*job.labels, pending=counts.pending, sent=report.sent_now, seconds=report.send_seconds)


def _add_parts(report: SendReport, parts: list[PartResult]) -> None:
    """What the sender processes did, added up into the run's report."""
    for part in parts:
        report.sent_now += part.sent
        report.failed_now += part.failed
        report.deferred += part.deferred
        report.retried += part.retried
        report.suppressed += part.suppressed
        report.throttled += part.throttles
        report.failures.extend(part.failures[: MAX_PROBLEMS - len(report.failures)])
    lowest = [p.lowest for p in parts if p.lowest is not None]
    finals = [p.final for p in parts if p.final is not None]
    report.rate_lowest = sum(lowest) if lowest else None  # the mailing's rate: the parts' rates added up
    report.rate_final = sum(finals) if finals else None


def breaker_for(options: MailingOptions) -> Breaker:
    return Breaker(options.breaker_window, options.breaker_bounce_share, options.breaker_policy_run)


def _since(started: float) -> float:
    return time.monotonic() - started


def envelope_sender(settings: Settings, secret: bytes, day: date | None = None) -> Callable[[str], str]:
    """recipient → MAIL FROM: `[mailing] return_path` (per recipient when it holds `{token}`, carrying
    edition `day` when given, so what comes back counts against it), else the sender."""
    fixed = MailingOptions.from_settings(settings).return_path or settings.sender.address
    verp = ReturnPath.parse(fixed)
    if verp is None:
        return lambda _recipient: fixed
    mark = edition_mark(settings.list.id, settings.language, day) if day is not None else None
    return lambda recipient: verp.address(secret, settings.list.id, recipient, mark)


def _send_one(settings: Settings, built: Any, secret: bytes, sink: Sink, address: str, now: datetime | None) -> str:
    try:
        to = check_address(address)
    except ValueError as exc:
        raise SubscriberError(f"--to: {exc}") from None
    personalizer = Personalizer(settings, built.edition, secret=secret, date=(now or datetime.now(UTC)))
    data = personalizer.message(to, "", msg_id=personalizer.test_message_id())
    with sink:
        outcome = sink.send(Envelope(envelope_sender(settings, secret)(to), to, data, key="test"))
    day = built.edition.date.isoformat()
    if not outcome.sent:
        raise DeliveryError(f"test send of {day} to {to} failed: {outcome.reply or outcome.status}")
    return f"sent edition {day} to {to} via {sink.describe()}" + (f": {outcome.reply}" if outcome.reply else "")


def send_test(settings: Settings, day: date | None, address: str) -> str:
    """Send the edition once to `address` through the configured sink, outside the ledger; one line back.

    The outbox sink writes it to `outbox/<date>/test/`. The message carries its own Message-ID, so the
    real send later is not taken for a duplicate of it.
    """
    secret = secret_from_env()
    built = build(settings, day, skip_invalid=True)
    sink = signing(settings, make_sink(settings, built.edition.date, connections=1, kind="test"))
    return _send_one(settings, built, secret, sink, address, None)


def ledger_report(settings: Settings, day: date) -> SendReport | None:
    """The ledger's counts for edition `day`; None when it was never sent."""
    if not ledger_exists(settings, day):
        return None
    with open_ledger(settings, day, readonly=True) as ledger:
        counts = ledger.counts()
        runs = ledger.runs()
        failures = [f"{r['address']}: {r['reply']}" for r in ledger.rows("failed", limit=MAX_PROBLEMS)]
        senders = ledger.senders()
        paused = ledger.get_meta(PAUSED) or ""
    last = runs[-1] if runs else {}
    report = SendReport(
        sent=counts.sent,
        failed=counts.failed,
        skipped=int(last.get("invalid", 0)) + int(last.get("duplicates", 0)) + counts.skipped,
        retried=sum(int(r.get("retried") or 0) for r in runs),
        pending=counts.pending,
        edition=day,
        invalid=int(last.get("invalid", 0)),
        duplicates=int(last.get("duplicates", 0)),
        suppressed=counts.skipped,
        total=counts.total,
        sink=str(last.get("sink", "")),
        failures=failures,
        senders=senders,
        paused=paused,
    )
    if last:
        report.warnings.append(
            f"{len(runs)} run(s); the last started {last['started_at']} and "
            + (f"ended {last['finished_at']} ({last['status']})" if last.get("finished_at") else "never finished")
        )
    return report
