"""What `newsletter status` says about the scheduled mornings: the recent runs, and the monitoring check."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from ..config import Settings

RECENT = 7
# Exit codes of `status --check`, as monitoring plugins read them (Nagios, Icinga, Sensu).
OK, CRITICAL, UNKNOWN = 0, 1, 3


_NEVER_RAN = (
    "UNKNOWN: the scheduler has never run here (no record of a morning); start `newsletter schedule` "
    "(docs/scheduling.md)"
)


def _run_store(settings: Settings) -> Any:
    """The scheduler's runs where the settings keep them; None when a SQLite file was never made (reading
    must not create it)."""
    from ..schedule import open_run_store, store_path

    if not settings.database_url and not store_path(settings).is_file():
        return None
    return open_run_store(settings)


def recent_runs(settings: Settings) -> list[str]:
    """One line per recent scheduled morning (newest first); nothing when the scheduler never ran."""
    store = _run_store(settings)
    if store is None:
        return []
    with contextlib.closing(store):
        rows = sorted(store.rows(), key=lambda r: r.edition, reverse=True)[:RECENT]
    if not rows:
        return []
    lines = [f"Scheduled mornings (last {len(rows)}):"]
    for row in rows:
        lines.append(f"  {row.edition}  {row.state:<11}  attempts {row.attempts}  {row.detail}".rstrip())
    return lines


def check_line(settings: Settings, now: datetime | None = None) -> tuple[int, str]:
    """(exit code, one line) for the latest scheduled morning: done, not due yet, failed, late — or a
    mailing of the last week that the circuit breaker paused — or UNKNOWN when the scheduler has never
    run here (nothing can be late that nobody was asked to send)."""
    from ..delivery import paused_mailings
    from ..schedule import State, latest_fire, read_config

    now = now or datetime.now(UTC)
    paused = paused_mailings(settings, now.astimezone(settings.timezone).date())
    if paused:
        more = f" (and {len(paused) - 1} more)" if len(paused) > 1 else ""
        return CRITICAL, f"CRITICAL: {paused[0]}{more}; `newsletter resume` once dealt with"
    config = read_config(settings)
    latest = latest_fire(config.trigger(), now)
    if latest is None:
        return OK, "OK: no morning scheduled in the last week"
    local = latest.astimezone(config.timezone)
    day = local.date()
    deadline = local + config.grace
    store = _run_store(settings)
    if store is None:
        return UNKNOWN, _NEVER_RAN
    with contextlib.closing(store):
        if store.accounted_through() is None and not store.rows():
            return UNKNOWN, _NEVER_RAN
        row = store.get(day)
    if row is not None and row.state in (State.COMPLETED, State.EMPTY):
        return OK, f"OK: edition {day} {row.state.value}: {row.detail}".rstrip(": ")
    if row is not None and row.state in (State.FAILED, State.SKIPPED, State.HELD):
        return CRITICAL, f"CRITICAL: edition {day} {row.state.value}: {row.detail}".rstrip(": ")
    if now <= deadline:
        state = row.state.value if row is not None else "not started"
        return OK, f"OK: edition {day} {state}; due by {deadline.isoformat(timespec='minutes')}"
    state = row.state.value if row is not None else "never started"
    due = deadline.isoformat(timespec="minutes")
    return CRITICAL, f"CRITICAL: edition {day} is late ({state}); it was due by {due}"
