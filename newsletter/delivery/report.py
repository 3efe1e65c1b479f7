"""What a send run reports (SendReport)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

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
    processes: int = 1  # sender processes that shared the delivery (processes.py)
    elapsed: float = 0.0
    send_seconds: float = 0.0  # the delivery phase alone (the rate is over this)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    senders: list[dict[str, Any]] = field(default_factory=list)  # per sender, when several share a mailing
    stories_skipped: list[str] = field(default_factory=list)  # stories of the edition left out, one line each
    requeued: int = 0  # failed recipients put back in the queue (`--retry-failed`)
    idle: str = ""  # why a run had nothing to send, when it had nothing to send
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
        if self.requeued:
            head += f" ({self.requeued} failed put back in the queue)"
        if not self.dry_run and self.sent_now != self.sent:
            head += f" ({self.sent_now} this run)"
        left_out = f", {len(self.stories_skipped)} story(ies) left out" if self.stories_skipped else ""
        return (
            f"{head}, failed {self.failed}, skipped {self.skipped}{f' ({skipped})' if skipped else ''}, "
            f"retried {self.retried}, pending {self.pending}{rate}{left_out} — {self.sink}"
        )
