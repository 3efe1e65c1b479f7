"""The morning scheduler: APScheduler wiring around one idempotent job, "send today's edition".

    ScheduleConfig   the `[schedule]` table, validated (at, timezone, days, grace, retries, retry_delay)
    MorningTrigger   APScheduler's CronTrigger, at most one fire per local day (DST fall-back repeats none)
    RunStore         SQLite: one row per edition date (running/completed/empty/failed/interrupted/skipped)
    Morning          the job itself, with an injected clock: grace check, claim, intake, send, record
    Daemon           BlockingScheduler + SQLAlchemy job store + the lock + signals + retries

Why two stores: APScheduler's job store keeps the schedule (trigger, next run) across restarts, but it
moves `next_run_time` forward the moment a job is *submitted*, so it cannot tell a finished morning from
one that crashed half-way. The runs table, keyed by edition date, can: a completed (or empty) edition is
never run again, whatever fires the job — a double fire, a clock change, a restart, a second process —
and a crashed or stopped one is resumed by the mailing ledger when the daemon comes back within the grace
period. Past the grace period nothing is sent: the morning is logged loudly as skipped.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import logging
import os
import re
import signal
import socket
import sqlite3
import threading
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from .config import Settings
from .errors import ConfigError, LockedError, NewsletterError

log = logging.getLogger("newsletter.schedule")

JOB_ID = "morning"
DEFAULTS: dict[str, Any] = {"at": "06:00", "days": "mon-sun", "grace": "3h", "retries": 3, "retry_delay": "10m"}
KEYS = ("at", "timezone", "days", "grace", "retries", "retry_delay")
# How far back to look for "the latest morning": a schedule runs at least once a week.
_LOOKBACK = timedelta(days=8)
# A daemon down for months does not list every lost morning one by one.
_MAX_LISTED_MISSES = 14
_MAX_LISTED_FAILURES = 10


# --- configuration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleConfig:
    at: dtime
    timezone: ZoneInfo
    days: str
    grace: timedelta
    retries: int
    retry_delay: timedelta

    def trigger(self) -> MorningTrigger:
        return MorningTrigger(
            day_of_week=self.days,
            hour=self.at.hour,
            minute=self.at.minute,
            second=self.at.second,
            timezone=self.timezone,
        )

    def describe(self) -> str:
        at = self.at.isoformat("seconds" if self.at.second else "minutes")
        return (
            f"{self.days} at {at} {self.timezone.key}, grace {format_duration(self.grace)}, "
            f"{self.retries} retr{'y' if self.retries == 1 else 'ies'} every {format_duration(self.retry_delay)}"
        )


def read_config(settings: Settings) -> ScheduleConfig:
    """The validated `[schedule]` table; every problem is one line naming the key."""
    raw = settings.section("schedule")
    origin = f"{settings.config_file.name if settings.config_file else 'settings'}: [schedule]"
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"{origin} unknown setting '{unknown[0]}' (known: {', '.join(KEYS)})")
    values = {**DEFAULTS, **raw}

    at_text = values["at"]
    if not isinstance(at_text, str) or not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", at_text):
        raise ConfigError(f"{origin} 'at' must be a 24-hour time HH:MM (or HH:MM:SS), got {at_text!r}")
    try:
        at = dtime.fromisoformat(at_text)
    except ValueError:
        raise ConfigError(f"{origin} 'at' must be a 24-hour time HH:MM (or HH:MM:SS), got {at_text!r}") from None

    tz_name = values.get("timezone", settings.timezone.key)
    try:
        if not isinstance(tz_name, str):
            raise ValueError
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{origin} 'timezone': unknown time zone {tz_name!r} (use a name like Europe/Paris)"
        ) from None

    days = values["days"]
    if not isinstance(days, str) or not days.strip():
        raise ConfigError(f"{origin} 'days' must be a string like 'mon-sun' or 'mon-fri,sun', got {days!r}")
    days = days.strip().lower()
    # APScheduler numbers Monday 0 where cron numbers Sunday 0: names avoid sending on the wrong day.
    if re.search(r"\d", days):
        raise ConfigError(f"{origin} 'days' must use day names (mon,tue,wed,thu,fri,sat,sun), not numbers: {days!r}")
    try:
        CronTrigger(day_of_week=days, hour=at.hour, minute=at.minute, second=at.second, timezone=tz)
    except ValueError:
        raise ConfigError(
            f"{origin} 'days': {days!r} is not a day-of-week expression like 'mon-sun', 'mon-fri' or 'mon,wed,fri'"
        ) from None

    grace = _duration(values["grace"], origin, "grace")
    if not timedelta(minutes=1) <= grace < timedelta(hours=24):
        raise ConfigError(f"{origin} 'grace' must be from 1m to under 24h, got {values['grace']!r}")
    retry_delay = _duration(values["retry_delay"], origin, "retry_delay")
    if retry_delay < timedelta(seconds=1):
        raise ConfigError(f"{origin} 'retry_delay' must be at least 1s, got {values['retry_delay']!r}")
    retries = values["retries"]
    if isinstance(retries, str) and retries.strip().isdigit():  # from NEWSLETTER_SCHEDULE__RETRIES
        retries = int(retries)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise ConfigError(f"{origin} 'retries' must be a whole number from 0 to 100, got {retries!r}")
    return ScheduleConfig(at, tz, days, grace, retries, retry_delay)


_DURATION = re.compile(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?")


def parse_duration(text: str) -> timedelta | None:
    """'3h', '90m', '1h30m', '45s' → timedelta; None when it is not such a duration."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    return text or "0s"


