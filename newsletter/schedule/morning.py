"""The morning job itself, with an injected clock: grace check, claim, intake, send, record."""

from __future__ import annotations

import enum
import logging
import threading
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from .. import logs
from ..config import Settings
from ..errors import NewsletterError
from ..storage import this_owner
from .config import (
    MAX_LISTED_FAILURES,
    MAX_LISTED_MISSES,
    ScheduleConfig,
    fire_times,
    format_duration,
    in_zone,
    latest_fire,
    read_config,
)
from .runs import DONE, SETTLED, RunRow, RunStore, State, open_run_store

log = logging.getLogger("newsletter.schedule")

# --- the job ----------------------------------------------------------------------------------------

# How a morning resumed names the run it takes over.
_RESUMED = {State.RUNNING: "crashed", State.INTERRUPTED: "stopped", State.FAILED: "failed"}


class Report(Protocol):
    """What `newsletter.delivery.send.send_edition` returns (its SendReport)."""

    sent: int
    failed: int
    skipped: int
    retried: int
    pending: int

    @property
    def complete(self) -> bool: ...


class SendFn(Protocol):
    def __call__(self, settings: Settings, day: date, *, stop: threading.Event | None = ...) -> Report: ...


def send_with_mailing(
    settings: Settings, day: date, *, stop: threading.Event | None = None, join: bool = False
) -> Report:
    """The real job. First the editions are written where their links lead — `outbox/<date>/` (with the
    manifest naming any story left out) and the web archive in `site/` — so "view in browser" and every
    story link answer the moment the email arrives. Then `newsletter.delivery.send_languages` delivers
    each language edition to its readers, recording every recipient in its ledger (a rerun resumes).
    `join`: help the mailings another daemon started (PostgreSQL).

    With no subscriber list configured and no subscriber store (and nothing to join), that first step is
    the whole morning: nothing is sent and no unsubscribe secret is needed."""
    from ..delivery import SendReport, has_subscriber_list, send_languages

    where, skipped = _publish(settings, day)
    if join or has_subscriber_list(settings):
        report = send_languages(settings, day, stop=stop, progress=False, join=join).combined()
        report.stories_skipped = sorted(set(report.stories_skipped) | set(skipped))
        return report
    log.info("edition %s: built %s; no subscriber list: nothing sent", day, where)
    report = SendReport(0, 0, 0, 0, 0, edition=day, sink=f"outbox {where} (no subscriber list)")
    report.stories_skipped = skipped
    return report


def _publish(settings: Settings, day: date) -> tuple[str, list[str]]:
    """Write each language edition of `day` to the outbox and its web side to the archive. A web archive
    that cannot be written is logged and never stops the morning: the email still goes out."""
    from ..edition import build_editions, write_edition
    from ..web import publish_edition

    editions = build_editions(settings, day, skip_invalid=True)
    outs = []
    for built in editions.builds:
        outs.append(f"{write_edition(built)} ({len(built.edition.stories)} stories)")
        try:
            site = publish_edition(built.settings, built.manifest, built.edition.stories)
        except NewsletterError as exc:
            log.error("edition %s: web archive not updated: %s; run `newsletter site` once fixed", day, exc)
            continue
        for warning in site.warnings:
            log.warning("edition %s: web archive: %s", day, warning)
    return ", ".join(outs), sorted({str(e) for built in editions.builds for e in built.skipped})


def preflight(settings: Settings) -> None:
    """What would make every morning fail, found at start-up: a daemon that cannot send refuses to start
    (one clear line under systemd) rather than log the same failure each morning."""
    from ..delivery import MailingOptions, config_from_settings, has_subscriber_list, secret_from_env, smtp_url

    MailingOptions.from_settings(settings)  # a bad [mailing] table stops start-up
    if has_subscriber_list(settings):  # else: build into the outbox only
        secret_from_env()
    if smtp_url(settings) is not None:
        config_from_settings(settings)
    if settings.section("intake").get("feeds"):
        from ..intake import intake_options

        intake_options(settings)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    EMPTY = "empty"
    ALREADY_DONE = "already done"
    NOTHING_DUE = "nothing due"
    SKIPPED = "skipped"
    BUSY = "busy"
    JOINED = "joined"  # another daemon runs the morning; this one helped it send (PostgreSQL)
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class RunResult:
    edition: date
    scheduled: datetime
    outcome: Outcome
    detail: str
    attempts: int = 0
    duration: float = 0.0
    report: Report | None = None


