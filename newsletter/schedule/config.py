"""The `[schedule]` table and the trigger: when mornings are, in the newsletter's zone, through DST.

ScheduleConfig   the `[schedule]` table, validated (at, timezone, days, grace, retries, retry_delay)
MorningTrigger   APScheduler's CronTrigger, at most one fire per local day (DST fall-back repeats none)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from ..config import Settings
from ..errors import ConfigError
from ..letters import Newsletter
from ..options import check_number

JOB_ID = "morning"
DEFAULTS: dict[str, Any] = {"at": "06:00", "days": "mon-sun", "grace": "3h", "retries": 3, "retry_delay": "10m"}
KEYS = ("at", "timezone", "days", "grace", "retries", "retry_delay", "per_timezone")
# How far back to look for "the latest morning": a schedule runs at least once a week.
_LOOKBACK = timedelta(days=8)
# A daemon down for months does not list every lost morning one by one.
MAX_LISTED_MISSES = 14
MAX_LISTED_FAILURES = 10

# --- configuration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleConfig:
    at: dtime
    timezone: ZoneInfo
    days: str
    grace: timedelta
    retries: int
    retry_delay: timedelta
    per_timezone: bool = False  # each reader at `at` in their own zone (zones.py)

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
            + (", each reader at that time in their own zone" if self.per_timezone else "")
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
    retries = int(check_number(values["retries"], f"{origin} 'retries'", 0, 100, whole=True))
    per_timezone = values.get("per_timezone", False)
    if isinstance(per_timezone, str) and per_timezone.strip().lower() in ("true", "false", "1", "0"):
        per_timezone = per_timezone.strip().lower() in ("true", "1")  # from NEWSLETTER_SCHEDULE__PER_TIMEZONE
    if not isinstance(per_timezone, bool):
        raise ConfigError(f"{origin} 'per_timezone' must be true or false, got {per_timezone!r}")
    return ScheduleConfig(at, tz, days, grace, retries, retry_delay, per_timezone)


def config_for(settings: Settings, config: ScheduleConfig | None = None) -> ScheduleConfig:
    """`[schedule]` (or `config`) as the newsletter of `settings` runs it: with its rhythm when its table
    gives one (a single `[list]` runs as `[schedule]` says)."""
    from ..letters import find_newsletter

    return newsletter_config(config or read_config(settings), find_newsletter(settings, settings.newsletter))


def newsletter_config(config: ScheduleConfig, letter: Newsletter) -> ScheduleConfig:
    """`[schedule]` for one newsletter: its rhythm's time (`at`) and, for a weekly, its day; the grace,
    retries and time zone are the schedule's."""
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[letter.day] if letter.day is not None else config.days
    return replace(config, at=letter.at or config.at, days=days)


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


class MorningTrigger(CronTrigger):  # type: ignore[misc]  # apscheduler 3 has no type hints
    """A CronTrigger that fires at most once per local calendar day.

    On a fall-back night a wall-clock time inside the repeated hour (02:30 in Paris) exists twice and
    CronTrigger fires at both; the second would be the same edition again. A time skipped by
    spring-forward is fired by CronTrigger an hour later on the new offset, which is what we want.
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        nxt: datetime | None = super().get_next_fire_time(previous_fire_time, now)
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