def _duration(value: Any, origin: str, key: str) -> timedelta:
    parsed = parse_duration(value) if isinstance(value, str) else None
    if parsed is None:
        raise ConfigError(f"{origin} '{key}' must be a duration like '3h', '90m' or '1h30m', got {value!r}")
    return parsed


# --- trigger ----------------------------------------------------------------------------------------


class MorningTrigger(CronTrigger):
    """A CronTrigger that fires at most once per local calendar day.

    On a fall-back night a wall-clock time inside the repeated hour (02:30 in Paris) exists twice and
    CronTrigger fires at both; the second would be the same edition again. A time skipped by
    spring-forward is fired by CronTrigger an hour later on the new offset, which is what we want.
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        nxt = super().get_next_fire_time(previous_fire_time, now)
        if nxt is not None and previous_fire_time is not None:
            tz = self.timezone
            if in_zone(nxt, tz).date() == in_zone(previous_fire_time, tz).date():
                tomorrow = in_zone(previous_fire_time, tz).date() + timedelta(days=1)
                nxt = super().get_next_fire_time(None, datetime.combine(tomorrow, dtime(0), tzinfo=tz))
        return nxt


def next_runs(trigger: CronTrigger, start: datetime, count: int) -> list[datetime]:
    """The next `count` fire times at or after `start`, on the local offset in force at each."""
    out: list[datetime] = []
    prev: datetime | None = None
    now = start
    while len(out) < count:
        nxt = trigger.get_next_fire_time(prev, now)
        if nxt is None:
            break
        out.append(in_zone(nxt, trigger.timezone))  # a spring-forward 02:30+01:00 shows as 03:30+02:00
        prev = now = nxt
    return out


def fire_times(trigger: CronTrigger, after: datetime, until: datetime) -> list[datetime]:
    """Every fire time t with after < t <= until, oldest first, in UTC.

    UTC because Python compares and subtracts two datetimes sharing a tzinfo by wall clock, which
    gets a repeated fall-back hour wrong.
    """
    out: list[datetime] = []
    limit = until.astimezone(UTC)
    nxt = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while nxt is not None and nxt.astimezone(UTC) <= limit:
        out.append(nxt.astimezone(UTC))
        nxt = trigger.get_next_fire_time(nxt, nxt)
    return out


def latest_fire(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The most recent fire time at or before `now`, in UTC (None when there is none in the last week)."""
    times = fire_times(trigger, now - _LOOKBACK, now)
    return times[-1] if times else None


def in_zone(moment: datetime, tz: Any) -> datetime:
    """`moment` on the offset really in force in `tz` (astimezone to its own zone would change nothing)."""
    return moment.astimezone(UTC).astimezone(tz)


# --- the runs table ---------------------------------------------------------------------------------


