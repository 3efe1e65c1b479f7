"""Each reader's morning: `[schedule] per_timezone = true` sends every time zone's readers at `at` in
their own zone.

The edition is the list's: the one dated in the schedule's zone, ready at the list's own morning
(`at` there). A zone's batch for that edition goes out at the first `at` on its own wall clock at or
after that moment — New York's the same day, six hours later; Tokyo's and Kathmandu's (+05:45) the next
local morning. Wall-clock times go through `zoneinfo`, so DST is honoured in each zone: a time in a
spring-forward gap is sent an hour later, one in a repeated autumn hour once.

Each zone is a `Morning` of its own — its own runs (a file `data/schedule-zones/<Area>_<City>.sqlite`, or
its rows of PostgreSQL's `schedule_zone_runs` when `database_url` is set),
the same grace period, retries and catch-up rules, "never twice" per edition and zone — whose trigger
fires only at the zone's batch times (`BatchTrigger`) and whose send narrows the list to the zone's
readers. The mailing ledger is the edition's, shared by all batches: a reader is never sent twice
whichever batch they fall in. A reader's zone is the list's `timezone` column (or the subscriber
store's `timezone`); empty or not an IANA name → the schedule's zone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger

from ..config import Settings
from .config import MorningTrigger, ScheduleConfig, in_zone, latest_fire
from .morning import Morning, Report, SendFn
from .runs import open_run_store

# A list fire and its batches are at most a day and a bit apart (`at` can be just past in a zone).
_SPAN = timedelta(days=2)


def reader_zone(value: str, default: ZoneInfo) -> ZoneInfo:
    """The reader's IANA zone, or `default` when the column is empty or not a zone name."""
    name = (value or "").strip()
    if not name:
        return default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return default


def batch_time(list_fire: datetime, zone: ZoneInfo, at: Any) -> datetime:
    """The first instant at or after `list_fire` when the wall clock in `zone` shows `at`, in UTC."""
    start = list_fire.astimezone(UTC)
    local = start.astimezone(zone).date()
    for day in (local - timedelta(days=1), local, local + timedelta(days=1), local + timedelta(days=2)):
        # fold=0: a gap time maps an hour later on the new offset, a repeated time to its first instance.
        candidate = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
        if candidate >= start:
            return candidate
    raise AssertionError("a wall-clock time recurs within two days")


class BatchTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires at one zone's batch times: for each fire of the list's trigger, the zone's next `at`."""

    def __init__(self, list_trigger: MorningTrigger, zone: ZoneInfo, at: Any) -> None:
        self.list_trigger = list_trigger
        self.zone = zone
        self.timezone = zone  # what next_runs shows the times in
        self.at = at

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = now.astimezone(UTC)
        if previous_fire_time is not None:
            after = max(after, previous_fire_time.astimezone(UTC) + timedelta(microseconds=1))
        fire = self.list_trigger.get_next_fire_time(None, after - _SPAN)
        prev: datetime | None = None
        while fire is not None:
            batch = batch_time(fire, self.zone, self.at)
            if batch >= after:
                return batch.astimezone(self.zone)
            prev = fire
            fire = self.list_trigger.get_next_fire_time(prev, fire + timedelta(microseconds=1))
        return None

    def __getstate__(self) -> dict[str, Any]:  # the job store pickles triggers
        return {"list_trigger": self.list_trigger, "zone": self.zone.key, "at": self.at}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["list_trigger"], ZoneInfo(state["zone"]), state["at"])  # type: ignore[misc]


class ZoneMorning(Morning):
    """One zone's batches: a `Morning` whose fire times are the zone's batch times and whose edition is
    the list's (dated in the schedule's zone)."""

    def __init__(
        self,
        settings: Settings,
        config: ScheduleConfig,
        zone: ZoneInfo,
        *,
        send: SendFn | None = None,
        stop: threading.Event | None = None,
        **kwargs: Any,
    ) -> None:
        self.list_config = config
        self.list_trigger = config.trigger()
        self.zone = zone
        zone_config = replace(config, timezone=zone)
        super().__init__(
            settings,
            zone_config,
            send=send or zone_sender(zone.key, config.timezone),
            store=kwargs.pop("store", None) or open_run_store(settings, zone.key),
            stop=stop,
            **kwargs,
        )
        self.trigger = BatchTrigger(self.list_trigger, zone, config.at)

    def edition_for(self, scheduled: datetime) -> date:
        """The list's edition whose batch in this zone is at `scheduled`: the latest list morning before it."""
        fire = latest_fire(self.list_trigger, scheduled)
        when = fire if fire is not None else scheduled
        return in_zone(when, self.list_config.timezone).date()


def zone_sender(zone: str, default: ZoneInfo) -> SendFn:
    """The send for one zone's batch: every language edition, to the readers in `zone` only."""

    def send(settings: Settings, day: date, *, stop: threading.Event | None = None) -> Report:
        from ..delivery import send_languages

        def in_this_zone(sub: Any) -> bool:
            return reader_zone(sub.timezone, default).key == zone

        return send_languages(settings, day, keep=in_this_zone, stop=stop, progress=False).combined()

    return send


def subscriber_zones(settings: Settings, default: ZoneInfo) -> dict[str, int]:
    """Each zone of the subscriber list (`[mailing] subscribers`, else the subscriber store's confirmed
    readers, as `send` reads them) and how many readers it has."""
    from ..delivery import MailingOptions, SubscriberSource, has_subscriber_list, store_source

    spec = MailingOptions.from_settings(settings).subscribers
    if spec is None and not has_subscriber_list(settings):
        return {default.key: 0}
    source = SubscriberSource(spec, settings.root) if spec is not None else store_source(settings)
    counts: dict[str, int] = {}
    for sub in source.rows(lambda _p: None):
        key = reader_zone(sub.timezone, default).key
        counts[key] = counts.get(key, 0) + 1
    return counts or {default.key: 0}


@dataclass(frozen=True)
class Batch:
    at: datetime  # in the zone's local time
    zone: str
    edition: date
    readers: int


def next_batches(settings: Settings, config: ScheduleConfig, start: datetime, count: int) -> list[Batch]:
    """The next `count` batches at or after `start`, every zone of the list, in time order."""
    zones = subscriber_zones(settings, config.timezone)
    out: list[Batch] = []
    list_trigger = config.trigger()
    for name, readers in zones.items():
        zone = ZoneInfo(name)
        trigger = BatchTrigger(list_trigger, zone, config.at)
        prev: datetime | None = None
        now = start
        for _ in range(count):
            nxt = trigger.get_next_fire_time(prev, now)
            if nxt is None:
                break
            fire = latest_fire(list_trigger, nxt)
            edition = in_zone(fire if fire is not None else nxt, config.timezone).date()
            out.append(Batch(in_zone(nxt, zone), name, edition, readers))
            prev = now = nxt
    out.sort(key=lambda b: (b.at.astimezone(UTC), b.zone))
    return out[:count]
