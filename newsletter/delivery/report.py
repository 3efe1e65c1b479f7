"""What a send run reports (SendReport) and the `[mailing]` options it runs with (MailingOptions)."""

from __future__ import annotations

import contextlib
import random
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..config import Settings
from ..errors import ConfigError
from .subscribers import check_address
from .verp import ReturnPath

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
    senders: list[dict[str, Any]] = field(default_factory=list)  # per sender, when several share a mailing
    stories_skipped: list[str] = field(default_factory=list)  # stories of the edition left out, one line each
    paused: str = ""  # why the circuit breaker paused the mailing ("" when it is not paused)

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
        left_out = f", {len(self.stories_skipped)} story(ies) left out" if self.stories_skipped else ""
        return (
            f"{head}, failed {self.failed}, skipped {self.skipped}{f' ({skipped})' if skipped else ''}, "
            f"retried {self.retried}, pending {self.pending}{rate}{left_out} — {self.sink}"
        )


# --- options ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailingOptions:
    subscribers: str | None = None
    max_attempts: int = 5
    retry_base: float = 1.0
    retry_max: float = 60.0
    max_defer: float = 900.0  # seconds since a message's first try after which it waits for the next run
    stop_after_same_failures: int = 20  # this many messages in a row failing the same way stop the run (0: never)
    suppress_bounces: bool = True
    return_path: str | None = None  # MAIL FROM, where bounces go (default: the sender address)
    sender_id: str = ""  # the last field of Feedback-ID (default: the From domain)
    # The circuit breaker (breaker.py): pause past this share of hard bounces among the first
    # `breaker_window` messages, or after `breaker_policy_run` policy refusals (5.7.x) in a row; 0 turns each off.
    breaker_window: int = 1000
    breaker_bounce_share: float = 0.05
    breaker_policy_run: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> MailingOptions:
        table = settings.section("mailing")
        known = {"subscribers", "max_attempts", "retry_base", "retry_max", "suppress_bounces", "suppression"}
        known |= {"ledger_dir", "return_path", "max_defer", "stop_after_same_failures", "lease_seconds"}
        known |= {"sender_id", "breaker_window", "breaker_bounce_share", "breaker_policy_run"}
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
            verp = ReturnPath.parse(str(return_path))  # `bounces+{token}@…`: one signed address per recipient
            try:
                checked = check_address(verp.sample() if verp else str(return_path))
            except ValueError as exc:
                raise ConfigError(f"[mailing] return_path: {exc}") from None
            return_path = str(return_path).strip() if verp else checked
        sender_id = table.get("sender_id", "")
        if not isinstance(sender_id, str) or not re.fullmatch(r"[A-Za-z0-9._-]*", sender_id):
            raise ConfigError(f"[mailing] sender_id must be letters, digits, '.', '_' or '-', got {sender_id!r}")
        bounces = table.get("suppress_bounces", True)
        if isinstance(bounces, str):
            bounces = bounces.strip().lower() in ("1", "true", "yes", "on")
        return cls(
            subscribers=subscribers,
            max_attempts=int(number("max_attempts", 1, 100, 5)),
            retry_base=number("retry_base", 0, 3600, 1.0),
            retry_max=number("retry_max", 0, 86400, 60.0),
            max_defer=number("max_defer", 0, 7 * 86400, 900.0),
            stop_after_same_failures=int(number("stop_after_same_failures", 0, 1_000_000, 20)),
            suppress_bounces=bool(bounces),
            return_path=return_path,
            sender_id=sender_id,
            breaker_window=int(number("breaker_window", 0, 10_000_000, 1000)),
            breaker_bounce_share=number("breaker_bounce_share", 0, 1, 0.05),
            breaker_policy_run=int(number("breaker_policy_run", 0, 1_000_000, 5)),
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1-based): doubling, capped, with jitter."""
        delay = min(self.retry_max, self.retry_base * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)
