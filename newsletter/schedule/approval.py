"""Approval before a morning goes out: `[schedule] approval`, `approve_by`, `on_unapproved`.

    [schedule]
    approval = "required"      # "auto" (the default): send at `at` as always
    approve_by = "05:45"       # local time of the edition day; without it, the end of the grace period
    on_unapproved = "hold"     # "send" anyway, or "hold": log an error, `status --check` says CRITICAL

With approval required, the morning waits (inside its run, looking again every `POLL` seconds) until
every language edition of the day is approved as it is now: each language's approval must be of the
edition's current hash (editorial.edition_hash), so a story edited after approval voids it and the
morning waits again. At `approve_by` — at once when the morning fires after it — it sends anyway or holds.
A held morning is not sent by the scheduler: once approved, `newsletter schedule --run-now` sends it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from ..config import Settings
from ..errors import ConfigError

POLL = 30.0  # seconds between two looks at the approvals while a morning waits
MODES = ("auto", "required")
ACTIONS = ("send", "hold")
KEYS = ("approval", "approve_by", "on_unapproved")

log = logging.getLogger("newsletter.schedule")


@dataclass(frozen=True)
class ApprovalPolicy:
    required: bool = False
    approve_by: dtime | None = None
    on_unapproved: str = "send"

    def deadline(self, day: date, scheduled: datetime, grace: timedelta, zone: ZoneInfo) -> datetime:
        """When waiting ends: `approve_by` on the edition day (local), else the end of the grace period."""
        if self.approve_by is None:
            return scheduled + grace
        return datetime.combine(day, self.approve_by, tzinfo=zone)

    def describe(self) -> str:
        if not self.required:
            return "approval: auto"
        by = self.approve_by.isoformat("minutes") if self.approve_by else "the end of the grace period"
        return f"approval required by {by}, else {self.on_unapproved}"


def parse_policy(values: dict[str, Any], origin: str) -> ApprovalPolicy:
    """The three approval keys of `[schedule]`; each problem one line naming the key."""
    mode = str(values.get("approval", "auto")).strip().lower()
    if mode not in MODES:
        raise ConfigError(f'{origin} \'approval\' must be "auto" or "required", got {values.get("approval")!r}')
    action = str(values.get("on_unapproved", "send")).strip().lower()
    if action not in ACTIONS:
        raise ConfigError(f'{origin} \'on_unapproved\' must be "send" or "hold", got {values.get("on_unapproved")!r}')
    by_text = values.get("approve_by")
    by = None
    if by_text is not None:
        if not isinstance(by_text, str) or not re.fullmatch(r"\d{2}:\d{2}", by_text.strip()):
            raise ConfigError(f"{origin} 'approve_by' must be a 24-hour time HH:MM, got {by_text!r}")
        try:
            by = dtime.fromisoformat(by_text.strip())
        except ValueError:
            raise ConfigError(f"{origin} 'approve_by' must be a 24-hour time HH:MM, got {by_text!r}") from None
    return ApprovalPolicy(mode == "required", by, action)


@dataclass(frozen=True)
class Verdict:
    """What the approvals say of a day's editions now: all approved, or the reasons not (one per language)."""

    approved: bool
    reasons: tuple[str, ...] = ()
    hashes: tuple[str, ...] = ()  # the current hashes: a change among them is a new edition to approve


def verdict(settings: Settings, day: date) -> Verdict:
    """Every language edition of `day` against its newest approval (built now: what would go out)."""
    from ..edition import edition_digests
    from ..editorial import open_approvals

    digests = edition_digests(settings, day)
    reasons = []
    with open_approvals(settings) as store:
        for lang, digest in digests.items():
            state = store.state(settings.list.id, day, lang, digest.content_hash)
            if not state.approved:
                label = f" ({lang})" if settings.multilingual else ""
                reasons.append(f"edition {day}{label}: {state.describe()}")
    return Verdict(not reasons, tuple(reasons), tuple(sorted(d.content_hash for d in digests.values())))


@dataclass(frozen=True)
class GateResult:
    go: bool  # send now
    detail: str  # why (approved by…, sent unapproved, held)
    held: bool = False


def await_approval(
    settings: Settings,
    policy: ApprovalPolicy,
    day: date,
    deadline: datetime,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], bool],
    look: Callable[[Settings, date], Verdict] = verdict,
) -> GateResult:
    """Wait until the day's editions are approved as they are, or `deadline`; then `policy` decides.

    `sleep(seconds)` returns True when the wait should end early (the daemon is stopping): then the
    morning is not sent and its run is left to be resumed."""
    said: set[str] = set()
    while True:
        found = look(settings, day)
        if found.approved:
            return GateResult(True, "approved")
        for reason in found.reasons:
            if reason not in said:  # a void approval or a new wait is said once, not every poll
                said.add(reason)
                log.warning("%s; waiting until %s", reason, deadline.isoformat(timespec="minutes"))
        now = clock()
        if now >= deadline:
            why = "; ".join(found.reasons)
            if policy.on_unapproved == "send":
                log.warning("edition %s: not approved by %s (%s): sending anyway", day, deadline, why)
                return GateResult(True, f"sent unapproved ({why})")
            log.error(
                "edition %s: HELD, not approved by %s (%s); once approved: newsletter schedule --run-now",
                day,
                deadline.isoformat(timespec="minutes"),
                why,
            )
            return GateResult(False, f"held: not approved by {deadline.isoformat(timespec='minutes')} ({why})", True)
        if sleep(min(POLL, max((deadline - now).total_seconds(), 0.0))):
            return GateResult(False, "stopping while waiting for approval")