class Morning:
    """The scheduled job: send the edition of the morning a fire time belongs to, exactly once.

    Everything time-dependent reads `clock()`, so tests walk through DST changes, late wake-ups and
    double fires without sleeping. `send` defaults to the mailing pipeline.
    """

    def __init__(
        self,
        settings: Settings,
        config: ScheduleConfig | None = None,
        *,
        send: SendFn | None = None,
        clock: Callable[[], datetime] = utc_now,
        store: RunStore | None = None,
        stop: threading.Event | None = None,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or read_config(settings)
        self.trigger = self.config.trigger()
        self.send = send or send_with_mailing
        self.clock = clock
        self.store = store or open_run_store(settings)
        self.stop = stop or threading.Event()
        self.owner = owner or this_owner()

    def edition_for(self, scheduled: datetime) -> date:
        """A morning sends the edition dated that day, in the schedule's time zone."""
        return in_zone(scheduled, self.config.timezone).date()

    def _local(self, moment: datetime) -> str:
        return in_zone(moment, self.config.timezone).isoformat(timespec="seconds")

    # What to do at start-up, and when the scheduler fires.

    def due_at_start(self) -> datetime | None:
        """Account for the mornings that passed while the daemon was down; return the one to catch up.

        Only the latest morning can be caught up, and only within the grace period; every earlier one is
        logged as skipped, so a long outage never turns into a burst of stale editions. A morning whose
        run crashed or was stopped is resumed the same way.
        """
        now = self.clock()
        latest = latest_fire(self.trigger, now)
        if latest is None:
            return None
        since = self.store.accounted_through()
        if since is None:  # first start ever: only a morning still within the grace period counts
            missed = [latest] if now - latest <= self.config.grace else []
        else:
            missed = fire_times(self.trigger, since, now)
        if not missed:
            row = self.store.get(self.edition_for(latest))
            if row is not None and row.state in (State.FAILED, State.INTERRUPTED, State.RUNNING):
                missed = [latest]
        due = missed.pop() if missed and now - missed[-1] <= self.config.grace else None
        self._log_skipped(missed, now, why="the scheduler was not running")
        if due is not None:
            row = self.store.get(self.edition_for(due))
            if row is not None and row.state in SETTLED and not self._looks_again(row, due, now):
                due = None
        if due is None:
            self.store.advance(latest)
        return due

    def fire(self) -> RunResult:
        """The cron job: run the latest morning, after logging any that a long sleep coalesced away."""
        now = self.clock()
        scheduled = latest_fire(self.trigger, now)
        if scheduled is None:  # a job store from an older configuration fired off-schedule
            scheduled = now
        since = self.store.accounted_through()
        if since is not None:
            if scheduled <= since and self.store.get(self.edition_for(scheduled)) is None:
                # Accounted for at start-up (first start past its grace period): a stray fire changes nothing.
                return RunResult(self.edition_for(scheduled), scheduled, Outcome.NOTHING_DUE, "nothing due")
            self._log_skipped(fire_times(self.trigger, since, scheduled)[:-1], now, why="the machine was asleep")
        return self.run(scheduled)

    def missed(self, scheduled: datetime) -> None:
        """APScheduler's misfire: the job woke up past the grace period."""
        now = self.clock()
        scheduled = scheduled.astimezone(UTC)
        since = self.store.accounted_through()
        earlier = fire_times(self.trigger, since, scheduled) if since is not None else [scheduled]
        if not earlier or earlier[-1] != scheduled:
            earlier.append(scheduled)
        self._log_skipped(earlier, now, why="the scheduler woke up too late")

    def _log_skipped(self, mornings: list[datetime], now: datetime, *, why: str) -> None:
        if len(mornings) > MAX_LISTED_MISSES:
            older = mornings[:-MAX_LISTED_MISSES]
            log.error(
                "SKIPPED %d editions from %s to %s (%s); none will be sent",
                len(older),
                self.edition_for(older[0]),
                self.edition_for(older[-1]),
                why,
            )
            for scheduled in older:
                self.store.skip(self.edition_for(scheduled), scheduled, now, f"past the grace period ({why})")
            mornings = mornings[-MAX_LISTED_MISSES:]
        for scheduled in mornings:
            self._skip(scheduled, now, why)
        if mornings:
            self.store.advance(mornings[-1])

    def _skip(self, scheduled: datetime, now: datetime, why: str) -> bool:
        day = self.edition_for(scheduled)
        late = now - scheduled
        detail = (
            f"{format_duration(late)} late, past the {format_duration(self.config.grace)} grace period ({why}); "
            "a stale edition is never sent"
        )
        if self.store.skip(day, scheduled, now, detail):
            log.error("SKIPPED edition %s: scheduled %s, %s", day, self._local(scheduled), detail)
            return True
        return False

    def _join(self, day: date, scheduled: datetime, detail: str, attempts: int) -> RunResult:
        """Another daemon owns the morning: send its mailing alongside it, as one more sender."""
        log.info("edition %s: %s; joining its mailing as a sender", day, detail)
        started = _time.monotonic()
        try:
            report = send_with_mailing(self.settings, day, stop=self.stop, join=True)
        except Exception as exc:  # the owner records the morning; a helper's failure is only logged
            log.error("edition %s: joining the mailing failed: %s", day, _reason(exc))
            return RunResult(day, scheduled, Outcome.BUSY, detail, attempts)
        took = _time.monotonic() - started
        summary = f"helped {detail.removeprefix('already being sent by ')}: sent {getattr(report, 'sent_now', 0)} here"
        log.info("edition %s: %s in %.1f s", day, summary, took)
        return RunResult(day, scheduled, Outcome.JOINED, summary, attempts, took, report)

    # One run.

    def run(self, scheduled: datetime, *, manual: bool = False) -> RunResult:
        """Send the edition of the morning `scheduled`, unless it is done, stale, or running elsewhere.

        `manual` (`--run-now`) is an operator's decision: no grace check. Never raises for a failed
        send: the failure is recorded and returned, so the daemon stays up and retries.
        """
        with logs.context(edition=self.edition_for(scheduled), run_id=logs.new_run_id()):
            return self._run(scheduled, manual=manual)

    def _run(self, scheduled: datetime, *, manual: bool) -> RunResult:
        day = self.edition_for(scheduled)
        now = self.clock()
        not_now = self._not_now(day, scheduled, now, manual)
        if not_now is not None:
            return not_now
        claimed, before = self.store.claim(day, scheduled, self.owner, now)
        self.store.advance(scheduled)
        if not claimed:
            assert before is not None
            if before.state in DONE:
                return RunResult(day, scheduled, Outcome.ALREADY_DONE, f"already {before.state.value}")
            detail = f"already being sent by {before.owner} since {self._local(before.started_at or now)}"
            if self.settings.database_url and before.state == State.RUNNING:
                return self._join(day, scheduled, detail, before.attempts)
            log.warning("edition %s: %s; not starting a second run", day, detail)
            return RunResult(day, scheduled, Outcome.BUSY, detail, before.attempts)
        attempt = (before.attempts if before else 0) + 1
        resuming = f", resuming a {_RESUMED[before.state]} run" if before and before.state in _RESUMED else ""
        log.info(
            "edition %s: run started (%s %s, attempt %d%s)",
            day,
            "manual run at" if manual else "scheduled",
            self._local(scheduled),
            attempt,
            resuming,
        )
        started = _time.monotonic()
        try:
            self._bounces()
            self._intake()
            empty = self._empty_window(day)
            if empty:
                self.store.finish(day, State.EMPTY, self.clock(), empty)
                log.info("edition %s: %s; no email sent (looked at again until the grace period ends)", day, empty)
                return RunResult(day, scheduled, Outcome.EMPTY, empty, attempt, _time.monotonic() - started)
            report = self.send(self.settings, day, stop=self.stop)
        except Exception as exc:
            took = _time.monotonic() - started
            reason = _reason(exc)
            self.store.finish(day, State.FAILED, self.clock(), reason)
            from ..edition import StoriesInvalid

            if isinstance(exc, StoriesInvalid):  # every broken story, once per attempt
                for error in exc.errors:
                    log.error("edition %s: %s", day, error)
            if isinstance(exc, NewsletterError):
                log.error("edition %s: run failed after %.1f s (attempt %d): %s", day, took, attempt, reason)
            else:  # a bug, not an operating condition: keep the traceback
                log.exception("edition %s: run failed after %.1f s (attempt %d): %s", day, took, attempt, reason)
            return RunResult(day, scheduled, Outcome.FAILED, reason, attempt, took)
        took = _time.monotonic() - started
        counts = {k: int(getattr(report, k, 0)) for k in ("sent", "failed", "skipped", "retried", "pending")}
        summary = ", ".join(f"{k} {v}" for k, v in counts.items())
        left_out = len(getattr(report, "stories_skipped", []))
        if left_out:
            summary += f", {left_out} story(ies) left out"
        self._log_details(day, report)
        sink = getattr(report, "sink", "")
        if sink:
            summary += f" via {sink}"
        if report.complete:
            self.store.finish(day, State.COMPLETED, self.clock(), summary, counts)
            level = logging.WARNING if counts["failed"] else logging.INFO
            log.log(level, "edition %s: completed in %.1f s: %s", day, took, summary)
            return RunResult(day, scheduled, Outcome.COMPLETED, summary, attempt, took, report)
        self.store.finish(day, State.INTERRUPTED, self.clock(), summary, counts)
        log.warning(
            "edition %s: stopped after %.1f s with %d message(s) pending (%s); a restart within the grace period "
            "resumes it",
            day,
            took,
            counts["pending"],
            summary,
        )
        return RunResult(day, scheduled, Outcome.INTERRUPTED, summary, attempt, took, report)

    def _not_now(self, day: date, scheduled: datetime, now: datetime, manual: bool) -> RunResult | None:
        """Why this morning is not run now — stopping, done, empty past its grace, too late — or None."""
        if self.stop.is_set():
            return RunResult(day, scheduled, Outcome.STOPPED, "stopping: not starting a new run")
        row = self.store.get(day)
        if row is not None and row.state in DONE:
            self.store.advance(scheduled)
            detail = f"already {row.state.value} at {self._local(row.finished_at or now)}; not sending it again"
            log.info("edition %s: %s", day, detail)
            return RunResult(day, scheduled, Outcome.ALREADY_DONE, detail, row.attempts)
        if row is not None and row.state == State.EMPTY and not manual and not self._looks_again(row, scheduled, now):
            detail = f"{row.detail}; past the grace period, not looked at again"
            return RunResult(day, scheduled, Outcome.ALREADY_DONE, detail, row.attempts)
        if not manual and now - scheduled > self.config.grace:
            self._skip(scheduled, now, "the run started too late")
            self.store.advance(scheduled)
            row = self.store.get(day)
            return RunResult(day, scheduled, Outcome.SKIPPED, row.detail if row else "skipped")
        return None

    def _looks_again(self, row: RunRow, scheduled: datetime, now: datetime) -> bool:
        """An empty morning is looked at again until its grace period ends (a late story still makes it)."""
        return row.state == State.EMPTY and now - scheduled <= self.config.grace

    def _log_details(self, day: date, report: Report) -> None:
        """The mailing report's warnings and permanent failures, capped: a bad list is not a log flood."""
        for line in getattr(report, "stories_skipped", ()):
            log.error("edition %s: story left out: %s", day, line)
        for warning in getattr(report, "warnings", ()):
            log.warning("edition %s: %s", day, warning)
        failures = list(getattr(report, "failures", ()))
        for line in failures[:MAX_LISTED_FAILURES]:
            log.warning("edition %s: not delivered: %s", day, logs.mask_addresses(line))  # the domain, not who
        if len(failures) > MAX_LISTED_FAILURES:
            log.warning(
                "edition %s: %d more not delivered; `newsletter status --date %s --failed` lists them",
                day,
                len(failures) - MAX_LISTED_FAILURES,
                day,
            )

    def _bounces(self) -> None:
        """Read the bounce mailbox first, so the morning skips who bounced or complained overnight."""
        from ..bounces import scheduled_pass

        scheduled_pass(self.settings, log)

    def _intake(self) -> None:
        """Fetch the configured feeds first, so the morning's edition holds the night's stories."""
        if not self.settings.section("intake").get("feeds"):
            return
        from ..intake import import_configured

        started = _time.monotonic()
        try:
            report = import_configured(self.settings)
        except NewsletterError as exc:  # a broken feed setup must not cost the morning its email
            log.error("intake failed, sending with the stories already on disk: %s", exc)
            return
        except Exception:  # nor a bug in the intake: keep the traceback, send what there is
            log.exception("intake failed unexpectedly, sending with the stories already on disk")
            return
        for line in report.failed:
            log.warning("intake: %s", line)
        log.info(
            "intake in %.1f s: %d written, %d updated, %d unchanged, %d failed",
            _time.monotonic() - started,
            report.written,
            report.updated,
            report.unchanged,
            len(report.failed),
        )

    def _empty_window(self, day: date) -> str | None:
        """A one-line reason when no story falls in the edition's window (and none is broken)."""
        from ..edition import load_stories, own_skipped, window

        loaded = load_stories(self.settings.stories_dir, self.settings.root, self.settings.base_url)
        if own_skipped(loaded, day, self.settings):
            return None  # let the send report the morning's broken files rather than call the morning empty
        start, end = window(day, self.settings)
        if any(start <= s.published < end for s in loaded.stories):
            return None
        return (
            f"no stories published between {start.isoformat(timespec='minutes')} "
            f"and {end.isoformat(timespec='minutes')}"
        )


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, NewsletterError) and text else f"{type(exc).__name__}: {text}"
