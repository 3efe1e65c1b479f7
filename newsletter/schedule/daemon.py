"""The daemon: BlockingScheduler + SQLAlchemy job store + the one-daemon lock + signals + retries."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .. import logs, metrics
from ..config import Settings
from ..errors import LockedError, StorageError
from ..letters import default_settings
from ..storage import ProcessLock, lock_key
from .config import (
    JOB_ID,
    MorningTrigger,
    ScheduleConfig,
    config_for,
    format_duration,
    in_zone,
    newsletter_config,
)
from .morning import Morning, Outcome, RunResult, SendFn, preflight, send_with_mailing, utc_now
from .runs import data_dir, store_path

log = logging.getLogger("newsletter.schedule")

# --- the lock ---------------------------------------------------------------------------------------


def job_store(settings: Settings) -> dict[str, Any]:
    """Where APScheduler keeps this daemon's schedule: next to the runs table, in PostgreSQL when
    `database_url` is set. APScheduler does not share a job store between schedulers, so each daemon of a
    fleet (host and folder) has a table of its own there; a connection the server dropped (a restart) is
    noticed and replaced before it is used (`pool_pre_ping`)."""
    url = settings.database_url
    if not url:
        return {"url": f"sqlite:///{store_path(settings)}"}
    owner = f"{socket.gethostname()}:{settings.root.resolve()}"
    return {
        "url": "postgresql+psycopg://" + url.split("://", 1)[1],
        "tablename": f"apscheduler_jobs_{lock_key(owner):08x}",
        "engine_options": {"pool_pre_ping": True},
    }


def lock_path(settings: Settings) -> Path:
    return data_dir(settings) / "schedule.lock"


@contextlib.contextmanager
def scheduler_lock(settings: Settings) -> Iterator[None]:
    """Hold the one-daemon-per-root lock (released by the kernel if the process dies)."""
    path = lock_path(settings)
    refused = f"another `newsletter schedule` is already running for {settings.root} (pid {{}}, lock {path})"
    with ProcessLock(path, refused.format):
        yield


# --- the daemon -------------------------------------------------------------------------------------

# The job in the SQLite job store is stored by reference ("newsletter.schedule:morning_job") with the
# root as its only argument; it finds its live daemon here.
_ACTIVE: dict[str, Daemon] = {}


def morning_job(root: str, key: str = JOB_ID) -> str:
    daemon = _ACTIVE.get(root)
    if daemon is None:
        raise RuntimeError(f"no scheduler is running for {root}")
    return daemon.on_fire(key)


def executor_of(key: str) -> str:
    return f"newsletter-{key}"


def _job_name(key: str) -> str:
    if key == JOB_ID:
        return "morning edition"
    if key.startswith(f"{JOB_ID}:"):
        return f"edition of {key.split(':', 1)[1]}"
    return f"morning edition, {key.split('@', 1)[1]}"


def newsletter_mornings(settings: Settings, config: ScheduleConfig, **kwargs: Any) -> tuple[dict[str, Morning], bool]:
    """The mornings of every scheduled newsletter other than the default one, keyed `morning:<id>`, and
    whether the default newsletter is scheduled at all (a single `[list]` always is)."""
    from ..letters import for_newsletter, newsletters

    found: dict[str, Morning] = {}
    default = False
    for letter in newsletters(settings):
        if letter.on_demand:
            continue
        one = for_newsletter(settings, letter)
        if not one.file_prefix:
            default = True
            continue
        found[f"{JOB_ID}:{letter.id}"] = Morning(one, newsletter_config(config, letter), **kwargs)
    return found, default


def bounces_job(root: str) -> None:
    daemon = _ACTIVE.get(root)
    if daemon is not None:
        from ..bounces import scheduled_pass

        scheduled_pass(daemon.settings, log)


class Daemon:
    """`newsletter schedule`: a BlockingScheduler running the morning job until SIGTERM/SIGINT."""

    def __init__(
        self,
        settings: Settings,
        config: ScheduleConfig | None = None,
        *,
        send: SendFn | None = None,
        clock: Callable[[], datetime] = utc_now,
        install_signals: bool = True,
    ) -> None:
        self.settings = settings = default_settings(settings)
        self.config = config or config_for(settings)
        self.stop_event = threading.Event()
        self.morning = Morning(settings, self.config, send=send, clock=clock, stop=self.stop_event)
        # One Morning per job: the list's, or with `per_timezone` one per zone of the list (JOB_ID is
        # the schedule's own zone, so a job stored before the switch is taken over, never left to fire).
        self.mornings: dict[str, Morning] = {JOB_ID: self.morning}
        # Every other scheduled newsletter's morning (`morning:<id>`), each with its rhythm and runs.
        self.letters, self.default_scheduled = newsletter_mornings(
            settings, self.config, send=send, clock=clock, stop=self.stop_event
        )
        self._send = send
        self.clock = clock
        self.install_signals = install_signals
        self.started = threading.Event()
        self.results: list[RunResult] = []
        self._signal: str | None = None
        self.scheduler: Any = None
        self.lost_database = False  # gave up on PostgreSQL after `[database] reconnect_seconds`

    def request_stop(self, reason: str = "stop requested") -> None:
        """Thread- and signal-safe: the in-flight message finishes, then the scheduler shuts down."""
        self._signal = self._signal or reason
        self.stop_event.set()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.request_stop(signal.Signals(signum).name)

    def run(self) -> int:
        if self.morning.send is send_with_mailing:
            preflight(self.settings)
        root = str(self.settings.root)
        with self._signals_handled(), scheduler_lock(self.settings):
            if root in _ACTIVE:
                raise LockedError(f"a scheduler is already running for {root} in this process")
            self.scheduler = self._new_scheduler()
            self._add_morning_jobs(root)
            self._add_bounces_job(root)
            self._serve(root)
        log.info("scheduler stopped (%s)", self._signal or "shut down")
        return 1 if self.lost_database else 0

    @contextlib.contextmanager
    def _signals_handled(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop the daemon while it runs; the handlers before it come back after."""
        previous: dict[int, Any] = {}
        if self.install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _new_scheduler(self) -> Any:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.blocking import BlockingScheduler

        scheduler = BlockingScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(**job_store(self.settings)),
                "memory": MemoryJobStore(),  # retries: a restart re-derives them from the runs table
            },
            # One worker per newsletter: its cron job, a catch-up and a retry never run at the same time,
            # and one newsletter's long or failing morning never holds up another's.
            executors={
                "default": ThreadPoolExecutor(max_workers=1),
                **{executor_of(key): ThreadPoolExecutor(max_workers=1) for key in self.letters},
            },
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(self.config.grace.total_seconds()),
            },
            timezone=self.config.timezone,
        )
        scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        scheduler.add_listener(lambda _e: self.started.set(), EVENT_SCHEDULER_STARTED)
        if self.config.per_timezone:
            scheduler.add_listener(self._drop_stale_jobs, EVENT_SCHEDULER_STARTED)
        return scheduler

    def _add_morning_jobs(self, root: str) -> None:
        """One job per morning (the list's, or one per time zone), each first due at a missed morning still
        within its grace period, else at its next time."""
        if self.config.per_timezone:
            self.mornings = self._zone_mornings()
            self.morning = self.mornings[JOB_ID]
        if not self.default_scheduled:  # [newsletters.<id>] without the default one: its morning is not theirs
            self.mornings = {}
        self.mornings.update(self.letters)
        for key, morning in self.mornings.items():
            due = morning.due_at_start()
            now = self.clock()
            trigger = morning.trigger
            first = due or trigger.get_next_fire_time(None, now)
            # replace_existing: the configuration may have changed since the job was stored; the
            # missed-morning accounting above comes from the runs table, not from the stored job.
            self.scheduler.add_job(
                morning_job,
                trigger=trigger,
                args=[root, key],
                id=key,
                name=_job_name(key),
                replace_existing=True,
                next_run_time=first,
                executor=executor_of(key) if key in self.letters else "default",
            )
            if key == JOB_ID:
                self._log_start(due, trigger, now)
            elif due is not None:
                log.warning("catching up the %s batch of edition %s", key, morning.edition_for(due))

    def _add_bounces_job(self, root: str) -> None:
        from ..bounces import configured

        if configured(self.settings):  # and every hour between mornings
            self.scheduler.add_job(bounces_job, "interval", hours=1, args=[root], id="bounces", jobstore="memory")

    def _serve(self, root: str) -> None:
        """Run the scheduler until a stop; a stop asked before the start means no start."""
        watcher = threading.Thread(target=self._watch_stop, name="schedule-stop", daemon=True)
        _ACTIVE[root] = self
        try:
            if self.stop_event.is_set():
                log.info("%s received before start: not starting", self._signal)
            else:
                watcher.start()
                if self.settings.database_url:
                    threading.Thread(target=self._watch_database, name="schedule-database", daemon=True).start()
                self.scheduler.start()
        finally:
            _ACTIVE.pop(root, None)
            self.started.set()  # lets the watcher finish if start() failed
            self.stop_event.set()
            if watcher.is_alive():
                watcher.join()

    def _watch_database(self) -> None:
        """While the daemon waits for its next morning, look at PostgreSQL now and then: the adapter retries
        a lost connection for `[database] reconnect_seconds`; past that the daemon stops with one line
        rather than retrying for ever unseen (started again, it resumes where it was)."""
        from ..storage import open_pg, reconnect_seconds

        patience = reconnect_seconds(self.settings)
        db = open_pg("the scheduler's database", self.settings.database_url, reconnect=patience)
        try:
            while not self.stop_event.wait(min(30.0, max(1.0, patience / 3))):
                try:
                    db.scalar("SELECT 1")
                except StorageError as exc:
                    log.error("%s; the scheduler stops: start it again once the database is back", exc)
                    self.lost_database = True
                    self.request_stop("database lost")
                    return
        finally:
            db.close()

    def _watch_stop(self) -> None:
        self.stop_event.wait()
        self.started.wait()
        log.info("%s: finishing the message in flight, then stopping", self._signal or "stop")
        from apscheduler.schedulers import SchedulerNotRunningError

        with contextlib.suppress(SchedulerNotRunningError):
            self.scheduler.shutdown(wait=True)

    def _log_start(self, due: datetime | None, trigger: MorningTrigger, now: datetime) -> None:
        cfg = self.config
        log.info("scheduler started for %s: %s", self.settings.root, cfg.describe())
        upcoming = trigger.get_next_fire_time(None, now)
        if due is not None:
            log.warning(
                "catching up edition %s: its morning (%s) was %s ago, within the %s grace period",
                self.morning.edition_for(due),
                in_zone(due, cfg.timezone).isoformat(timespec="seconds"),
                format_duration(now - due),
                format_duration(cfg.grace),
            )
        if upcoming is not None:
            log.info("next run: %s", in_zone(upcoming, cfg.timezone).isoformat(timespec="seconds"))
            self._warn_window(upcoming)

    def _warn_window(self, upcoming: datetime) -> None:
        from ..edition import window

        _start, end = window(self.morning.edition_for(upcoming), self.settings)
        if upcoming.astimezone(UTC) < end.astimezone(UTC):
            log.warning(
                "the send time %s comes before the edition's cut-off %s: stories published in between miss the email",
                in_zone(upcoming, self.config.timezone).isoformat(timespec="minutes"),
                end.isoformat(timespec="minutes"),
            )

    def _zone_mornings(self) -> dict[str, Morning]:
        from .zones import ZoneMorning, subscriber_zones

        own = self.config.timezone
        zones = sorted(set(subscriber_zones(self.settings, own)) - {own.key})
        made: dict[str, Morning] = {
            JOB_ID: ZoneMorning(
                self.settings, self.config, own, send=self._send, clock=self.clock, stop=self.stop_event
            )
        }
        for name in zones:
            made[f"{JOB_ID}@{name}"] = ZoneMorning(
                self.settings, self.config, ZoneInfo(name), send=self._send, clock=self.clock, stop=self.stop_event
            )
        log.info("per-time-zone sending: %d zone(s): %s", len(made), ", ".join([own.key, *zones]))
        return made

    def _drop_stale_jobs(self, _event: Any) -> None:
        """Zones no longer in the list (or from an earlier configuration) leave the job store."""
        for job in self.scheduler.get_jobs(jobstore="default"):
            if job.id not in self.mornings:
                log.info("job %s: no reader in that time zone any more; removed", job.id)
                job.remove()

    def on_fire(self, key: str = JOB_ID) -> str:
        morning = self.mornings.get(key)
        if morning is None:  # a zone job stored by an earlier configuration
            log.warning("job %s is not part of this schedule; nothing sent", key)
            return Outcome.NOTHING_DUE.value
        return self._handle(morning.fire(), key)

    def _retry(self, scheduled_iso: str, key: str = JOB_ID) -> str:
        return self._handle(self.mornings[key].run(datetime.fromisoformat(scheduled_iso)), key)

    def _handle(self, result: RunResult, key: str = JOB_ID) -> str:
        self.results.append(result)
        metrics.scheduler_run(self.settings.list.id, result.outcome.value)
        if result.outcome == Outcome.FAILED:
            self._schedule_retry(result, key)
        elif result.outcome == Outcome.EMPTY:
            self._schedule_look_again(result, key)
        return result.outcome.value

    def _schedule_look_again(self, result: RunResult, key: str = JOB_ID) -> None:
        """An empty morning is not done: look again every retry_delay while its grace period lasts."""
        cfg = self.config
        when = self.clock() + cfg.retry_delay
        if when - result.scheduled > cfg.grace:
            log.info("edition %s: still no stories at the end of the grace period; no email", result.edition)
            return
        log.info("edition %s: looking for stories again at %s", result.edition, in_zone(when, cfg.timezone))
        self._add_retry_job(result, key, when)

    def _add_retry_job(self, result: RunResult, key: str, when: datetime) -> None:
        """One more look at this morning at `when` (a retry after a failure, or an empty morning again)."""
        self.scheduler.add_job(
            self._retry,
            trigger="date",
            run_date=when,
            args=[result.scheduled.isoformat(), key],
            id=f"retry-{key}-{result.edition.isoformat()}",
            jobstore="memory",
            replace_existing=True,
            misfire_grace_time=None,  # the job checks the grace period itself
        )

    def _schedule_retry(self, result: RunResult, key: str = JOB_ID) -> None:
        cfg = self.config
        if result.attempts > cfg.retries:
            log.error(
                "edition %s: giving up after %d attempt(s); a restart within the grace period tries again",
                result.edition,
                result.attempts,
            )
            return
        when = self.clock() + cfg.retry_delay
        if when - result.scheduled > cfg.grace:
            log.error(
                "edition %s: the next retry (%s) would be past the %s grace period; the edition will not be sent",
                result.edition,
                in_zone(when, cfg.timezone).isoformat(timespec="seconds"),
                format_duration(cfg.grace),
            )
            return
        log.warning(
            "edition %s: retry %d of %d at %s",
            result.edition,
            result.attempts,
            cfg.retries,
            in_zone(when, cfg.timezone).isoformat(timespec="seconds"),
        )
        self._add_retry_job(result, key, when)

    def _on_event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MISSED

        if event.code == EVENT_JOB_MISSED and event.job_id in self.mornings:
            self.mornings[event.job_id].missed(event.scheduled_run_time)
        elif event.code != EVENT_JOB_MISSED:
            log.error("job %s raised: %s", event.job_id, event.exception)


def run_now(settings: Settings, *, send: SendFn | None = None, stop: threading.Event | None = None) -> RunResult:
    """`newsletter schedule --run-now`: the job once, in the foreground, for today's edition."""
    settings = default_settings(settings)
    morning = Morning(settings, config_for(settings), send=send, stop=stop)
    result = morning.run(morning.clock(), manual=True)
    metrics.scheduler_run(settings.list.id, result.outcome.value)
    return result


@contextlib.contextmanager
def logging_to_stderr(level: int = logging.INFO) -> Iterator[None]:
    """One line per event on stderr (the journal under systemd, the mail under cron), for one command;
    as JSON when `--log-format json` (or `[logging] format`) already set that up for the process."""
    if logs.chosen_format() == "json":
        yield
        return
    handler = logs.handler("text")
    loggers = {logging.getLogger("newsletter"): level, logging.getLogger("apscheduler"): logging.WARNING}
    before = {logger: logger.level for logger in loggers}
    for logger, lvl in loggers.items():
        logger.setLevel(lvl)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, lvl in before.items():
            logger.removeHandler(handler)
            logger.setLevel(lvl)
