"""What editors decide, kept as records, and how the mail they decided on landed.

In:  the settings (which store: `data/desk.sqlite`, or PostgreSQL with `database_url`), editors' choices,
     and figures the other subsystems already recorded (ledgers, suppression list, bounce records).
Out: `Plan` (the order, the pinned lead, the stories left out, the subject and preheader of one
     newsletter's edition in one language, with who and when) and `apply_plan`, which the edition
     pipeline calls on the ranked stories; `AuditLog` (who did what, when), exportable as CSV or JSON lines;
     approvals of an exact edition; pure views of how an edition landed, and their charts.

    store.py      where the desk's records live: `open_desk` (one SQLite file, or the PostgreSQL database)
    plans.py      `PlanStore`, `Plan`, `apply_plan`
    audit.py      `AuditLog`, `AuditEntry`, `export_entries`
    approval.py   `ApprovalStore`: who approved which exact edition (a content hash), and when;
                  `edition_hash`: the hash of what goes out (stories' content, the plan, subject, preheader)
    landing.py    how an edition landed: per edition and over 90 days, with the providers' alert levels
    charts.py     those figures drawn as accessible SVG on the server (title, desc, a table beside)

Below `edition` in the layers: it imports only `storage` and the shared modules, so `build`, the
scheduler, the preview and the desk all read the same plan. Nothing here is ever written into a story file.

Public face: the names in `__all__`.
"""

from __future__ import annotations

from .approval import (
    APPROVED,
    VOID,
    WAITING,
    Approval,
    ApprovalState,
    ApprovalStore,
    edition_hash,
    open_approvals,
)
from .audit import AuditEntry, AuditLog, export_entries, open_audit
from .charts import landing_charts, line, stacked_bars, table
from .landing import (
    BOUNCE_LIMIT,
    BOUNCE_REVIEW,
    COMPLAINT_GOAL,
    COMPLAINT_LIMIT,
    LANDING_DAYS,
    Alert,
    DayFigures,
    EditionFigures,
    Landing,
    alerts_for,
    attribute,
    landing,
)
from .plans import MAX_PREHEADER, MAX_SUBJECT, Plan, PlanStore, apply_plan, open_plans, plan_for
from .store import DESK_FILE, desk_path, open_desk

__all__ = [
    "APPROVED",
    "BOUNCE_LIMIT",
    "BOUNCE_REVIEW",
    "COMPLAINT_GOAL",
    "COMPLAINT_LIMIT",
    "DESK_FILE",
    "LANDING_DAYS",
    "MAX_PREHEADER",
    "MAX_SUBJECT",
    "VOID",
    "WAITING",
    "Alert",
    "Approval",
    "ApprovalState",
    "ApprovalStore",
    "AuditEntry",
    "AuditLog",
    "DayFigures",
    "EditionFigures",
    "Landing",
    "Plan",
    "PlanStore",
    "alerts_for",
    "apply_plan",
    "attribute",
    "desk_path",
    "edition_hash",
    "export_entries",
    "landing",
    "landing_charts",
    "line",
    "open_approvals",
    "open_audit",
    "open_desk",
    "open_plans",
    "plan_for",
    "stacked_bars",
    "table",
]
