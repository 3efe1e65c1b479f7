"""The edition's ledger as one run of a send sees it: the list enrolled into it, the pending rows
handed out as messages, the edition remembered, a pause honoured, and why a run found nothing to send.

    subscriber list ──stream, ENROL_CHUNK rows a statement──▶ ledger (validate, dedupe, pending rows)
    ledger pending rows ──suppression check──▶ Personalizer ──▶ (row, Envelope) for the send loop
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from datetime import date

from ..errors import PausedError
from .health import PAUSED
from .ledger import Row
from .loop import Delivery
from .personalize import Personalizer
from .processes import claim_size
from .report import SendReport
from .sinks.base import Envelope
from .stores import LedgerStore
from .subscribers import Problem, SubscriberSource
from .suppression import Suppression

PAUSE_CHECK = 500  # messages between two looks at the ledger's pause (senders sharing a mailing stop together)
ENROL_CHUNK = 5000  # rows per enrolment statement
MAX_PROBLEMS = 200  # reported in full; beyond that only counted (a broken million-row file stays small)


def check_paused(ledger: LedgerStore, day: date, resume: bool) -> None:
    """A paused mailing stays paused until someone resumes it (a cron rerun would only burn more)."""
    reason = ledger.get_meta(PAUSED)
    if not reason:
        return
    if not resume:
        raise PausedError(f"edition {day} is {reason}; once that is dealt with: newsletter send --resume")
    ledger.set_meta(PAUSED, "")


def why_idle(ledger: LedgerStore, report: SendReport) -> str:
    """One line for a run that found nobody to send to: what the ledger says, and the way on."""
    if report.pending:
        return ""  # held by other senders (PostgreSQL), or stopped before the first message
    runs = [r for r in ledger.runs() if int(r.get("sent") or 0)]
    when = f" on {str(runs[-1]['started_at'])[:16].replace('T', ' ')} UTC via {runs[-1]['sink']}" if runs else ""
    parts = []
    if report.sent:
        parts.append(f"all {report.sent} already sent{when} (a rerun never mails anyone twice)")
    if report.failed:
        replies = ledger.rows("failed", limit=1)
        last = f", the relay said {str(replies[0]['reply'])[:120]!r}" if replies else ""
        parts.append(f"{report.failed} failed earlier{last}: `--retry-failed` puts them back in the queue")
    if not parts:
        parts.append("the list has nobody to send to")
    return "nothing to send: " + "; ".join(parts) + "; `--to ADDR` sends a test copy"


def check_edition(ledger: LedgerStore, html: str, text: str, report: SendReport) -> None:
    """Remember what the edition looked like; warn when a rerun would send a changed one."""
    digest = hashlib.sha256((html + "\0" + text).encode()).hexdigest()
    before = ledger.get_meta("edition_sha256")
    if before is None:
        ledger.set_meta("edition_sha256", digest)
    elif before != digest:
        sent = ledger.counts().sent
        if sent:
            report.warnings.append(
                f"the edition changed since the first run: {sent} subscriber(s) got the earlier version, "
                "the rest get this one"
            )
        ledger.set_meta("edition_sha256", digest)


def enrol(ledger: LedgerStore, run: int, source: SubscriberSource, report: SendReport) -> None:
    """Stream the list into the ledger: a few thousand rows per statement and transaction."""

    def problem(p: Problem) -> None:
        report.invalid += 1
        if len(report.problems) < MAX_PROBLEMS:
            report.problems.append(str(p))

    rows = source.rows(problem)
    while True:
        chunk = [(sub.address, sub.name, sub.locale, sub.line) for sub in itertools.islice(rows, ENROL_CHUNK)]
        if not chunk:
            break
        with ledger.batch():
            duplicates = ledger.enrol_many(run, chunk)
        report.duplicates += len(duplicates)
        for line, first, address in duplicates:
            if len(report.problems) >= MAX_PROBLEMS:
                break
            report.problems.append(f"{source.path.name}:{line}: duplicate of line {first} ({address})")
    report.removed = ledger.retire_unseen(run)


def pending_jobs(
    ledger: LedgerStore,
    run: int,
    personalizer: Personalizer,
    suppression: Suppression,
    delivery: Delivery,
    sender: Callable[[str], str],
    limit: int | None,
    part: tuple[int, int],
) -> Iterator[tuple[Row, Envelope]]:
    """The run's pending rows (part k of n) as messages, the suppressed ones skipped on the way, until
    `limit` messages or another sender's pause."""
    handed = 0
    dot_safe = personalizer.dot_safe
    batch = {} if part[1] == 1 else {"batch": claim_size(ledger.count_pending(run), part[1])}
    # Checked now, not at enrolment: an unsubscribe mid-run counts (looked up a batch at a time).
    for row in ledger.pending(run, suppressed=suppression.which, part=part, **batch):
        if limit is not None and handed >= limit:
            return
        if row.suppressed or (row.suppressed is None and row.address in suppression):
            ledger.mark_skipped(row.id, "suppressed")
            delivery.stats.add("suppressed")
            continue
        handed += 1
        if handed % PAUSE_CHECK == 0 and (reason := ledger.get_meta(PAUSED)):  # another sender's breaker
            delivery.pause(reason)
            return
        data = personalizer.message(row.address, row.name)
        yield row, Envelope(sender(row.address), row.address, data, key=str(row.id), dot_safe=dot_safe)
