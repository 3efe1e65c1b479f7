"""The send loop: one personalized message per subscriber, through a sink, every step in the ledger.

    subscriber list ──stream──▶ ledger (enrol: validate, dedupe, pending rows)
    ledger pending rows ──▶ suppression check ──▶ Personalizer ──▶ workers ──▶ sink
                                                                    │
                              ledger ◀── sent / failed / deferred ──┘

A run first enrols the list into the edition's ledger (streaming, so the list is never in memory; the
ledger's unique key catches duplicates), then walks the pending rows. `sink.concurrency` worker threads
deliver; each message's outcome is committed before the worker takes the next one, so at most
`concurrency` messages are ever in flight — the most a crash can duplicate.

Transient trouble (4xx, a dropped connection) is retried with exponential backoff, up to
`[mailing] max_attempts` tries; throttling replies (421, 451, 454) also halve the send rate, which then
climbs back with every success. A permanent refusal (5xx) fails that recipient and the run goes on; an
address the server says does not exist (5.1.x) also goes on the suppression list. A server that cannot
be reached at all stops the run with `DeliveryError`, the ledger intact for the rerun.

    [mailing]
    subscribers = "subscribers.csv"   # default for --subscribers
    max_attempts = 5                  # tries per message for transient errors
    retry_base = 1.0                  # seconds before the first retry; doubles each time
    retry_max = 60.0                  # longest wait between two tries
    suppress_bounces = true           # 5.1.x refusals go on the suppression list
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .build import build
from .config import Settings
from .errors import ConfigError, DeliveryError, SubscriberError
from .ledger import EditionLock, Ledger, Row, ledger_path
from .personalize import Personalizer
from .sinks.base import Envelope, Outcome, Sink
from .sinks.memory import NullSink
from .sinks.outbox import OutboxSink
from .sinks.smtp import SmtpSink, config_from_settings, smtp_url
from .subscribers import Problem, SubscriberSource, check_address
from .suppression import SuppressionList, suppression_path
from .unsubscribe import secret_from_env

THROTTLE_CODES = frozenset({421, 451, 454})
_BAD_MAILBOX = re.compile(r"^\d{3}[ -]5\.1\.\d{1,3}\b")  # RFC 3463: 5.1.x, the address itself is wrong
MAX_PROBLEMS = 200  # reported in full; beyond that only counted (a broken million-row file stays small)


# --- the report ------------------------------------------------------------------------------------


@dataclass
class SendReport:
    """Where an edition's sending stands: the ledger's totals plus what this run did.

    `sent`, `failed` and `pending` count recipients in the ledger (all runs); `skipped` counts the list
    entries left out on purpose (invalid, duplicate, suppressed); `retried` counts retries after
    transient errors.
    """

    sent: int
    failed: int
    skipped: int
    retried: int
    pending: int
    edition: date | None = None
    sent_now: int = 0
    failed_now: int = 0
    deferred: int = 0
    invalid: int = 0
    duplicates: int = 0
    suppressed: int = 0
    removed: int = 0
    throttled: int = 0  # throttling replies (421, 451, 454) seen this run
    rate_lowest: float | None = None  # the lowest send rate used (messages/s; None: never limited)
    rate_final: float | None = None  # the rate at the end (None: no limit)
    total: int = 0
    dry_run: bool = False
    test: bool = False
    stopped: bool = False
    limited: bool = False
    sink: str = ""
    elapsed: float = 0.0
    send_seconds: float = 0.0  # the delivery phase alone (the rate is over this)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Nothing left pending."""
        return self.pending == 0

    @property
    def ok(self) -> bool:
        """Everything went out: complete and no permanent failures."""
        return self.complete and self.failed == 0

    def summary(self) -> str:
        what = self.edition.isoformat() if self.edition else "edition"
        if self.test:
            return f"Test send of {what}: {self.sink}"
        rate = f", {self.sent_now / self.send_seconds:.0f} msg/s" if self.send_seconds > 0 and self.sent_now else ""
        skipped = ", ".join(
            f"{n} {label}"
            for n, label in (
                (self.invalid, "invalid"),
                (self.duplicates, "duplicate"),
                (self.suppressed, "suppressed"),
                (self.removed, "no longer listed"),
            )
            if n
        )
        head = f"Dry run of {what}: would send {self.sent_now}" if self.dry_run else f"Edition {what}: sent {self.sent}"
        if not self.dry_run and self.sent_now != self.sent:
            head += f" ({self.sent_now} this run)"
        return (
            f"{head}, failed {self.failed}, skipped {self.skipped}{f' ({skipped})' if skipped else ''}, "
            f"retried {self.retried}, pending {self.pending}{rate} — {self.sink}"
        )