class State(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # every recipient handled (sent, failed for good, or skipped)
    EMPTY = "empty"  # no stories in the window: nothing to send, nothing to retry
    FAILED = "failed"  # the run raised; a retry or a restart within the grace period resumes it
    INTERRUPTED = "interrupted"  # stopped (SIGTERM) with messages pending; resumed like a failure
    SKIPPED = "skipped"  # past the grace period: deliberately never sent


DONE = (State.COMPLETED, State.EMPTY)
_RESUMED = {State.RUNNING: "crashed", State.INTERRUPTED: "stopped", State.FAILED: "failed"}


@dataclass(frozen=True)
class RunRow:
    edition: date
    scheduled: datetime
    state: State
    attempts: int
    owner: str | None
    started_at: datetime | None
    finished_at: datetime | None
    detail: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    edition     TEXT PRIMARY KEY,   -- YYYY-MM-DD, the edition date
    scheduled   TEXT NOT NULL,      -- ISO 8601 instant the run was for
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    owner       TEXT,               -- host:pid of the process that ran it last
    started_at  TEXT,
    finished_at TEXT,
    sent        INTEGER,
    failed      INTEGER,
    skipped     INTEGER,
    pending     INTEGER,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def data_dir(settings: Settings) -> Path:
    """`<root>/data/`, git-ignored, where the mailing ledger and suppression list live too."""
    return settings.root / "data"


def store_path(settings: Settings) -> Path:
    return data_dir(settings) / "schedule.sqlite"


class RunStore:
    """One row per edition date. Every change is one short transaction, safe across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # take the write lock before reading: claims cannot interleave
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def get(self, edition: date) -> RunRow | None:
        with self._connect() as db:
            return _row(db, edition)

    def rows(self) -> list[RunRow]:
        with self._connect() as db:
            names = [r[0] for r in db.execute("SELECT edition FROM runs ORDER BY edition")]
            return [row for name in names if (row := _row(db, date.fromisoformat(name))) is not None]

    def counts(self, edition: date) -> dict[str, int | None]:
        with self._connect() as db:
            found = db.execute(
                "SELECT sent, failed, skipped, pending FROM runs WHERE edition = ?", (edition.isoformat(),)
            ).fetchone()
        return dict(zip(("sent", "failed", "skipped", "pending"), found or (None,) * 4, strict=True))

    def claim(self, edition: date, scheduled: datetime, owner: str, now: datetime) -> tuple[bool, RunRow | None]:
        """Mark the edition running for `owner` unless it is done or a live process is running it.

        Returns (claimed, the row as it was before).
        """
        with self._transaction() as db:
            before = _row(db, edition)
            if before is not None and (
                before.state in DONE
                or (before.state == State.RUNNING and before.owner != owner and owner_alive(before.owner))
            ):
                return False, before
            db.execute(
                "INSERT INTO runs (edition, scheduled, state, attempts, owner, started_at, finished_at, detail) "
                "VALUES (?, ?, 'running', 1, ?, ?, NULL, '') "
                "ON CONFLICT(edition) DO UPDATE SET state = 'running', attempts = attempts + 1, owner = excluded.owner,"
                " started_at = excluded.started_at, finished_at = NULL, scheduled = excluded.scheduled",
                (edition.isoformat(), scheduled.isoformat(), owner, now.isoformat()),
            )
            return True, before

    def finish(
        self, edition: date, state: State, now: datetime, detail: str = "", counts: dict[str, int] | None = None
    ) -> None:
        counts = counts or {}
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET state = ?, finished_at = ?, detail = ?, sent = ?, failed = ?, skipped = ?, "
                "pending = ? WHERE edition = ?",
                (
                    state.value,
                    now.isoformat(),
                    detail,
                    counts.get("sent"),
                    counts.get("failed"),
                    counts.get("skipped"),
                    counts.get("pending"),
                    edition.isoformat(),
                ),
            )

    def skip(self, edition: date, scheduled: datetime, now: datetime, detail: str) -> bool:
        """Record a morning deliberately not sent; False when the row already says done or skipped."""
        with self._transaction() as db:
            before = _row(db, edition)
            if before is not None and before.state in (*DONE, State.SKIPPED):
                return False
            if before is not None and before.state == State.RUNNING and owner_alive(before.owner):
                return False
            db.execute(
                "INSERT INTO runs (edition, scheduled, state, attempts, finished_at, detail) "
                "VALUES (?, ?, 'skipped', 0, ?, ?) "
                "ON CONFLICT(edition) DO UPDATE SET state = 'skipped', finished_at = excluded.finished_at,"
                " detail = excluded.detail",
                (edition.isoformat(), scheduled.isoformat(), now.isoformat(), detail),
            )
            return True

    def get_meta(self, key: str) -> str | None:
        with self._connect() as db:
            found = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def advance(self, through: datetime) -> None:
        """Remember that every morning up to `through` has been accounted for (run, or logged as skipped)."""
        with self._transaction() as db:
            found = db.execute("SELECT value FROM meta WHERE key = 'accounted_through'").fetchone()
            if found is None or datetime.fromisoformat(found[0]) < through:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('accounted_through', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (through.isoformat(),),
                )

    def accounted_through(self) -> datetime | None:
        value = self.get_meta("accounted_through")
        return datetime.fromisoformat(value) if value else None


def _row(db: sqlite3.Connection, edition: date) -> RunRow | None:
    found = db.execute(
        "SELECT edition, scheduled, state, attempts, owner, started_at, finished_at, detail FROM runs "
        "WHERE edition = ?",
        (edition.isoformat(),),
    ).fetchone()
    if found is None:
        return None
    return RunRow(
        date.fromisoformat(found[0]),
        datetime.fromisoformat(found[1]),
        State(found[2]),
        found[3],
        found[4],
        datetime.fromisoformat(found[5]) if found[5] else None,
        datetime.fromisoformat(found[6]) if found[6] else None,
        found[7],
    )


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Is the process that claimed a run still there? Another host's process is assumed alive."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


# --- the job ----------------------------------------------------------------------------------------


class Report(Protocol):
    """What `newsletter.mailing.send_edition` returns (its SendReport)."""

    sent: int
    failed: int
    skipped: int
    retried: int
    pending: int

    @property
    def complete(self) -> bool: ...


class SendFn(Protocol):
    def __call__(self, settings: Settings, day: date, *, stop: threading.Event | None = ...) -> Report: ...


def send_with_mailing(settings: Settings, day: date, *, stop: threading.Event | None = None) -> Report:
    """The real job: `newsletter.mailing.send_edition` builds the edition and delivers it through the
    configured sink, recording every recipient in its ledger (a rerun resumes)."""
    from .mailing import send_edition

    return send_edition(settings, day, stop=stop, progress=False)


def preflight(settings: Settings) -> None:
    """What would make every morning fail, found at start-up: a daemon that cannot send refuses to start
    (one clear line under systemd) rather than log the same failure each morning."""
    from .errors import SubscriberError
    from .mailing import MailingOptions
    from .sinks.smtp import config_from_settings, smtp_url
    from .unsubscribe import secret_from_env

    secret_from_env()
    if MailingOptions.from_settings(settings).subscribers is None:
        raise SubscriberError("no subscriber list: set [mailing] subscribers in newsletter.toml")
    if smtp_url(settings) is not None:
        config_from_settings(settings)
    if settings.section("intake").get("feeds"):
        from .intake import intake_settings

        intake_settings(settings)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    EMPTY = "empty"
    ALREADY_DONE = "already done"
    NOTHING_DUE = "nothing due"
    SKIPPED = "skipped"
    BUSY = "busy"
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
        self.store = store or RunStore(store_path(settings))
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
            if row is not None and row.state in (*DONE, State.SKIPPED):
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
        if len(mornings) > _MAX_LISTED_MISSES:
            older = mornings[:-_MAX_LISTED_MISSES]
            log.error(
                "SKIPPED %d editions from %s to %s (%s); none will be sent",
                len(older),
                self.edition_for(older[0]),
                self.edition_for(older[-1]),
                why,
            )
            for scheduled in older:
                self.store.skip(self.edition_for(scheduled), scheduled, now, f"past the grace period ({why})")
            mornings = mornings[-_MAX_LISTED_MISSES:]
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

    # One run.

    def run(self, scheduled: datetime, *, manual: bool = False) -> RunResult:
        """Send the edition of the morning `scheduled`, unless it is done, stale, or running elsewhere.

        `manual` (`--run-now`) is an operator's decision: no grace check. Never raises for a failed
        send: the failure is recorded and returned, so the daemon stays up and retries.
        """
        day = self.edition_for(scheduled)
        if self.stop.is_set():
            return RunResult(day, scheduled, Outcome.STOPPED, "stopping: not starting a new run")
        now = self.clock()
        row = self.store.get(day)
        if row is not None and row.state in DONE:
            self.store.advance(scheduled)
            detail = f"already {row.state.value} at {self._local(row.finished_at or now)}; not sending it again"
            log.info("edition %s: %s", day, detail)
            return RunResult(day, scheduled, Outcome.ALREADY_DONE, detail, row.attempts)
        if not manual and now - scheduled > self.config.grace:
            self._skip(scheduled, now, "the run started too late")
            self.store.advance(scheduled)
            row = self.store.get(day)
            return RunResult(day, scheduled, Outcome.SKIPPED, row.detail if row else "skipped")
        claimed, before = self.store.claim(day, scheduled, self.owner, now)
        self.store.advance(scheduled)
        if not claimed:
            assert before is not None
            if before.state in DONE:
                return RunResult(day, scheduled, Outcome.ALREADY_DONE, f"already {before.state.value}")
            detail = f"already being sent by {before.owner} since {self._local(before.started_at or now)}"
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
            self._intake()
            empty = self._empty_window(day)
            if empty:
                self.store.finish(day, State.EMPTY, self.clock(), empty)
                log.info("edition %s: %s; no email sent", day, empty)
                return RunResult(day, scheduled, Outcome.EMPTY, empty, attempt, _time.monotonic() - started)
            report = self.send(self.settings, day, stop=self.stop)
        except Exception as exc:
            took = _time.monotonic() - started
            reason = _reason(exc)
            self.store.finish(day, State.FAILED, self.clock(), reason)
            from .build import StoriesInvalid

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

    def _log_details(self, day: date, report: Report) -> None:
        """The mailing report's warnings and permanent failures, capped: a bad list is not a log flood."""
        for warning in getattr(report, "warnings", ()):
            log.warning("edition %s: %s", day, warning)
        failures = list(getattr(report, "failures", ()))
        for line in failures[:_MAX_LISTED_FAILURES]:
            log.warning("edition %s: not delivered: %s", day, line)
        if len(failures) > _MAX_LISTED_FAILURES:
            log.warning(
                "edition %s: %d more not delivered; `newsletter status --date %s --failed` lists them",
                day,
                len(failures) - _MAX_LISTED_FAILURES,
                day,
            )

    def _intake(self) -> None:
        """Fetch the configured feeds first, so the morning's edition holds the night's stories."""
        if not self.settings.section("intake").get("feeds"):
            return
        from .intake import import_configured

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
        from .edition import window
        from .stories import load_stories

        loaded = load_stories(self.settings.stories_dir, self.settings.root, self.settings.base_url)
        if loaded.errors:
            return None  # let the build report every broken file rather than call the morning empty
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


# --- the lock ---------------------------------------------------------------------------------------


def lock_path(settings: Settings) -> Path:
    return data_dir(settings) / "schedule.lock"


@contextlib.contextmanager
def scheduler_lock(settings: Settings) -> Iterator[None]:
    """Hold the one-daemon-per-root lock. The kernel drops a flock when its process dies, so a crash
    never leaves a stale lock behind."""
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise LockedError(
                f"another `newsletter schedule` is already running for {settings.root} (pid {holder}, lock {path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- the daemon -------------------------------------------------------------------------------------

# The job in the SQLite job store is stored by reference ("newsletter.schedule:morning_job") with the
# root as its only argument; it finds its live daemon here.
_ACTIVE: dict[str, Daemon] = {}


def morning_job(root: str) -> str:
    daemon = _ACTIVE.get(root)
    if daemon is None:
        raise RuntimeError(f"no scheduler is running for {root}")
    return daemon.on_fire()


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
        self.settings = settings
        self.config = config or read_config(settings)
        self.stop_event = threading.Event()
        self.morning = Morning(settings, self.config, send=send, clock=clock, stop=self.stop_event)
        self.clock = clock
        self.install_signals = install_signals
        self.started = threading.Event()
        self.results: list[RunResult] = []
        self._signal: str | None = None
        self.scheduler: Any = None

    def request_stop(self, reason: str = "stop requested") -> None:
        """Thread- and signal-safe: the in-flight message finishes, then the scheduler shuts down."""
        self._signal = self._signal or reason
        self.stop_event.set()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.request_stop(signal.Signals(signum).name)

    def run(self) -> int:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.blocking import BlockingScheduler

        if self.morning.send is send_with_mailing:
            preflight(self.settings)
        root = str(self.settings.root)
        previous: dict[int, Any] = {}
        if self.install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            with scheduler_lock(self.settings):
                if root in _ACTIVE:
                    raise LockedError(f"a scheduler is already running for {root} in this process")
                self.scheduler = BlockingScheduler(
                    jobstores={
                        "default": SQLAlchemyJobStore(url=f"sqlite:///{store_path(self.settings)}"),
                        "memory": MemoryJobStore(),  # retries: a restart re-derives them from the runs table
                    },
                    # One worker: the cron job, a catch-up and a retry never run at the same time.
                    executors={"default": ThreadPoolExecutor(max_workers=1)},
                    job_defaults={
                        "coalesce": True,
                        "max_instances": 1,
                        "misfire_grace_time": int(self.config.grace.total_seconds()),
                    },
                    timezone=self.config.timezone,
                )
                self.scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
                self.scheduler.add_listener(lambda _e: self.started.set(), EVENT_SCHEDULER_STARTED)
                due = self.morning.due_at_start()
                now = self.clock()
                trigger = self.config.trigger()
                first = due or trigger.get_next_fire_time(None, now)
                # replace_existing: the configuration may have changed since the job was stored; the
                # missed-morning accounting above comes from the runs table, not from the stored job.
                self.scheduler.add_job(
                    morning_job,
                    trigger=trigger,
                    args=[root],
                    id=JOB_ID,
                    name="morning edition",
                    replace_existing=True,
                    next_run_time=first,
                )
                self._log_start(due, trigger, now)
                watcher = threading.Thread(target=self._watch_stop, name="schedule-stop", daemon=True)
                _ACTIVE[root] = self
                try:
                    if self.stop_event.is_set():
                        log.info("%s received before start: not starting", self._signal)
                    else:
                        watcher.start()
                        self.scheduler.start()
                finally:
                    _ACTIVE.pop(root, None)
                    self.started.set()  # lets the watcher finish if start() failed
                    self.stop_event.set()
                    if watcher.is_alive():
                        watcher.join()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        log.info("scheduler stopped (%s)", self._signal or "shut down")
        return 0

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
        from .edition import window

        _start, end = window(self.morning.edition_for(upcoming), self.settings)
        if upcoming.astimezone(UTC) < end.astimezone(UTC):
            log.warning(
                "the send time %s comes before the edition's cut-off %s: stories published in between miss the email",
                in_zone(upcoming, self.config.timezone).isoformat(timespec="minutes"),
                end.isoformat(timespec="minutes"),
            )

    def on_fire(self) -> str:
        return self._handle(self.morning.fire())

    def _retry(self, scheduled_iso: str) -> str:
        return self._handle(self.morning.run(datetime.fromisoformat(scheduled_iso)))

    def _handle(self, result: RunResult) -> str:
        self.results.append(result)
        if result.outcome == Outcome.FAILED:
            self._schedule_retry(result)
        return result.outcome.value

    def _schedule_retry(self, result: RunResult) -> None:
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
        self.scheduler.add_job(
            self._retry,
            trigger="date",
            run_date=when,
            args=[result.scheduled.isoformat()],
            id=f"retry-{result.edition.isoformat()}",
            jobstore="memory",
            replace_existing=True,
            misfire_grace_time=None,  # the job checks the grace period itself
        )

    def _on_event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MISSED

        if event.code == EVENT_JOB_MISSED and event.job_id == JOB_ID:
            self.morning.missed(event.scheduled_run_time)
        elif event.code != EVENT_JOB_MISSED:
            log.error("job %s raised: %s", event.job_id, event.exception)


def run_now(settings: Settings, *, send: SendFn | None = None, stop: threading.Event | None = None) -> RunResult:
    """`newsletter schedule --run-now`: the job once, in the foreground, for today's edition."""
    morning = Morning(settings, send=send, stop=stop)
    return morning.run(morning.clock(), manual=True)


@contextlib.contextmanager
def logging_to_stderr(level: int = logging.INFO) -> Iterator[None]:
    """One line per event on stderr (the journal under systemd, the mail under cron), for one command."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
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


__all__ = [
    "Daemon",
    "Morning",
    "MorningTrigger",
    "Outcome",
    "RunResult",
    "RunStore",
    "ScheduleConfig",
    "State",
    "fire_times",
    "latest_fire",
    "logging_to_stderr",
    "next_runs",
    "preflight",
    "read_config",
    "run_now",
    "scheduler_lock",
]
