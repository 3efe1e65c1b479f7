"""The morning scheduler: configuration, DST, grace, coalescing, double fires, the lock, the daemon.

The job core (`Morning`) runs against an injected clock, so whole weeks across DST changes pass in
milliseconds. The daemon tests run the real BlockingScheduler with the real SQLite job store; their
"missed" mornings lie in the real past, so nothing waits for a wall-clock time to come.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_MISSED
from click.testing import CliRunner

from newsletter import schedule as sched
from newsletter.cli import cli
from newsletter.config import Settings, load_settings
from newsletter.edition.select import window
from newsletter.errors import ConfigError, DeliveryError, LockedError
from newsletter.schedule import Daemon, Morning, Outcome, RunStore, State
from newsletter.storage import this_owner

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


# --- helpers ----------------------------------------------------------------------------------------


class Clock:
    """The injected clock: a settable UTC instant."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Sent:
    """What `send_edition` reports (the mailing pipeline's SendReport has the same fields)."""

    sent: int = 2
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    pending: int = 0

    @property
    def complete(self) -> bool:
        return self.pending == 0


@dataclass
class Recorder:
    """An injected send function: records (edition, clock time) and returns a report."""

    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    calls: list[tuple[date, datetime]] = field(default_factory=list)
    fail_first: int = 0
    report: Sent = field(default_factory=Sent)
    sent: threading.Event = field(default_factory=threading.Event)

    def __call__(self, settings: Settings, day: date, *, stop: threading.Event | None = None) -> Sent:
        self.calls.append((day, self.clock()))
        if len(self.calls) <= self.fail_first:
            raise DeliveryError("cannot connect to smtp://127.0.0.1:9: Connection refused")
        self.sent.set()
        return self.report

    @property
    def days(self) -> list[date]:
        return [d for d, _ in self.calls]


def make_settings(tmp_path: Path, schedule: str = "", zone: str = "Europe/Paris") -> Settings:
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True, exist_ok=True)
    (root / "newsletter.toml").write_text(f'timezone = "{zone}"\n\n[schedule]\n{schedule}\n', encoding="utf-8")
    return load_settings(root, environ={})


def add_story(settings: Settings, day: date, name: str | None = None) -> None:
    """A story inside edition `day`'s window (an hour after the window opens)."""
    start, _end = window(day, settings)
    published = (start + timedelta(hours=1)).isoformat()
    path = settings.stories_dir / f"{name or day.isoformat()}.md"
    path.write_text(f'---\ntitle: "Story for {day}"\npublished: {published}\n---\nBody.\n', encoding="utf-8")


def local(day: date, at: str, tz: ZoneInfo) -> datetime:
    """The instant of wall-clock `at` on `day`, as zoneinfo resolves it (fold=0: the first of a repeated
    hour; a time skipped by spring-forward lands an hour later on the new offset)."""
    return datetime.combine(day, dtime.fromisoformat(at), tzinfo=tz).astimezone(UTC).astimezone(tz)


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(proc.stdout)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --- configuration ----------------------------------------------------------------------------------


def test_defaults_follow_the_newsletter(tmp_path: Path) -> None:
    cfg = sched.read_config(make_settings(tmp_path, zone="Asia/Tokyo"))
    assert (cfg.at, cfg.timezone.key, cfg.days) == (dtime(6, 0), "Asia/Tokyo", "mon-sun")
    assert (cfg.grace, cfg.retries, cfg.retry_delay) == (timedelta(hours=3), 3, timedelta(minutes=10))
    assert cfg.describe() == "mon-sun at 06:00 Asia/Tokyo, grace 3h, 3 retries every 10m"