# --- options ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailingOptions:
    subscribers: str | None = None
    max_attempts: int = 5
    retry_base: float = 1.0
    retry_max: float = 60.0
    suppress_bounces: bool = True
    return_path: str | None = None  # MAIL FROM, where bounces go (default: the sender address)

    @classmethod
    def from_settings(cls, settings: Settings) -> MailingOptions:
        table = settings.section("mailing")
        known = {"subscribers", "max_attempts", "retry_base", "retry_max", "suppress_bounces", "suppression"}
        known |= {"ledger_dir", "return_path"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"[mailing]: unknown setting '{unknown[0]}' (known: {', '.join(sorted(known))})")

        def number(key: str, low: float, high: float, default: float) -> float:
            value = table.get(key, default)
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = float(value)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ConfigError(f"[mailing] {key} must be a number from {low:g} to {high:g}, got {value!r}")
            return float(value)

        subscribers = table.get("subscribers")
        if subscribers is not None and not isinstance(subscribers, str):
            raise ConfigError(f"[mailing] subscribers must be a file path, got {subscribers!r}")
        return_path = table.get("return_path") or None
        if return_path is not None:
            try:
                return_path = check_address(str(return_path))
            except ValueError as exc:
                raise ConfigError(f"[mailing] return_path: {exc}") from None
        bounces = table.get("suppress_bounces", True)
        if isinstance(bounces, str):
            bounces = bounces.strip().lower() in ("1", "true", "yes", "on")
        return cls(
            subscribers=subscribers,
            max_attempts=int(number("max_attempts", 1, 100, 5)),
            retry_base=number("retry_base", 0, 3600, 1.0),
            retry_max=number("retry_max", 0, 86400, 60.0),
            suppress_bounces=bool(bounces),
            return_path=return_path,
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1-based): doubling, capped, with jitter."""
        delay = min(self.retry_max, self.retry_base * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)


# --- the rate limiter ------------------------------------------------------------------------------


class RateLimiter:
    """Spaces sends to at most `rate` per second (0: no limit) and backs off when the server throttles.

    A throttling reply halves the rate (starting from the rate actually achieved when there was no
    limit); every success then raises it by 5 % until it is back at the configured rate — or, with no
    configured rate, back at the rate that was being achieved when the throttling began, where the
    limit is lifted again.
    """

    def __init__(self, rate: float = 0.0, *, floor: float = 1.0) -> None:
        self.max_rate = rate if rate > 0 else None
        self.rate = self.max_rate
        self.floor = floor
        self.throttles = 0
        self.lowest = self.rate
        self._ceiling = self.max_rate
        self._next = 0.0
        self._recent: deque[float] = deque(maxlen=64)
        self._lock = threading.Lock()

    def observed(self) -> float | None:
        """Successes per second over the last few dozen."""
        if len(self._recent) < 2 or self._recent[-1] <= self._recent[0]:
            return None
        return (len(self._recent) - 1) / (self._recent[-1] - self._recent[0])

    def wait(self, stop: threading.Event) -> bool:
        """Block until the next send may start; False when `stop` was set meanwhile."""
        with self._lock:
            if self.rate is None:
                return not stop.is_set()
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + 1.0 / self.rate
        delay = at - now
        return not stop.wait(delay) if delay > 0 else not stop.is_set()

    def success(self) -> None:
        with self._lock:
            self._recent.append(time.monotonic())
            if self.rate is None or self._ceiling is None:
                return
            if self.rate < self._ceiling:
                self.rate = min(self._ceiling, self.rate * 1.05)
            if self.rate >= self._ceiling and self.max_rate is None:
                self.rate = None  # back where we were: lift the limit
                self._ceiling = None

    def throttle(self) -> None:
        with self._lock:
            current = self.rate or self.observed() or 10.0
            if self.max_rate is None and self._ceiling is None:
                self._ceiling = max(self.floor, current)
            self.rate = max(self.floor, current / 2)
            self._next = time.monotonic() + 1.0 / self.rate
            self.throttles += 1
            self.lowest = self.rate if self.lowest is None else min(self.lowest, self.rate)


# --- progress --------------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar (rate, ETA) on a terminal; a plain line every 10 % or 10 s otherwise.

    `enabled`: True forces the bar, False shows nothing, None picks by whether stderr is a terminal.
    """

    def __init__(self, enabled: bool | None, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Any = None
        self._plain = False
        self._last_line = self.start
        self._last_pct = 0
        if enabled is False or total == 0:
            return
        if enabled or sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} msg/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, rate="0")
        else:
            self._plain = True

    def advance(self) -> None:
        with self._lock:
            self.done += 1
            now = time.monotonic()
            rate = self.done / (now - self.start) if now > self.start else 0.0
            if self._bar is not None:
                self._bar.update(self._task, advance=1, rate=f"{rate:.0f}")
            elif self._plain:
                pct = self.done * 100 // self.total
                if pct >= self._last_pct + 10 or now - self._last_line >= 10 or self.done == self.total:
                    eta = (self.total - self.done) / rate if rate else 0
                    print(
                        f"{self.label}: {self.done}/{self.total} ({pct}%), {rate:.0f} msg/s, ETA {eta:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    self._last_line, self._last_pct = now, pct - pct % 10

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# --- sinks -----------------------------------------------------------------------------------------


def mail_folder(settings: Settings, day: date, kind: str = "mail") -> Path:
    return settings.outbox_dir / day.isoformat() / kind


def make_sink(
    settings: Settings,
    day: date,
    *,
    smtp: str | None = None,
    connections: int | None = None,
    kind: str = "mail",
) -> Sink:
    """SMTP when `--smtp` or `[smtp] url` says so, else the outbox folder `outbox/<date>/<kind>/`."""
    if smtp_url(settings, smtp) is not None:
        return SmtpSink(config_from_settings(settings, smtp, connections=connections))
    return OutboxSink(mail_folder(settings, day, kind))


def configured_rate(settings: Settings, rate: float | None) -> float:
    if rate is not None:
        if rate < 0:
            raise ConfigError(f"--rate must be 0 (no limit) or more, got {rate}")
        return rate
    value = settings.section("smtp").get("rate", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"[smtp] rate must be a number of messages per second (0: no limit), got {value!r}")
    return float(value)


# --- delivery --------------------------------------------------------------------------------------


@dataclass
class _Stats:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    retried: int = 0
    suppressed: int = 0
    bounced: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class _Delivery:
    """Hands messages to the sink from `sink.concurrency` workers and records every outcome."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        sink: Sink,
        limiter: RateLimiter,
        options: MailingOptions,
        suppression: SuppressionList,
        stop: threading.Event,
        progress: _Progress,
        day: date,
    ) -> None:
        self.ledger = ledger
        self.sink = sink
        self.limiter = limiter
        self.options = options
        self.suppression = suppression
        self.stop = stop
        self.progress = progress
        self.day = day
        self.stats = _Stats()
        self.fatal: DeliveryError | None = None
        self.crash: Exception | None = None
        self._abort = threading.Event()

    def _give_up(self, error: DeliveryError) -> None:
        if self.fatal is None:
            self.fatal = error
        self._abort.set()

    def deliver(self, row: Row, envelope: Envelope) -> None:
        """Send one message, retrying transient trouble; its final state goes to the ledger."""
        attempts = 0
        while True:
            if self._abort.is_set() or not self.limiter.wait(self.stop):
                if attempts:
                    self.ledger.mark_deferred(row.id, attempts, None, "stopped before retrying")
                    self.stats.add("deferred")
                return
            attempts += 1
            try:
                outcome = self.sink.send(envelope)
            except DeliveryError as exc:
                self.ledger.mark_deferred(row.id, attempts, None, str(exc))
                self.stats.add("deferred")
                self._give_up(exc)
                return
            if outcome.sent:
                self.ledger.mark_sent(row.id, attempts, outcome.code, outcome.reply)
                self.limiter.success()
                self.stats.add("sent")
                self.progress.advance()
                return
            if outcome.status == "permanent":
                self._record_failure(row, attempts, outcome)
                return
            if outcome.code in THROTTLE_CODES:
                self.limiter.throttle()
            if attempts >= self.options.max_attempts or self.stop.is_set() or self._abort.is_set():
                self.ledger.mark_deferred(row.id, attempts, outcome.code, outcome.reply)
                self.stats.add("deferred")
                self.progress.advance()
                if not outcome.reachable:
                    self._give_up(DeliveryError(f"{outcome.reply} (after {attempts} tries); nothing lost, rerun"))
                return
            self.stats.add("retried")
            if self.stop.wait(self.options.backoff(attempts)):
                self.ledger.mark_deferred(row.id, attempts, outcome.code, outcome.reply)
                self.stats.add("deferred")
                return

    def _record_failure(self, row: Row, attempts: int, outcome: Outcome) -> None:
        self.ledger.mark_failed(row.id, attempts, outcome.code, outcome.reply)
        self.stats.add("failed")
        with self.stats.lock:
            if len(self.stats.failures) < MAX_PROBLEMS:
                self.stats.failures.append(f"{row.address}: {outcome.reply}")
        if self.options.suppress_bounces and _BAD_MAILBOX.match(outcome.reply):
            self.suppression.add(row.address, "bounced", f"edition {self.day}: {outcome.reply}"[:500])
            self.stats.add("bounced")
        self.progress.advance()

    def run(self, jobs: Iterator[tuple[Row, Envelope]]) -> None:
        """Deliver every job; inline for a one-at-a-time sink, else through a bounded queue to the workers."""
        if self.sink.concurrency <= 1:
            for row, envelope in jobs:
                if self.stop.is_set() or self._abort.is_set():
                    break
                self.deliver(row, envelope)
            return
        import queue

        todo: queue.Queue[tuple[Row, Envelope] | None] = queue.Queue(maxsize=self.sink.concurrency * 2)

        def worker() -> None:
            while (job := todo.get()) is not None:
                if not self._abort.is_set() and not self.stop.is_set():
                    try:
                        self.deliver(*job)
                    except Exception as exc:  # a bug, not a delivery problem: stop everything and re-raise it
                        self.crash = exc
                        self._abort.set()

        threads = [threading.Thread(target=worker, name=f"send-{i}", daemon=True) for i in range(self.sink.concurrency)]
        for t in threads:
            t.start()
        try:
            for job in jobs:
                while not (self.stop.is_set() or self._abort.is_set()):
                    try:
                        todo.put(job, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set() or self._abort.is_set():
                    break
        finally:
            for _ in threads:
                todo.put(None)
            for t in threads:
                t.join()
        if self.crash is not None:
            raise self.crash


# --- the public functions --------------------------------------------------------------------------


def send_edition(
    settings: Settings,
    day: date | None,
    *,
    subscribers: str | Path | None = None,
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
) -> SendReport:
    """Send edition `day` (None: the newest) to every subscriber; see the module docstring.

    `sink` defaults to SMTP (`smtp` or `[smtp] url`) else the outbox `outbox/<date>/mail/`; a dry run
    uses none. `limit` sends to the first N pending subscribers only (recorded as usual, so the next run
    sends the rest); `to` sends one test copy to that address, outside the ledger. Setting `stop` makes
    the run finish the messages in flight and return.
    """
    started = time.monotonic()
    secret = secret_from_env()  # before anything else: no message may go out without a working unsubscribe link
    options = MailingOptions.from_settings(settings)
    limiter = RateLimiter(configured_rate(settings, rate))
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be 0 or more, got {limit}")
    if to is not None:
        built = build(settings, day)
        test_sink = sink or make_sink(settings, built.edition.date, smtp=smtp, connections=1, kind="test")
        line = _send_one(settings, built, secret, test_sink, to, now)
        return SendReport(
            1, 0, 0, 0, 0, edition=built.edition.date, sent_now=1, test=True, sink=line, elapsed=_since(started)
        )
    spec = subscribers or options.subscribers
    if spec is None:
        raise SubscriberError("no subscriber list: pass --subscribers FILE or set [mailing] subscribers")
    source = SubscriberSource(spec, settings.root)
    built = build(settings, day)
    day = built.edition.date
    personalizer = Personalizer(settings, built.edition, secret=secret, date=(now or datetime.now(UTC)))
    report = SendReport(0, 0, 0, 0, 0, edition=day, dry_run=dry_run)
    if not personalizer.fast:
        report.warnings.append(
            "the templates use the personal fields in a way the fast path cannot splice "
            f"({personalizer.mismatch}); rendering every message in full (slower)"
        )
    path = ledger_path(settings, day)
    with contextlib.ExitStack() as stack:
        if dry_run:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsletter-dry-run-")))
            copy = tmp / path.name
            if path.exists():
                with Ledger(path, readonly=True) as real:
                    real.backup_to(copy)
            ledger = stack.enter_context(Ledger(copy))
            the_sink: Sink = NullSink()
        else:
            stack.enter_context(EditionLock(path.with_suffix(".lock"), f"edition {day}"))
            ledger = stack.enter_context(Ledger(path))
            the_sink = sink or make_sink(settings, day, smtp=smtp, connections=connections)
        report.sink = "dry run (nothing sent)" if dry_run else the_sink.describe()
        suppression = stack.enter_context(SuppressionList(suppression_path(settings)))
        _check_edition(ledger, built.rendered.html, built.rendered.text, report)
        the_sink.open()  # an unreachable server fails here, before the ledger changes
        stack.callback(the_sink.close)
        run = ledger.start_run(source.name, report.sink)
        status = "error"
        delivery: _Delivery | None = None
        try:
            _enrol(ledger, run, source, report)
            to_send = ledger.count_pending(run)
            if limit is not None:
                report.limited = to_send > limit
                to_send = min(to_send, limit)
            bar = _Progress(progress, to_send, f"sending {day}")
            stop_event = stop or threading.Event()
            delivery = _Delivery(
                ledger=ledger,
                sink=the_sink,
                limiter=limiter,
                options=options,
                suppression=suppression,
                stop=stop_event,
                progress=bar,
                day=day,
            )
            sending = time.monotonic()
            try:
                delivery.run(_jobs(ledger, run, personalizer, suppression, delivery, settings, limit))
            finally:
                bar.close()
                report.send_seconds = _since(sending)
            report.stopped = stop_event.is_set() and ledger.count_pending(run) > 0
            if delivery.fatal is not None:
                status = "unreachable"
                raise delivery.fatal
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
    report.elapsed = _since(started)
    return report


def _since(started: float) -> float:
    return time.monotonic() - started


def _check_edition(ledger: Ledger, html: str, text: str, report: SendReport) -> None:
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


def _enrol(ledger: Ledger, run: int, source: SubscriberSource, report: SendReport) -> None:
    """Stream the list into the ledger, a few thousand rows per transaction."""

    def problem(p: Problem) -> None:
        report.invalid += 1
        if len(report.problems) < MAX_PROBLEMS:
            report.problems.append(str(p))

    rows = source.rows(problem)
    while True:
        n = 0
        with ledger.batch():
            for sub in rows:
                first = ledger.enrol(run, sub.address, sub.name, sub.locale, sub.line)
                if first is not None:
                    report.duplicates += 1
                    if len(report.problems) < MAX_PROBLEMS:
                        report.problems.append(
                            f"{source.path.name}:{sub.line}: duplicate of line {first} ({sub.address})"
                        )
                n += 1
                if n >= 5000:
                    break
        if n < 5000:
            break
    report.removed = ledger.retire_unseen(run)


def _jobs(
    ledger: Ledger,
    run: int,
    personalizer: Personalizer,
    suppression: SuppressionList,
    delivery: _Delivery,
    settings: Settings,
    limit: int | None,
) -> Iterator[tuple[Row, Envelope]]:
    sender = MailingOptions.from_settings(settings).return_path or settings.sender.address
    handed = 0
    for row in ledger.pending(run):
        if limit is not None and handed >= limit:
            return
        if row.address in suppression:  # checked now, not at enrolment: an unsubscribe mid-run counts
            ledger.mark_skipped(row.id, "suppressed")
            delivery.stats.add("suppressed")
            continue
        handed += 1
        yield row, Envelope(sender, row.address, personalizer.message(row.address, row.name), key=str(row.id))


def _send_one(settings: Settings, built: Any, secret: bytes, sink: Sink, address: str, now: datetime | None) -> str:
    try:
        to = check_address(address)
    except ValueError as exc:
        raise SubscriberError(f"--to: {exc}") from None
    personalizer = Personalizer(settings, built.edition, secret=secret, date=(now or datetime.now(UTC)))
    data = personalizer.message(to, "", msg_id=personalizer.test_message_id())
    sender = MailingOptions.from_settings(settings).return_path or settings.sender.address
    with sink:
        outcome = sink.send(Envelope(sender, to, data, key="test"))
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
    built = build(settings, day)
    sink = make_sink(settings, built.edition.date, connections=1, kind="test")
    return _send_one(settings, built, secret, sink, address, None)


def ledger_report(settings: Settings, day: date) -> SendReport | None:
    """The ledger's counts for edition `day`; None when it was never sent."""
    path = ledger_path(settings, day)
    if not path.exists():
        return None
    with Ledger(path, readonly=True) as ledger:
        counts = ledger.counts()
        runs = ledger.runs()
        failures = [f"{r['address']}: {r['reply']}" for r in ledger.rows("failed", limit=MAX_PROBLEMS)]
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
    )
    if last:
        report.warnings.append(
            f"{len(runs)} run(s); the last started {last['started_at']} and "
            + (f"ended {last['finished_at']} ({last['status']})" if last.get("finished_at") else "never finished")
        )
    return report
