"""Where each language edition of a morning stands, from approval to the last message.

    waiting     approval required, none given yet
    void        approved, then the edition changed: approval needed again
    approved    approved as it is now (by whom, when) — or not needed (`approval = "auto"`)
    sending     its mailing has recipients pending (n of m sent)
    paused      its mailing is paused (by an operator or the circuit breaker)
    sent        nothing pending any more

Read from the approvals (editorial), the edition as it builds now (its hash) and the ledgers; nothing
is written. The CLI's `status` and the desk both show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ..config import Settings
from ..edition import edition_digests
from ..editorial import APPROVED, ApprovalState, open_approvals
from .languages import language_status
from .report import SendReport


@dataclass(frozen=True)
class EditionState:
    language: str
    phase: str  # waiting | void | approved | sending | paused | sent
    content_hash: str
    subject: str
    approval: ApprovalState
    sent: int = 0
    total: int = 0
    pending: int = 0
    paused: str = ""

    def line(self, day: date, *, multilingual: bool) -> str:
        label = f"{day} ({self.language})" if multilingual else str(day)
        approval = self.approval.describe() if self.approval.approval else ""
        if self.phase in ("waiting", "void"):
            return f"Edition {label}: {self.approval.describe()} (hash {self.content_hash[:12]})"
        when = f"; {approval}" if approval else ""
        if self.phase == "approved":
            return f"Edition {label}: {approval or 'approval not required'} (hash {self.content_hash[:12]})"
        if self.phase == "paused":
            return f"Edition {label}: {self.paused}, {self.sent} of {self.total} sent{when}"
        if self.phase == "sending":
            return f"Edition {label}: sending, {self.sent} of {self.total} sent{when}"
        return f"Edition {label}: sent to {self.sent} of {self.total}{when}"


def _phase(approval: ApprovalState, required: bool, report: SendReport | None) -> str:
    if report is not None and report.total:
        if report.paused:
            return "paused"
        return "sending" if report.pending else "sent"
    if not required or approval.state == APPROVED:
        return "approved"
    return approval.state


def morning_state(settings: Settings, day: date, *, required: bool) -> list[EditionState]:
    """One `EditionState` per language edition of `day` that has stories (built now for its hash)."""
    digests = edition_digests(settings, day)
    reports = language_status(settings, day)
    found = []
    with open_approvals(settings) as store:
        for lang, digest in digests.items():
            approval = store.state(settings.list.id, day, lang, digest.content_hash)
            report = reports.get(lang)
            found.append(
                EditionState(
                    lang,
                    _phase(approval, required, report),
                    digest.content_hash,
                    digest.subject,
                    approval,
                    sent=report.sent if report else 0,
                    total=report.total if report else 0,
                    pending=report.pending if report else 0,
                    paused=report.paused if report else "",
                )
            )
    return found
