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
import hashlib
import itertools
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .. import metrics
from ..config import Settings
from ..edition import build
from ..errors import ConfigError, DeliveryError, PausedError, SubscriberError
from .breaker import Breaker
from .dkim import signer_for, signing
from .health import PAUSED
from .ledger import EditionLock, Ledger, Row, ledger_path
from .loop import Delivery
from .options import MailingOptions
from .personalize import Personalizer
from .processes import PartResult, Plan, claim_size, combined_failure, deliver_in_processes, process_count
from .progress import Progress, SharedCounts
from .ratelimit import RateLimiter
from .report import SendReport
from .sinks import configured_rate, make_sink, smtp_url
from .sinks.base import Envelope, Sink
from .sinks.memory import NullSink
from .stores import LedgerStore, ledger_exists, open_ledger
from .subscribers import Problem, SubscriberSource, check_address, store_source
from .suppression import Suppression, open_suppression
from .unsubscribe import secret_from_env
from .verp import ReturnPath

PAUSE_CHECK = 500  # messages between two looks at the ledger's pause (senders sharing a mailing stop together)
ENROL_CHUNK = 5000  # rows per enrolment statement
MAX_PROBLEMS = 200  # reported in full; beyond that only counted (a broken million-row file stays small)


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
    limiter = RateLimiter(per_second)
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be 0 or more, got {limit}")
    if to is not None:
        built = build(settings, day, skip_invalid=True)
        test_sink = sink or make_sink(settings, built.edition.date, smtp=smtp, connections=1, kind="test")
        line = _send_one(settings, built, secret, signing(settings, test_sink, signer), to, now)
        return SendReport(
            1, 0, 0, 0, 0, edition=built.edition.date, sent_now=1, test=True, sink=line, elapsed=_since(started)
        )
    spec = subscribers or options.subscribers
    if join:  # a worker joins mailings; the list is another sender's to enrol
        source = None
    elif spec is not None:
        source = spec if isinstance(spec, SubscriberSource) else SubscriberSource(spec, settings.root)
    else:  # without a list named, the subscriber store is the list (its confirmed rows)
        source = store_source(settings)
    built = build(settings, day, skip_invalid=True)  # send what can be shown; say what was left out
    day = built.edition.date
    personalizer = Personalizer(settings, built.edition, secret=secret, date=(now or datetime.now(UTC)))
    report = SendReport(0, 0, 0, 0, 0, edition=day, dry_run=dry_run)
    report.stories_skipped = [str(error) for error in built.skipped]  # the CLI and the scheduler log them
    if not personalizer.fast:
        report.warnings.append(
            "the templates use the personal fields in a way the fast path cannot splice "
            f"({personalizer.mismatch}); rendering every message in full (slower)"
        )
    path = ledger_path(settings, day)
    stop_event = stop or threading.Event()
    sender = envelope_sender(settings, secret)

    def feed(
        ledger: LedgerStore, suppression: Suppression, delivery: Delivery, limit: int | None, part: tuple[int, int]
    ) -> Iterator[tuple[Row, Envelope]]:
        return _jobs(ledger, run, personalizer, suppression, delivery, sender, limit, part)

    def child_sink() -> Sink:  # a sender process's own sink: its own connections, the same signing
        return signing(settings, make_sink(settings, day, smtp=smtp, connections=connections), signer)

    with contextlib.ExitStack() as stack:
        ledger: LedgerStore
        if dry_run:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsletter-dry-run-")))
            copy = tmp / path.name
            if ledger_exists(settings, day):
                with open_ledger(settings, day, readonly=True) as real:
                    real.backup_to(copy)
            ledger = stack.enter_context(Ledger(copy))
            the_sink: Sink = signing(settings, NullSink(), signer)  # the signing cost is part of a dry run
        else:
            if not settings.database_url:  # PostgreSQL: many senders share the edition by leases instead
                stack.enter_context(EditionLock(path.with_suffix(".lock"), f"edition {day}"))
            ledger = stack.enter_context(open_ledger(settings, day, stop=stop_event))
            the_sink = signing(settings, sink or make_sink(settings, day, smtp=smtp, connections=connections), signer)
            _check_paused(ledger, day, resume)
        report.sink = "dry run (nothing sent)" if dry_run else the_sink.describe()
        suppression = open_suppression(settings)
        stack.callback(suppression.close)
        _check_edition(ledger, built.rendered.html, built.rendered.text, report)
        the_sink.open()  # an unreachable server fails here, before the ledger changes
        stack.callback(the_sink.close)
        run = ledger.start_run(source.name if source else "(joined)", report.sink)
        status = "error"
        delivery: Delivery | None = None
        counter: metrics.MessageCounter | None = None
        forked = False  # sender processes did the delivery (each counted its own messages)
        try:
            with ledger.enrolment(run) as first:
                if first and source is None:  # a worker joins mailings; it never starts one
                    raise SubscriberError(f"edition {day} has nothing pending to join")
                if first and source is not None:
                    _enrol(ledger, run, source, report)
                if first and retry_failed:
                    report.requeued = ledger.requeue_failed()
            to_send = ledger.count_pending(run)
            if limit is not None:
                report.limited = to_send > limit
                to_send = min(to_send, limit)
            workers = 1
            if not dry_run and sink is None:  # a sink object given is one process's
                workers = process_count(processes, options, smtp=smtp_url(settings, smtp) is not None, pending=to_send)
            labels = (settings.list.id, day.isoformat(), settings.language)
            sending = time.monotonic()
            report.processes = workers
            if workers > 1:
                forked = True
                the_sink.close()  # every process opens its own connections
                plan = Plan(settings, day, options, per_second, limit, stop_event, feed, child_sink, labels)
                plan.owner = str(getattr(ledger, "owner", ""))
                plan.breaker = lambda: breaker_for(options)
                plan.counts = SharedCounts(workers)
                bar = Progress(progress, to_send, f"sending {day}")
                try:
                    parts = deliver_in_processes(plan, workers, bar)
                finally:
                    bar.close()
                    report.send_seconds = _since(sending)
                _add_parts(report, parts)
                error, fatal_status = combined_failure(parts)
            else:
                bar = Progress(progress, to_send, f"sending {day}")
                delivery = Delivery(
                    ledger=ledger,
                    sink=the_sink,
                    limiter=limiter,
                    options=options,
                    suppression=suppression,
                    stop=stop_event,
                    progress=bar,
                    day=day,
                    breaker=None if dry_run else breaker_for(options),
                )
                if not dry_run:
                    counter = metrics.message_counter(*labels, ledger.count_pending(None))
                    stack.callback(counter.close)
                    delivery.stats.hook = counter
                try:
                    delivery.run(feed(ledger, suppression, delivery, limit, (0, 1)))
                finally:
                    bar.close()
                    report.send_seconds = _since(sending)
                error, fatal_status = delivery.fatal, delivery.fatal_status
            report.stopped = stop_event.is_set() and ledger.count_pending(run) > 0
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
            if delivery is not None:  # what this run did, even when it ends with an exception
                stats = delivery.stats
                report.sent_now, report.failed_now, report.deferred = stats.sent, stats.failed, stats.deferred
                report.retried, report.suppressed, report.failures = stats.retried, stats.suppressed, stats.failures
                report.throttled = limiter.throttles
                report.rate_lowest, report.rate_final = limiter.lowest, limiter.rate
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
        counts = ledger.counts()
        report.sent, report.failed, report.pending, report.total = (
            counts.sent,
            counts.failed,
            counts.pending,
            counts.total,
        )
        report.skipped = report.invalid + report.duplicates + report.suppressed + report.removed
        if not dry_run and to_send == 0:
            report.idle = _why_idle(ledger, report)
        if counter is not None or forked:
            if counter is not None:
                counter.close()
            metrics.send_finished(
                settings.list.id,
                day.isoformat(),
                settings.language,
                pending=counts.pending,
                sent=report.sent_now,
                seconds=report.send_seconds,
            )
    report.elapsed = _since(started)
    return report


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


