"""The circuit breaker: pause a send that is burning the sending domain's reputation.

Two signs that going on makes things worse, each with its `[mailing]` setting:

    breaker_window = 1000          # watch the first N messages of a run for hard bounces …
    breaker_bounce_share = 0.05    # … and pause past this share of them (a stale list)
    breaker_policy_run = 5         # pause after this many policy refusals in a row (5.7.x, 4.7.x:
                                   # blocked, or rate-limited by a mailbox provider)

A hard bounce is a permanent refusal of the recipient (at RCPT, or any 5.1.x); a policy refusal is a
reply with an RFC 3463 status of subject 7 — about the sender, not the reader: any 5.7.x, and a 4.7.x
anywhere but at RCPT (there it is mostly greylisting). The share is judged once
enough of the window is in (a fifth of it, at least 50 messages), so two unlucky bounces among the
first ten do not stop a morning; past `share × window` bounces it trips whatever the count.

The send loop asks `record(outcome)` after every reply; the first time it returns a reason, the loop
pauses the run: messages in flight finish, the rest stay pending, the ledger remembers why (its meta
`paused`), and `newsletter send --resume` goes on once someone has looked. Pure: no I/O, thread-safe.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from .sinks.base import Outcome

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.\d{1,3}\b")  # RFC 3463 enhanced status code
MIN_SAMPLE = 50


def enhanced_class(reply: str) -> tuple[int, int] | None:
    """(class, subject) of the reply's enhanced status code: `550 5.7.1 …` → (5, 7); None without one."""
    m = _STATUS.search(reply[:40])
    return (int(m.group(1)), int(m.group(2))) if m else None


def is_policy(outcome: Outcome) -> bool:
    """A refusal about the sender (reputation, authentication, rate): 5.7.x anywhere, 4.7.x but at RCPT.

    A 4.7.x to one recipient is most often greylisting (`451 4.7.1 greylisted`): that domain's way of
    meeting a new sender, retried as usual, not a verdict on the domain."""
    found = enhanced_class(outcome.reply)
    if outcome.sent or found is None or found[1] != 7:
        return False
    return found[0] == 5 or outcome.stage != "rcpt"


def is_hard_bounce(outcome: Outcome) -> bool:
    """A permanent refusal of the recipient: 5.1.x anywhere, or a 5xx at RCPT that is not about policy."""
    if outcome.status != "permanent" or is_policy(outcome):
        return False
    found = enhanced_class(outcome.reply)
    return (found is not None and found == (5, 1)) or outcome.stage == "rcpt"


@dataclass
class Breaker:
    window: int = 1000
    bounce_share: float = 0.05
    policy_run: int = 5
    seen: int = 0  # replies counted in the window (sent or refused for good)
    bounced: int = 0
    in_a_row: int = 0  # policy refusals since the last message that went through
    reason: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, outcome: Outcome) -> str | None:
        """Count one reply; the reason to pause the first time a limit is passed, else None."""
        with self._lock:
            if self.reason is not None:
                return None
            if outcome.sent:
                self.in_a_row = 0
            elif is_policy(outcome):
                self.in_a_row += 1
                if self.policy_run and self.in_a_row >= self.policy_run:
                    return self._trip(
                        f"{self.in_a_row} policy refusals in a row (blocked or rate-limited), "
                        f"last: {outcome.reply[:160]}"
                    )
            if self.window and self.seen < self.window and (outcome.sent or outcome.status == "permanent"):
                self.seen += 1
                self.bounced += is_hard_bounce(outcome)
                if self._too_many_bounces():
                    share = self.bounced / self.seen
                    return self._trip(
                        f"{self.bounced} hard bounces in the first {self.seen} messages ({share:.1%}, "
                        f"limit {self.bounce_share:.1%}): is the list stale?"
                    )
            return None

    def _too_many_bounces(self) -> bool:
        if self.bounce_share >= 1:
            return False
        if self.bounced > self.bounce_share * self.window:  # the window's share is passed whatever comes next
            return True
        sample = min(self.window, max(MIN_SAMPLE, self.window // 5))
        return self.seen >= sample and self.bounced > self.bounce_share * self.seen

    def _trip(self, reason: str) -> str:
        self.reason = reason
        return reason
