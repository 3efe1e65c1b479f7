"""How the mail landed: per edition and over the last 90 days, from what is already recorded.

Pure: the figures come in as values (bounces/landing.py gathers them from the ledgers, the suppression
list, the bounce records and the subscriber store) and go out as `Landing`, with the alerts. Nothing
here tracks a reader: no opens, no clicks — only what the mail servers and the readers' own actions
(unsubscribing, a "this is spam" report through a feedback loop, signing up) already left behind.

    delivered     accepted by the receiving server (the ledger's `sent`)
    deferred      left pending after transient errors (4xx) in a run, summed over the runs
    failed        refused for good at send time (5xx)
    bounced hard  5.1.x refusals at send time, plus bounce reports that came back later
    bounced soft  soft-bounce reports (mailbox full, …) that came back
    complaints    feedback-loop reports ("this is spam")
    unsubscribes  one-click or page unsubscribes

Reports that come back later carry no edition: each is counted for the newest edition sent on or before
the day it arrived (in the newsletter's time zone) — for a daily newsletter, that morning's.

The alert levels are the ones mailbox providers publish: Gmail and Yahoo ask bulk senders to stay under
0.1 % spam complaints and never reach 0.3 % (February 2024 rules); for bounces, Amazon SES reviews a
sender at 5 % and may pause it at 10 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

COMPLAINT_GOAL, COMPLAINT_LIMIT = 0.001, 0.003  # Gmail and Yahoo bulk-sender rules
BOUNCE_REVIEW, BOUNCE_LIMIT = 0.05, 0.10  # Amazon SES's published review and pause levels
LANDING_DAYS = 90  # the period "how it landed" looks back over


@dataclass(frozen=True)
class EditionFigures:
    edition: date
    recipients: int = 0  # enrolled in the ledgers (every language): the list the edition went to
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    pending: int = 0
    bounced_hard: int = 0
    bounced_soft: int = 0
    complaints: int = 0
    unsubscribes: int = 0

    @property
    def handed(self) -> int:
        """Messages the receiving servers answered for good (delivered or refused)."""
        return self.delivered + self.failed

    @property
    def bounce_rate(self) -> float:
        return self.bounced_hard / self.handed if self.handed else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.delivered if self.delivered else 0.0

    @property
    def unsubscribe_rate(self) -> float:
        return self.unsubscribes / self.delivered if self.delivered else 0.0


@dataclass(frozen=True)
class DayFigures:
    day: date
    signups: int = 0  # confirmed that day (double opt-in completed)
    requests: int = 0  # asked that day (confirmation pending or done)
    unsubscribes: int = 0
    list_size: int | None = None  # confirmed readers at the end of the day; None without a subscriber store


@dataclass(frozen=True)
class Alert:
    level: str  # "critical" (past a provider's limit) or "warning" (past its goal)
    edition: date
    measure: str  # "complaints" (over delivered) or "bounces" (hard, over handed to the servers)
    count: int
    total: int

    @property
    def rate(self) -> float:
        return self.count / self.total if self.total else 0.0

    @property
    def message(self) -> str:
        """The alert in English, on one line (the CLI; the desk words it in the staff member's language)."""
        rate = f"{self.count}/{self.total} = {self.rate:.2%}"
        if self.measure == "complaints":
            said = (
                "at or past Gmail's and Yahoo's 0.3 % limit"
                if self.level == "critical"
                else "above the 0.1 % Gmail and Yahoo ask for"
            )
            return f"edition {self.edition}: spam complaints {rate}, {said}"
        said = (
            "at or past the 10 % at which Amazon SES pauses a sender"
            if self.level == "critical"
            else "past the 5 % at which Amazon SES reviews a sender"
        )
        return f"edition {self.edition}: hard bounces {rate}, {said}"


@dataclass(frozen=True)
class Landing:
    start: date
    end: date
    editions: list[EditionFigures] = field(default_factory=list)  # oldest first
    days: list[DayFigures] = field(default_factory=list)  # every day from start to end
    alerts: list[Alert] = field(default_factory=list)

    def totals(self) -> EditionFigures:
        """Every edition of the period added up (its `edition` is the period's end)."""
        keys = (
            "recipients",
            "delivered",
            "deferred",
            "failed",
            "pending",
            "bounced_hard",
            "bounced_soft",
            "complaints",
            "unsubscribes",
        )
        return EditionFigures(self.end, **{k: sum(getattr(e, k) for e in self.editions) for k in keys})

    def edition(self, day: date) -> EditionFigures | None:
        return next((e for e in self.editions if e.edition == day), None)


def alerts_for(figures: EditionFigures) -> list[Alert]:
    """An edition's complaint and bounce rates against the providers' published levels."""
    found = []
    day = figures.edition
    for measure, count, total, goal, limit in (
        ("complaints", figures.complaints, figures.delivered, COMPLAINT_GOAL, COMPLAINT_LIMIT),
        ("bounces", figures.bounced_hard, figures.handed, BOUNCE_REVIEW, BOUNCE_LIMIT),
    ):
        rate = count / total if total else 0.0
        if rate >= limit:
            found.append(Alert("critical", day, measure, count, total))
        elif rate >= goal:
            found.append(Alert("warning", day, measure, count, total))
    return found


def attribute(report_day: date, editions: list[date]) -> date | None:
    """The edition a later report counts for: the newest sent on or before its day (sorted `editions`)."""
    chosen = None
    for day in editions:
        if day > report_day:
            break
        chosen = day
    return chosen


def landing(start: date, end: date, editions: list[EditionFigures], days: list[DayFigures]) -> Landing:
    """The period's figures, with an alert for every edition past a provider's level (newest first)."""
    editions = sorted(editions, key=lambda e: e.edition)
    alerts = [a for e in reversed(editions) for a in alerts_for(e)]
    return Landing(start, end, editions, sorted(days, key=lambda d: d.day), alerts)
