"""The morning scheduler: APScheduler wiring around one idempotent job, "send today's edition".

In:  the settings (`[schedule]`), the clock.
Out: one run of the edition pipeline and the mailing per edition date, recorded in `data/schedule.sqlite`.

    config.py    ScheduleConfig (the `[schedule]` table) and MorningTrigger (one fire per local day)
    runs.py      RunStore: one row per edition date (running/completed/empty/failed/interrupted/skipped),
                 SQLite or PostgreSQL (one daemon of a fleet claims each morning); open_run_store
    morning.py   Morning: the job itself, with an injected clock: grace check, claim, intake, send, record
    daemon.py    Daemon: BlockingScheduler + SQLAlchemy job store + the lock + signals + retries
    zones.py     per_timezone: one Morning per zone of the list, each firing at the zone's own `at`

Why two stores: APScheduler's job store keeps the schedule (trigger, next run) across restarts, but it
moves `next_run_time` forward the moment a job is *submitted*, so it cannot tell a finished morning from
one that crashed half-way. The runs table, keyed by edition date, can: a completed (or empty) edition is
never run again, whatever fires the job — a double fire, a clock change, a restart, a second process —
and a crashed or stopped one is resumed by the mailing ledger when the daemon comes back within the grace
period. Past the grace period nothing is sent: the morning is logged loudly as skipped.

Public face: the names in `__all__`.
"""

from __future__ import annotations

from .config import (
    MorningTrigger,
    ScheduleConfig,
    config_for,
    fire_times,
    format_duration,
    latest_fire,
    next_runs,
    parse_duration,
    read_config,
)
from .daemon import Daemon, bounces_job, lock_path, logging_to_stderr, morning_job, run_now, scheduler_lock
from .morning import Morning, Outcome, RunResult, preflight, send_with_mailing
from .runs import RunStore, State, open_run_store, store_path, zone_store_path
from .zones import Batch, BatchTrigger, ZoneMorning, batch_time, next_batches, reader_zone, subscriber_zones

__all__ = [
    "Batch",
    "BatchTrigger",
    "Daemon",
    "Morning",
    "MorningTrigger",
    "Outcome",
    "RunResult",
    "RunStore",
    "ScheduleConfig",
    "State",
    "ZoneMorning",
    "batch_time",
    "bounces_job",
    "config_for",
    "fire_times",
    "format_duration",
    "latest_fire",
    "lock_path",
    "logging_to_stderr",
    "morning_job",
    "next_batches",
    "next_runs",
    "open_run_store",
    "parse_duration",
    "preflight",
    "read_config",
    "reader_zone",
    "run_now",
    "scheduler_lock",
    "send_with_mailing",
    "store_path",
    "subscriber_zones",
    "zone_store_path",
]