def _check_paused(ledger: LedgerStore, day: date, resume: bool) -> None:
    """A paused mailing stays paused until someone resumes it (a cron rerun would only burn more)."""
    reason = ledger.get_meta(PAUSED)
    if not reason:
        return
    if not resume:
        raise PausedError(f"edition {day} is {reason}; once that is dealt with: newsletter send --resume")
    ledger.set_meta(PAUSED, "")


def _since(started: float) -> float:
    return time.monotonic() - started


def _why_idle(ledger: LedgerStore, report: SendReport) -> str:
    """One line for a run that found nobody to send to: what the ledger says, and the way on."""
    if report.pending:
        return ""  # held by other senders (PostgreSQL), or stopped before the first message
    runs = [r for r in ledger.runs() if int(r.get("sent") or 0)]
    when = f" on {str(runs[-1]['started_at'])[:16].replace('T', ' ')} UTC via {runs[-1]['sink']}" if runs else ""
    parts = []
    if report.sent:
        parts.append(f"all {report.sent} already sent{when} (a rerun never mails anyone twice)")
    if report.failed:
        replies = ledger.rows("failed", limit=1)
        last = f", the relay said {str(replies[0]['reply'])[:120]!r}" if replies else ""
        parts.append(f"{report.failed} failed earlier{last}: `--retry-failed` puts them back in the queue")
    if not parts:
        parts.append("the list has nobody to send to")
    return "nothing to send: " + "; ".join(parts) + "; `--to ADDR` sends a test copy"