def test_full_table_and_environment(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        'at = "05:45:30"\ntimezone = "America/New_York"\ndays = "mon-fri"\ngrace = "1h30m"\nretry_delay = "45s"',
    )
    settings = load_settings(settings.root, environ={"NEWSLETTER_SCHEDULE__RETRIES": "5"})
    cfg = sched.read_config(settings)
    assert (cfg.at, cfg.timezone, cfg.days, cfg.grace) == (dtime(5, 45, 30), NEW_YORK, "mon-fri", timedelta(minutes=90))
    assert (cfg.retries, cfg.retry_delay) == (5, timedelta(seconds=45))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('at = "6am"', "[schedule] 'at' must be a 24-hour time HH:MM"),
        ('at = "25:00"', "[schedule] 'at' must be a 24-hour time HH:MM"),
        ("at = 6", "[schedule] 'at' must be a 24-hour time HH:MM"),
        ('timezone = "Mars/Olympus"', "[schedule] 'timezone': unknown time zone 'Mars/Olympus'"),
        ('days = "mon-funday"', "[schedule] 'days': 'mon-funday' is not a day-of-week expression"),
        ('days = "0-4"', "[schedule] 'days' must use day names"),
        ('grace = "3 hours"', "[schedule] 'grace' must be a duration like '3h'"),
        ('grace = "30h"', "[schedule] 'grace' must be from 1m to under 24h"),
        ("grace = 3", "[schedule] 'grace' must be a duration"),
        ("retries = -1", "[schedule] 'retries' must be a whole number from 0 to 100"),
        ("retries = true", "[schedule] 'retries' must be a whole number"),
        ('retry_delay = "0s"', "[schedule] 'retry_delay' must be at least 1s"),
        ('when = "06:00"', "[schedule] unknown setting 'when'"),
    ],
)
def test_bad_values_are_one_clear_line(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        sched.read_config(make_settings(tmp_path, line))
    text = str(info.value)
    assert text.startswith(f"newsletter.toml: {message}") and "\n" not in text


def test_cli_reports_a_bad_table_in_one_line(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, 'days = "weekdays"')
    result = CliRunner().invoke(cli, ["schedule", "--root", str(settings.root), "--next", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: newsletter.toml: [schedule] 'days': 'weekdays' is not a day-of-week expression like 'mon-sun', "
        "'mon-fri' or 'mon,wed,fri'"
    ]


def test_durations() -> None:
    assert sched.parse_duration("3h") == timedelta(hours=3)
    assert sched.parse_duration("1h30m") == timedelta(minutes=90)
    assert sched.parse_duration(" 2m 5s ") == timedelta(minutes=2, seconds=5)
    assert sched.parse_duration("") is None
    assert sched.parse_duration("h") is None
    assert sched.format_duration(timedelta(hours=4, minutes=12)) == "4h12m"


# --- run times across DST ---------------------------------------------------------------------------


def test_next_five_from_an_instant_crosses_paris_spring_forward(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    result = CliRunner().invoke(
        cli, ["schedule", "--root", str(settings.root), "--next", "5", "--from", "2027-03-26T12:00+01:00"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2027-03-27T06:00:00+01:00",
        "2027-03-28T06:00:00+02:00",  # the night of the change: still 06:00 on the wall clock
        "2027-03-29T06:00:00+02:00",
        "2027-03-30T06:00:00+02:00",
        "2027-03-31T06:00:00+02:00",
    ]


def test_next_without_from_starts_now_and_respects_days(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, 'at = "07:15"\ndays = "mon,wed,fri"\ntimezone = "America/New_York"')
    before = datetime.now(NEW_YORK)
    result = CliRunner().invoke(cli, ["schedule", "--root", str(settings.root), "--next", "3"])
    assert result.exit_code == 0, result.output
    times = [datetime.fromisoformat(line) for line in result.output.splitlines()]
    assert len(times) == 3 and times == sorted(times) and times[0] >= before
    assert all(t.strftime("%a %H:%M") in {"Mon 07:15", "Wed 07:15", "Fri 07:15"} for t in times)
    assert all(t.utcoffset() == t.astimezone(NEW_YORK).utcoffset() for t in times)


@pytest.mark.parametrize(
    "args",
    [["--from", "2027-03-26T12:00+01:00"], ["--next", "2", "--from", "next tuesday"], ["--next", "0"]],
)
def test_next_usage_errors(tmp_path: Path, args: list[str]) -> None:
    settings = make_settings(tmp_path)
    result = CliRunner().invoke(cli, ["schedule", "--root", str(settings.root), *args])
    assert result.exit_code == 2
    assert "Error:" in result.output


DST_CASES = [
    # zone, a date of a DST change, wall-clock send times (06:00; and one inside the skipped/repeated hour)
    pytest.param(PARIS, date(2027, 3, 28), "06:00", id="paris-spring-0600"),
    pytest.param(PARIS, date(2027, 3, 28), "02:30", id="paris-spring-0230-skipped-hour"),
    pytest.param(PARIS, date(2027, 10, 31), "06:00", id="paris-fall-0600"),
    pytest.param(PARIS, date(2027, 10, 31), "02:30", id="paris-fall-0230-repeated-hour"),
    pytest.param(NEW_YORK, date(2027, 3, 14), "06:00", id="ny-spring-0600"),
    pytest.param(NEW_YORK, date(2027, 3, 14), "02:30", id="ny-spring-0230-skipped-hour"),
    pytest.param(NEW_YORK, date(2027, 11, 7), "06:00", id="ny-fall-0600"),
    pytest.param(NEW_YORK, date(2027, 11, 7), "01:30", id="ny-fall-0130-repeated-hour"),
]


@pytest.mark.parametrize(("tz", "change", "at"), DST_CASES)
def test_trigger_fires_once_per_local_day_across_dst(tz: ZoneInfo, change: date, at: str) -> None:
    cfg = sched.ScheduleConfig(dtime.fromisoformat(at), tz, "mon-sun", timedelta(hours=3), 0, timedelta(minutes=1))
    start = datetime.combine(change - timedelta(days=3), dtime(0), tzinfo=tz)
    times = sched.next_runs(cfg.trigger(), start, 7)
    days = [t.date() for t in times]
    assert days == [change + timedelta(days=i) for i in range(-3, 4)]  # one a day, none lost, none doubled
    expected = [local(d, at, tz) for d in days]
    # Same instants (in UTC: Python compares two datetimes of one zone by wall clock) on the same offsets.
    assert [t.astimezone(UTC) for t in times] == [e.astimezone(UTC) for e in expected]
    assert [t.isoformat() for t in times] == [e.isoformat() for e in expected]
    offsets = {t.utcoffset() for t in times}
    assert len(offsets) == 2  # the change is really inside the range


@pytest.mark.parametrize(("tz", "change", "at"), DST_CASES)
def test_a_week_across_dst_sends_each_edition_once_at_local_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tz: ZoneInfo, change: date, at: str
) -> None:
    """A scheduler gone mad, firing every 20 minutes for a week: still one send a day, on time."""
    settings = make_settings(tmp_path, f'at = "{at}"', zone=tz.key)
    days = [change + timedelta(days=i) for i in range(-3, 4)]
    for day in days:
        add_story(settings, day)
    start = datetime.combine(days[0], dtime(0), tzinfo=tz)
    clock = Clock(start)
    send = Recorder(clock)
    morning = Morning(settings, send=send, clock=clock)
    morning.store.advance(clock())  # a daemon already running before the week starts
    tick = timedelta(minutes=20)
    end = datetime.combine(days[-1] + timedelta(days=1), dtime(0), tzinfo=tz)
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    outcomes: list[Outcome] = []
    while clock() < end:
        outcomes.append(morning.fire().outcome)
        clock.advance(tick)
    assert send.days == days
    for day, sent_at in send.calls:
        expected = local(day, at, tz).astimezone(UTC)
        assert expected <= sent_at < expected + tick, (day, sent_at, expected)
    assert outcomes.count(Outcome.COMPLETED) == 7 and Outcome.SKIPPED not in outcomes
    assert errors(caplog) == []
    assert [(r.edition, r.state) for r in morning.store.rows()] == [(d, State.COMPLETED) for d in days]


# --- the job core: grace, coalescing, double fire, resume -------------------------------------------

DAY = date(2027, 3, 29)  # a Monday in Paris, after the spring change
MORNING = local(DAY, "06:00", PARIS)


@pytest.fixture
def paper(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    for i in range(-20, 2):
        add_story(settings, DAY + timedelta(days=i))
    return settings


def test_catch_up_within_grace_runs_that_morning_once(paper: Settings, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(MORNING + timedelta(hours=2, minutes=59))
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    morning.store.advance(MORNING - timedelta(days=1))  # it ran yesterday, then was down at 06:00
    due = morning.due_at_start()
    assert due == MORNING
    assert morning.run(due).outcome == Outcome.COMPLETED
    assert send.days == [DAY]
    assert morning.due_at_start() is None  # a second restart the same morning sends nothing
    assert morning.fire().outcome == Outcome.ALREADY_DONE
    assert send.days == [DAY] and errors(caplog) == []


def test_past_grace_is_skipped_loudly_and_never_sent(paper: Settings, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(MORNING + timedelta(hours=3, minutes=1))
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    morning.store.advance(MORNING - timedelta(days=1))
    assert morning.due_at_start() is None
    assert errors(caplog) == [
        "SKIPPED edition 2027-03-29: scheduled 2027-03-29T06:00:00+02:00, 3h1m late, past the 3h grace period "
        "(the scheduler was not running); a stale edition is never sent"
    ]
    row = morning.store.get(DAY)
    assert row is not None and row.state == State.SKIPPED
    # A late fire the same day (a clock jump, a stray job) still sends nothing and says nothing new.
    caplog.clear()
    clock.advance(timedelta(hours=2))
    assert morning.fire().outcome == Outcome.SKIPPED
    assert morning.run(MORNING).outcome == Outcome.SKIPPED
    assert send.calls == [] and errors(caplog) == []
    # The next morning runs as usual.
    clock.set(MORNING + timedelta(days=1, minutes=1))
    assert morning.fire().outcome == Outcome.COMPLETED
    assert send.days == [DAY + timedelta(days=1)]


def test_several_missed_mornings_coalesce_into_one_run(paper: Settings, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(MORNING + timedelta(minutes=30))
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    morning.store.advance(MORNING - timedelta(days=4))  # last ran four mornings ago
    due = morning.due_at_start()
    assert due == MORNING
    skipped = [r.edition for r in morning.store.rows() if r.state == State.SKIPPED]
    assert skipped == [DAY - timedelta(days=3), DAY - timedelta(days=2), DAY - timedelta(days=1)]
    assert len(errors(caplog)) == 3 and all(m.startswith("SKIPPED edition") for m in errors(caplog))
    assert morning.run(due).outcome == Outcome.COMPLETED
    assert send.days == [DAY]


def test_a_long_sleep_between_fires_is_not_a_burst(paper: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """The machine slept four days; APScheduler coalesces the missed fires into one call of the job."""
    clock = Clock(MORNING - timedelta(days=3, minutes=-1))
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    morning.store.advance(MORNING - timedelta(days=4))
    assert morning.fire().outcome == Outcome.COMPLETED  # the morning of DAY-3, on time
    clock.set(MORNING + timedelta(minutes=40))
    assert morning.fire().outcome == Outcome.COMPLETED
    assert send.days == [DAY - timedelta(days=3), DAY]
    assert [m[:26] for m in errors(caplog)] == [f"SKIPPED edition {DAY - timedelta(days=n)}" for n in (2, 1)]


def test_months_down_are_summarised_not_listed(paper: Settings, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(MORNING + timedelta(hours=1))
    morning = Morning(paper, send=Recorder(clock), clock=clock)
    morning.store.advance(MORNING - timedelta(days=40))
    assert morning.due_at_start() == MORNING
    lines = errors(caplog)
    assert lines[0].startswith("SKIPPED 25 editions from 2027-02-18 to 2027-03-14")
    assert len(lines) == 1 + 14
    assert sum(r.state == State.SKIPPED for r in morning.store.rows()) == 39


def test_double_fire_sends_once(paper: Settings, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(MORNING)
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    first = morning.fire()
    clock.advance(timedelta(seconds=1))
    second = morning.fire()
    assert (first.outcome, second.outcome) == (Outcome.COMPLETED, Outcome.ALREADY_DONE)
    assert send.days == [DAY]
    assert "already completed" in second.detail


def test_two_daemons_firing_together_send_once(paper: Settings) -> None:
    """Two processes (two owners) fire the same morning at the same moment."""
    clock = Clock(MORNING + timedelta(seconds=1))
    claimed = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def slow_send(settings: Settings, day: date, *, stop: threading.Event | None = None) -> Sent:
        calls.append(day.isoformat())
        claimed.set()
        assert release.wait(10)
        return Sent()

    a = Morning(paper, send=slow_send, clock=clock, owner=this_owner())
    b = Morning(paper, send=slow_send, clock=clock, owner=f"{socket.gethostname()}:1")  # pid 1 is alive
    results: list[sched.RunResult] = []
    thread = threading.Thread(target=lambda: results.append(a.fire()))
    thread.start()
    assert claimed.wait(10)
    busy = b.fire()
    release.set()
    thread.join(10)
    assert busy.outcome == Outcome.BUSY and "already being sent by" in busy.detail
    assert results[0].outcome == Outcome.COMPLETED and calls == [DAY.isoformat()]
    assert b.fire().outcome == Outcome.ALREADY_DONE


def test_a_crashed_run_resumes_at_restart(paper: Settings, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(MORNING + timedelta(minutes=5))
    store = RunStore(sched.store_path(paper))
    crashed = f"{socket.gethostname()}:{dead_pid()}"
    assert store.claim(DAY, MORNING, crashed, clock())[0]
    store.advance(MORNING)
    clock.advance(timedelta(minutes=10))
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    assert morning.due_at_start() == MORNING
    result = morning.run(MORNING)
    assert result.outcome == Outcome.COMPLETED and result.attempts == 2
    assert send.days == [DAY]
    assert any("attempt 2, resuming a crashed run" in r.getMessage() for r in caplog.records)


def test_interrupted_and_failed_runs_resume_then_complete(paper: Settings) -> None:
    clock = Clock(MORNING)
    send = Recorder(clock, fail_first=1)
    morning = Morning(paper, send=send, clock=clock)
    failed = morning.fire()
    assert failed.outcome == Outcome.FAILED
    assert failed.detail == "cannot connect to smtp://127.0.0.1:9: Connection refused"
    row = morning.store.get(DAY)
    assert row is not None and (row.state, row.attempts, row.detail) == (State.FAILED, 1, failed.detail)
    send.report = Sent(sent=1, pending=3)  # SIGTERM mid-send
    assert morning.run(MORNING).outcome == Outcome.INTERRUPTED
    assert morning.store.counts(DAY) == {"sent": 1, "failed": 0, "skipped": 0, "pending": 3}
    clock.advance(timedelta(minutes=30))
    assert morning.due_at_start() == MORNING  # a restart within grace resumes it
    send.report = Sent(sent=3)
    done = morning.run(MORNING)
    assert (done.outcome, done.attempts) == (Outcome.COMPLETED, 3)
    assert send.days == [DAY, DAY, DAY]


def test_manual_run_ignores_grace_but_not_idempotence(paper: Settings) -> None:
    clock = Clock(MORNING + timedelta(hours=9))
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    assert morning.run(clock(), manual=True).outcome == Outcome.COMPLETED
    assert morning.run(clock(), manual=True).outcome == Outcome.ALREADY_DONE
    assert morning.fire().outcome == Outcome.ALREADY_DONE
    assert send.days == [DAY]


def test_empty_morning_is_one_quiet_line_and_not_done(paper: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    for path in paper.stories_dir.glob(f"{DAY}*.md"):
        path.unlink()
    clock = Clock(MORNING)
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    result = morning.fire()
    assert result.outcome == Outcome.EMPTY and send.calls == []
    line = (
        "edition 2027-03-29: no stories published between 2027-03-28T06:00+02:00 and 2027-03-29T06:00+02:00; "
        "no email sent (looked at again until the grace period ends)"
    )
    assert [r.getMessage() for r in caplog.records if "no stories" in r.getMessage()] == [line]
    for _ in range(3):  # within the grace period every look is another quiet line, never a send
        clock.advance(timedelta(minutes=20))
        assert morning.fire().outcome == Outcome.EMPTY
    assert errors(caplog) == [] and not any(r.levelno >= logging.WARNING for r in caplog.records)
    row = morning.store.get(DAY)
    assert row is not None and row.state == State.EMPTY
    clock.advance(timedelta(hours=3))  # past the grace period: an empty morning stays empty, never skipped
    assert morning.fire().outcome == Outcome.ALREADY_DONE and send.calls == []
    assert morning.store.get(DAY).state == State.EMPTY  # type: ignore[union-attr]


def test_a_late_story_makes_an_empty_morning_within_its_grace(paper: Settings) -> None:
    for path in paper.stories_dir.glob(f"{DAY}*.md"):
        path.unlink()
    clock = Clock(MORNING)
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    assert morning.fire().outcome == Outcome.EMPTY
    add_story(paper, DAY, "late-story")  # filed at 06:30, dated inside the window
    clock.advance(timedelta(minutes=30))
    assert morning.run(MORNING).outcome == Outcome.COMPLETED and send.days == [DAY]
    assert morning.fire().outcome == Outcome.ALREADY_DONE and send.days == [DAY]


def test_run_now_builds_an_empty_morning_once_stories_arrived(paper: Settings) -> None:
    for path in paper.stories_dir.glob(f"{DAY}*.md"):
        path.unlink()
    clock = Clock(MORNING + timedelta(hours=5))  # past the grace period: only the operator's run-now
    send = Recorder(clock)
    morning = Morning(paper, send=send, clock=clock)
    assert morning.run(MORNING, manual=True).outcome == Outcome.EMPTY
    add_story(paper, DAY, "late-story")
    assert morning.run(MORNING).outcome == Outcome.ALREADY_DONE and send.calls == []
    assert morning.run(MORNING, manual=True).outcome == Outcome.COMPLETED and send.days == [DAY]


def test_stop_requested_starts_nothing(paper: Settings) -> None:
    clock = Clock(MORNING)
    send = Recorder(clock)
    stop = threading.Event()
    stop.set()
    morning = Morning(paper, send=send, clock=clock, stop=stop)
    assert morning.fire().outcome == Outcome.STOPPED and send.calls == []
    assert morning.store.get(DAY) is None


def test_first_start_only_catches_a_morning_within_grace(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    late = make_settings(tmp_path / "late")
    add_story(late, DAY)
    clock = Clock(MORNING + timedelta(hours=5))
    morning = Morning(late, send=Recorder(clock), clock=clock)
    assert morning.due_at_start() is None and errors(caplog) == []  # a fresh install is not an outage
    assert morning.store.accounted_through() == MORNING
    early = make_settings(tmp_path / "early")
    add_story(early, DAY)
    assert Morning(early, clock=Clock(MORNING + timedelta(hours=1))).due_at_start() == MORNING


# --- the lock ---------------------------------------------------------------------------------------


def test_lock_refuses_a_second_scheduler(paper: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "lock-test-secret")  # the daemon's preflight passes
    with (paper.root / "newsletter.toml").open("a", encoding="utf-8") as config:
        config.write('\n[mailing]\nsubscribers = "subscribers.csv"\n')
    with sched.scheduler_lock(paper):
        with pytest.raises(LockedError) as info, sched.scheduler_lock(paper):
            pass
        assert str(info.value) == (
            f"another `newsletter schedule` is already running for {paper.root} "
            f"(pid {os.getpid()}, lock {paper.root / 'data' / 'schedule.lock'})"
        )
        result = CliRunner().invoke(cli, ["schedule", "--root", str(paper.root)])
        assert result.exit_code == 1
        assert result.output.startswith("Error: another `newsletter schedule` is already running for")
    with sched.scheduler_lock(paper):  # released: the next one gets it
        pass


def test_the_lock_dies_with_its_process(paper: Settings) -> None:
    code = (
        "import os, sys; from newsletter.config import load_settings; from newsletter import schedule as s\n"
        f"with s.scheduler_lock(load_settings({str(paper.root)!r}, environ={{}})): os._exit(3)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 3  # exits without releasing
    with sched.scheduler_lock(paper):
        pass


# --- the daemon: real BlockingScheduler, real SQLite job store --------------------------------------


@dataclass
class Running:
    daemon: Daemon
    thread: threading.Thread
    exit: list[int]

    def stop(self) -> int:
        self.daemon.request_stop("test")
        self.thread.join(20)
        assert not self.thread.is_alive()
        return self.exit[0]


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(settings: Settings, send: Recorder) -> Running:
        daemon = Daemon(settings, send=send, install_signals=False)
        exit_code: list[int] = []
        thread = threading.Thread(target=lambda: exit_code.append(daemon.run()), daemon=True)
        thread.start()
        assert daemon.started.wait(20)
        running = Running(daemon, thread, exit_code)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


def daemon_settings(tmp_path: Path, late: timedelta, grace: str = "3h", retry: str = "10m") -> tuple[Settings, date]:
    """A schedule whose latest morning was `late` ago (real time), with a story in its window."""
    fired = datetime.now(PARIS) - late
    settings = make_settings(
        tmp_path, f'at = "{fired:%H:%M:%S}"\ngrace = "{grace}"\nretry_delay = "{retry}"\nretries = 2'
    )
    day = fired.date()
    add_story(settings, day)
    return settings, day


def jobstore_next_run(settings: Settings) -> datetime:
    with sqlite3.connect(sched.store_path(settings)) as db:
        (value,) = db.execute("SELECT next_run_time FROM apscheduler_jobs WHERE id = 'morning'").fetchone()
    return datetime.fromtimestamp(value, UTC)


def test_the_daemon_looks_again_at_an_empty_morning_and_sends_a_late_story(
    tmp_path: Path, start_daemon: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    settings, day = daemon_settings(tmp_path, timedelta(minutes=10), retry="2s")
    for path in settings.stories_dir.glob("*.md"):
        path.unlink()
    send = Recorder()
    running = start_daemon(settings, send)
    deadline = time.monotonic() + 20
    while not any(r.state == State.EMPTY for r in RunStore(sched.store_path(settings)).rows()):
        assert time.monotonic() < deadline, "the morning never ran"
        time.sleep(0.1)
    add_story(settings, day, "late-story")
    assert send.sent.wait(20), "the empty morning was not looked at again"
    assert running.stop() == 0
    assert send.days == [day]
    assert any(f"edition {day}: looking for stories again at" in r.getMessage() for r in caplog.records)


def test_daemon_catches_up_persists_and_never_resends(
    tmp_path: Path, start_daemon: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    settings, day = daemon_settings(tmp_path, timedelta(minutes=50))
    RunStore(sched.store_path(settings)).advance(datetime.now(UTC) - timedelta(days=1, minutes=50))
    send = Recorder()
    running = start_daemon(settings, send)
    assert send.sent.wait(20)
    assert running.stop() == 0
    assert send.days == [day]
    # The schedule survived in the SQLite job store: the next run is the next morning.
    next_run = jobstore_next_run(settings)
    assert timedelta(hours=23) < next_run - datetime.now(UTC) < timedelta(hours=24)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"catching up edition {day}") for m in messages)
    assert any(m.startswith(f"edition {day}: completed in") and "sent 2" in m for m in messages)
    assert "scheduler stopped (test)" in messages
    # A restart the same morning: the edition is done, nothing is sent.
    again = Recorder()
    running = start_daemon(settings, again)
    assert running.stop() == 0
    assert again.calls == []
    assert not any(m.startswith("catching up") for m in (r.getMessage() for r in caplog.records[len(messages) :]))


def test_daemon_coalesces_missed_fires_after_a_sleep(
    tmp_path: Path, start_daemon: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    """Like a laptop waking after three days: APScheduler sees four due fires and runs the job once."""
    settings, day = daemon_settings(tmp_path, timedelta(minutes=30))
    store = RunStore(sched.store_path(settings))
    now = datetime.now(UTC)
    store.advance(now - timedelta(minutes=30))  # today's morning counted: nothing due at start
    send = Recorder()
    running = start_daemon(settings, send)
    trigger = running.daemon.config.trigger()
    asleep_since = sched.latest_fire(trigger, now - timedelta(days=3))
    assert asleep_since is not None
    store.set_meta("accounted_through", (asleep_since - timedelta(days=1)).isoformat())
    running.daemon.scheduler.modify_job("morning", next_run_time=asleep_since)
    assert send.sent.wait(20)
    assert running.stop() == 0
    assert send.days == [day]
    skipped = [r.getMessage()[:26] for r in caplog.records if r.getMessage().startswith("SKIPPED")]
    assert skipped == [f"SKIPPED edition {day - timedelta(days=n)}" for n in (3, 2, 1)]


def test_daemon_misfire_past_grace_is_logged_not_sent(
    tmp_path: Path, start_daemon: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    settings, day = daemon_settings(tmp_path, timedelta(minutes=90), grace="1h")
    RunStore(sched.store_path(settings)).advance(datetime.now(UTC))
    send = Recorder()
    running = start_daemon(settings, send)
    missed = threading.Event()
    running.daemon.scheduler.add_listener(lambda _e: missed.set(), EVENT_JOB_MISSED)
    morning = sched.latest_fire(running.daemon.config.trigger(), datetime.now(UTC))
    running.daemon.scheduler.modify_job("morning", next_run_time=morning)
    assert missed.wait(20)
    assert running.stop() == 0
    assert send.calls == []
    assert next(m for m in errors(caplog) if m.startswith("SKIPPED")).startswith(f"SKIPPED edition {day}:")
    row = RunStore(sched.store_path(settings)).get(day)
    assert row is not None and row.state == State.SKIPPED


def test_daemon_retries_a_failed_run(
    tmp_path: Path, start_daemon: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    settings, day = daemon_settings(tmp_path, timedelta(minutes=10), retry="1s")
    RunStore(sched.store_path(settings)).advance(datetime.now(UTC) - timedelta(days=1))
    send = Recorder(fail_first=2)
    running = start_daemon(settings, send)
    assert send.sent.wait(20)
    assert running.stop() == 0
    assert send.days == [day, day, day]
    assert [r.outcome for r in running.daemon.results] == [Outcome.FAILED, Outcome.FAILED, Outcome.COMPLETED]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("run failed after" in m and "Connection refused" in m for m in messages) == 2
    assert any(m.startswith(f"edition {day}: retry 2 of 2 at ") for m in messages)


def test_daemon_gives_up_when_retries_run_out(
    tmp_path: Path, start_daemon: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    settings, day = daemon_settings(tmp_path, timedelta(minutes=10), retry="1s")
    RunStore(sched.store_path(settings)).advance(datetime.now(UTC) - timedelta(days=1))
    send = Recorder(fail_first=99)
    gave_up = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "giving up" in record.getMessage():
                gave_up.set()

    handler = Watch()
    logging.getLogger("newsletter.schedule").addHandler(handler)
    try:
        running = start_daemon(settings, send)
        assert gave_up.wait(20)
        assert running.stop() == 0
    finally:
        logging.getLogger("newsletter.schedule").removeHandler(handler)
    assert send.days == [day, day, day]  # the run and its 2 retries, then quiet
    assert errors(caplog)[-1] == (
        f"edition {day}: giving up after 3 attempt(s); a restart within the grace period tries again"
    )


def test_daemon_stop_lets_the_run_in_flight_finish(tmp_path: Path, start_daemon: Callable[..., Running]) -> None:
    settings, day = daemon_settings(tmp_path, timedelta(minutes=5))
    RunStore(sched.store_path(settings)).advance(datetime.now(UTC) - timedelta(days=1))
    in_flight = threading.Event()

    def sending(settings: Settings, day: date, *, stop: threading.Event | None = None) -> Sent:
        in_flight.set()
        assert stop is not None and stop.wait(20)  # like send_edition: notices stop between messages
        return Sent(sent=5, pending=7)

    running = start_daemon(settings, sending)
    assert in_flight.wait(20)
    assert running.stop() == 0
    row = RunStore(sched.store_path(settings)).get(day)
    assert row is not None and row.state == State.INTERRUPTED
    assert RunStore(sched.store_path(settings)).counts(day)["pending"] == 7


def test_a_second_daemon_on_the_same_root_refuses(tmp_path: Path, start_daemon: Callable[..., Running]) -> None:
    settings, _day = daemon_settings(tmp_path, timedelta(hours=12))
    running = start_daemon(settings, Recorder())
    with pytest.raises(LockedError, match="already running for"):
        Daemon(settings, send=Recorder(), install_signals=False).run()
    assert running.thread.is_alive()
    assert running.stop() == 0


# --- intake before the build ------------------------------------------------------------------------


def test_configured_feeds_are_imported_before_the_send(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An empty stories/ folder and a feed with the night's story: the morning imports it, then sends."""
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    settings = make_settings(tmp_path)
    (settings.root / "newsletter.toml").write_text(
        'timezone = "Europe/Paris"\n\n[[intake.feeds]]\nurl = "wire.xml"\nsection = "World"\n\n'
        '[[intake.feeds]]\nurl = "missing.xml"\n',
        encoding="utf-8",
    )
    start, _end = window(DAY, settings)
    pub = format_datetime(start + timedelta(hours=3))
    (settings.root / "wire.xml").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title><link>https://wire.example.org/</link>'
        "<description>Overnight wire</description><item><title>Overnight story</title>"
        "<link>https://wire.example.org/a</link><guid>https://wire.example.org/a</guid>"
        f"<pubDate>{pub}</pubDate><description>What happened overnight.</description></item></channel></rss>",
        encoding="utf-8",
    )
    settings = load_settings(settings.root, environ={})
    clock = Clock(MORNING)
    send = Recorder(clock)
    result = Morning(settings, send=send, clock=clock).fire()
    assert result.outcome == Outcome.COMPLETED and send.days == [DAY]
    assert [p.name for p in settings.stories_dir.rglob("*.md")] == ["overnight-story.md"]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("intake in ") and "1 written" in m and "1 failed" in m for m in messages)
    assert any(m.startswith("intake: ") and "missing.xml" in m for m in messages)


def test_intake_is_not_loaded_without_feeds(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    add_story(settings, DAY)
    code = f"""
import sys
from datetime import datetime
from newsletter.config import load_settings
from newsletter.schedule import Morning
class Sent:
    sent, failed, skipped, retried, pending, complete = 1, 0, 0, 0, 0, True
def send(settings, day, *, stop=None):
    return Sent()
clock = lambda: datetime.fromisoformat({MORNING.isoformat()!r})
print(Morning(load_settings({str(settings.root)!r}, environ={{}}), send=send, clock=clock).fire().outcome)
print("newsletter.intake" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["completed", "False"]


def test_a_changed_schedule_replaces_the_stored_one(tmp_path: Path, start_daemon: Callable[..., Running]) -> None:
    settings, _day = daemon_settings(tmp_path, timedelta(hours=12))
    running = start_daemon(settings, Recorder())
    assert running.stop() == 0
    first = jobstore_next_run(settings)
    assert timedelta(hours=10) < first - datetime.now(UTC) < timedelta(hours=14)  # ±1 h on a DST night
    later = datetime.now(PARIS) + timedelta(hours=5)
    (settings.root / "newsletter.toml").write_text(
        f'timezone = "Europe/Paris"\n\n[schedule]\nat = "{later:%H:%M:%S}"\n', encoding="utf-8"
    )
    running = start_daemon(load_settings(settings.root, environ={}), Recorder())
    assert running.stop() == 0
    second = jobstore_next_run(settings)
    assert timedelta(hours=3) < second - datetime.now(UTC) < timedelta(hours=7)
