"""The `[mailing]` table, read once into `MailingOptions`: the list, retries, the run's stop rule, the
Return-Path, where the suppression list and the ledgers live, and how long a claimed batch stays a sender's.

    [mailing]
    subscribers = "subscribers.csv"      # a file or a store; default: the subscriber store
    max_attempts = 5                     # tries per address in one run (1-100)
    retry_base = 1.0                     # seconds before the first retry, doubling …
    retry_max = 60.0                     # … up to this
    max_defer = 900                      # seconds after which a deferred message waits for the next run
    stop_after_same_failures = 20        # this many in a row failing the same way stop the run (0: never)
    suppress_bounces = true
    return_path = "bounces+{token}@…"    # MAIL FROM (default: the sender)
    suppression = "data/suppression.sqlite"   # an older separate list, merged once into the reader base
    ledger_dir = "data/ledger"
    lease_seconds = 60                   # PostgreSQL: a claimed batch's lease without renewal (1-3600)
    sender_id = "…"                      # the last field of Feedback-ID (default: the From domain)
    breaker_window = 1000                # the circuit breaker (breaker.py); 0 turns each rule off
    breaker_bounce_share = 0.05
    breaker_policy_run = 5
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..options import Options, Table
from .addresses import check_address
from .verp import ReturnPath

_KNOWN = (
    "subscribers",
    "max_attempts",
    "retry_base",
    "retry_max",
    "max_defer",
    "stop_after_same_failures",
    "suppress_bounces",
    "return_path",
    "suppression",
    "ledger_dir",
    "lease_seconds",
    "sender_id",
    "breaker_window",
    "breaker_bounce_share",
    "breaker_policy_run",
    "processes",
)


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
    suppression: Path = Path("data/suppression.sqlite")
    ledger_dir: Path = Path("data/ledger")
    lease_seconds: float = 60.0  # how long a claimed batch stays a sender's without renewal (PostgreSQL)
    sender_id: str = ""  # the last field of Feedback-ID (default: the From domain)
    # The circuit breaker (breaker.py): pause past this share of hard bounces among the first
    # `breaker_window` messages, or after `breaker_policy_run` policy refusals (5.7.x) in a row; 0 turns each off.
    breaker_window: int = 1000
    breaker_bounce_share: float = 0.05
    breaker_policy_run: int = 5
    processes: int = 0  # sender processes over one mailing (0: one per core for SMTP; processes.py)

    @classmethod
    def from_settings(cls, settings: Settings) -> MailingOptions:
        """The `[mailing]` options of `settings`: `settings.options(MAILING)`, read once per settings."""
        return settings.options(MAILING)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1-based): doubling, capped, with jitter."""
        delay = min(self.retry_max, self.retry_base * 2.0 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)


def parse_mailing(table: Table) -> MailingOptions:
    table.only(_KNOWN)
    subscribers = table.get("subscribers")
    if subscribers is not None and not isinstance(subscribers, str):
        table.fail("subscribers", f"must be a file path, got {subscribers!r}")
    return MailingOptions(
        subscribers=subscribers,
        max_attempts=table.whole("max_attempts", 5, 1, 100),
        retry_base=table.number("retry_base", 1.0, 0, 3600),
        retry_max=table.number("retry_max", 60.0, 0, 86400),
        max_defer=table.number("max_defer", 900.0, 0, 7 * 86400),
        stop_after_same_failures=table.whole("stop_after_same_failures", 20, 0, 1_000_000),
        suppress_bounces=table.flag("suppress_bounces", True),
        return_path=_return_path(table),
        suppression=table.path("suppression", "data/suppression.sqlite"),
        ledger_dir=table.path("ledger_dir", "data/ledger", what="a folder path"),
        lease_seconds=table.number("lease_seconds", 60.0, 1, 3600, unit="seconds"),
        sender_id=_sender_id(table),
        breaker_window=table.whole("breaker_window", 1000, 0, 10_000_000),
        breaker_bounce_share=table.number("breaker_bounce_share", 0.05, 0, 1),
        breaker_policy_run=table.whole("breaker_policy_run", 5, 0, 1_000_000),
        processes=table.whole("processes", 0, 0, 256),
    )


def _sender_id(table: Table) -> str:
    value = table.get("sender_id", "")
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9._-]*", value):
        table.fail("sender_id", f"must be letters, digits, '.', '_' or '-', got {value!r}")
    return value


def _return_path(table: Table) -> str | None:
    """`return_path`: an address, or a VERP template (`bounces+{token}@…`: one signed address per recipient)."""
    value = table.get("return_path") or None
    if value is None:
        return None
    verp = ReturnPath.parse(str(value))
    try:
        checked = check_address(verp.sample() if verp else str(value))
    except ValueError as exc:
        table.fail("return_path", f"is not a usable address: {exc}")
    return str(value).strip() if verp else checked


MAILING = Options("mailing", parse_mailing)