def _check_edition(ledger: LedgerStore, html: str, text: str, report: SendReport) -> None:
    """Remember what the edition looked like; warn when a rerun would send a changed one."""
    digest = hashlib.sha256((html + "\0" + text).encode()).hexdigest()
    before = ledger.get_meta("edition_sha256")
    if before is None:
        ledger.set_meta("edition_sha256", digest)
    elif before != digest:
        sent = ledger.counts().sent
        if sent:
            report.warnings.append(
                f"the edition changed since the first run: {sent} subscriber(s) got the earlier version, "
                "the rest get this one"
            )
        ledger.set_meta("edition_sha256", digest)


def _enrol(ledger: LedgerStore, run: int, source: SubscriberSource, report: SendReport) -> None:
    """Stream the list into the ledger: a few thousand rows per statement and transaction."""

    def problem(p: Problem) -> None:
        report.invalid += 1
        if len(report.problems) < MAX_PROBLEMS:
            report.problems.append(str(p))

    rows = source.rows(problem)
    while True:
        chunk = [(sub.address, sub.name, sub.locale, sub.line) for sub in itertools.islice(rows, ENROL_CHUNK)]
        if not chunk:
            break
        with ledger.batch():
            duplicates = ledger.enrol_many(run, chunk)
        report.duplicates += len(duplicates)
        for line, first, address in duplicates:
            if len(report.problems) >= MAX_PROBLEMS:
                break
            report.problems.append(f"{source.path.name}:{line}: duplicate of line {first} ({address})")
    report.removed = ledger.retire_unseen(run)


def _jobs(
    ledger: LedgerStore,
    run: int,
    personalizer: Personalizer,
    suppression: Suppression,
    delivery: Delivery,
    sender: Callable[[str], str],
    limit: int | None,
    part: tuple[int, int],
) -> Iterator[tuple[Row, Envelope]]:
    handed = 0
    dot_safe = personalizer.dot_safe
    batch = {} if part[1] == 1 else {"batch": claim_size(ledger.count_pending(run), part[1])}
    # Checked now, not at enrolment: an unsubscribe mid-run counts (looked up a batch at a time).
    for row in ledger.pending(run, suppressed=suppression.which, part=part, **batch):
        if limit is not None and handed >= limit:
            return
        if row.suppressed or (row.suppressed is None and row.address in suppression):
            ledger.mark_skipped(row.id, "suppressed")
            delivery.stats.add("suppressed")
            continue
        handed += 1
        if handed % PAUSE_CHECK == 0 and (reason := ledger.get_meta(PAUSED)):  # another sender's breaker
            delivery.pause(reason)
            return
        data = personalizer.message(row.address, row.name)
        yield row, Envelope(sender(row.address), row.address, data, key=str(row.id), dot_safe=dot_safe)


def envelope_sender(settings: Settings, secret: bytes) -> Callable[[str], str]:
    """recipient → MAIL FROM: `[mailing] return_path` (per recipient when it holds `{token}`), else the sender."""
    fixed = MailingOptions.from_settings(settings).return_path or settings.sender.address
    verp = ReturnPath.parse(fixed)
    if verp is None:
        return lambda _recipient: fixed
    return lambda recipient: verp.address(secret, settings.list.id, recipient)


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
