"""How an edition's mailing is doing by the mailbox providers' measures: bounce and complaint rates
beside the limits they publish, and whether the circuit breaker paused it.

    hard bounces   refused at send time (5.1.x, or a bare 550/551/553; the ledger) plus bounces reported later
                   (the bounce records) — over the messages handed to the relay. Gmail and Yahoo
                   publish no bounce limit; Amazon SES reviews a sender at 5 % and pauses it at 10 %.
    complaints     readers' "this is spam" reports that came back through a feedback loop (the bounce
                   records) — over the messages delivered. Gmail and Yahoo: stay under
                   0.1 %, never reach 0.3 % (their February 2024 rules for bulk senders).

Reports that come back later are the bounce records' (`newsletter bounces`: the edition its return
path token or the original message's headers name, else the day it arrived); the caller passes their
counts (`later`), as the delivery layer does not read the bounce records itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from ..config import Settings
from .breaker import enhanced_class
from .ledger import ledger_dir, parse_ledger_name
from .stores import ledger_exists, open_ledger

COMPLAINT_GOAL, COMPLAINT_LIMIT = 0.001, 0.003  # Gmail and Yahoo bulk-sender rules
BOUNCE_REVIEW, BOUNCE_LIMIT = 0.05, 0.10  # Amazon SES's published review and pause levels
RECENT_LEDGERS = 14  # SQLite ledgers (newest first) `status --check` looks at besides the last week's
PAUSED = "paused"  # the ledger meta that holds why the breaker paused a mailing ("" once resumed)


@dataclass(frozen=True)
class Rates:
    handed: int  # messages the relay answered for good (sent + refused)
    delivered: int
    bounced: int
    complained: int

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.handed if self.handed else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complained / self.delivered if self.delivered else 0.0

    def line(self) -> str:
        bounce = _judge(self.bounce_rate, BOUNCE_REVIEW, BOUNCE_LIMIT)
        complaint = _judge(self.complaint_rate, COMPLAINT_GOAL, COMPLAINT_LIMIT)
        return (
            f"Rates: hard bounces {self.bounced}/{self.handed} = {self.bounce_rate:.2%} {bounce} "
            f"(Amazon SES reviews at {BOUNCE_REVIEW:.0%}, pauses at {BOUNCE_LIMIT:.0%}); "
            f"complaints {self.complained}/{self.delivered} = {self.complaint_rate:.3%} {complaint} "
            f"(Gmail and Yahoo: under {COMPLAINT_GOAL:.1%}, never {COMPLAINT_LIMIT:.1%})"
        )


def _judge(rate: float, goal: float, limit: float) -> str:
    return "OVER THE LIMIT" if rate >= limit else "above the goal" if rate >= goal else "ok"


def edition_rates(settings: Settings, day: date, later: Mapping[str, int] | None = None) -> Rates | None:
    """The rates of edition `day` (this language's ledger), with `later` (hard bounces and complaints
    reported after the send, by kind: "hard", "complaint"); None when it was never sent."""
    if not ledger_exists(settings, day):
        return None
    with open_ledger(settings, day, readonly=True) as ledger:
        counts = ledger.counts()
        refused = ledger.rows("failed", limit=max(counts.failed, 1))
    at_send = sum(_hard(r["code"], str(r["reply"] or "")) for r in refused)
    later = later or {}
    return Rates(
        handed=counts.sent + counts.failed,
        delivered=counts.sent,
        bounced=at_send + later.get("hard", 0),
        complained=later.get("complaint", 0),
    )


def day_rates(settings: Settings, day: date, later: Mapping[str, int] | None = None) -> Rates | None:
    """Every language edition of `day` together, with what was reported later for any of them (`later`)."""
    found = [r for lang in settings.languages if (r := edition_rates(settings.for_language(lang), day))]
    if not found:
        return None
    later = later or {}
    return Rates(
        handed=sum(r.handed for r in found),
        delivered=sum(r.delivered for r in found),
        bounced=sum(r.bounced for r in found) + later.get("hard", 0),
        complained=later.get("complaint", 0),
    )


def _hard(code: int | None, reply: str) -> bool:
    """A ledger's refusal that was a hard bounce: 5.1.x, or without an enhanced code a 550/551/553."""
    found = enhanced_class(reply)
    if found is not None:
        return found == (5, 1)
    return code in (550, 551, 553)


def paused_reason(settings: Settings, day: date) -> str:
    """Why the breaker paused edition `day` (this language), or "" when it is not paused."""
    if not ledger_exists(settings, day):
        return ""
    with open_ledger(settings, day, readonly=True) as ledger:
        return ledger.get_meta(PAUSED) or ""


def paused_mailings(settings: Settings, today: date, days: int = 7) -> list[str]:
    """One line per paused mailing: among the last `days` days' editions and the newest SQLite ledgers."""
    candidates = {today - timedelta(days=back) for back in range(days)}
    if not settings.database_url and ledger_dir(settings).is_dir():
        found = (parse_ledger_name(p.name.removesuffix(".sqlite")) for p in ledger_dir(settings).glob("*.sqlite"))
        candidates |= set(sorted({f[0] for f in found if f is not None})[-RECENT_LEDGERS:])
    lines = []
    for day in sorted(candidates, reverse=True):
        for lang in settings.languages:
            edition = settings.for_language(lang) if settings.multilingual else settings
            reason = paused_reason(edition, day)
            if reason:
                label = f"{day} ({lang})" if settings.multilingual else str(day)
                lines.append(f"edition {label} {reason}")
    return lines
