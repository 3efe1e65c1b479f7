"""What editors decide, kept as records: the edition's plan and the log of every desk action.

In:  the settings (which store: `data/desk.sqlite`, or PostgreSQL with `database_url`), editors' choices.
Out: `Plan` (the order, the pinned lead, the stories left out, the subject and preheader of one
     newsletter's edition in one language, with who and when) and `apply_plan`, which the edition
     pipeline calls on the ranked stories; `AuditLog` (who did what, when), exportable as CSV or JSON lines.

    store.py   where the desk's records live: `open_desk` (one SQLite file, or the PostgreSQL database)
    plans.py   `PlanStore`, `Plan`, `apply_plan`
    audit.py   `AuditLog`, `AuditEntry`, `export_entries`

Below `edition` in the layers: it imports only `storage` and the shared modules, so `build`, the
scheduler, the preview and the desk all read the same plan. Nothing here is ever written into a story file.

Public face: the names in `__all__`.
"""

from __future__ import annotations

from .audit import AuditEntry, AuditLog, export_entries, open_audit
from .plans import MAX_PREHEADER, MAX_SUBJECT, Plan, PlanStore, apply_plan, open_plans, plan_for
from .store import DESK_FILE, desk_path, open_desk

__all__ = [
    "DESK_FILE",
    "MAX_PREHEADER",
    "MAX_SUBJECT",
    "AuditEntry",
    "AuditLog",
    "Plan",
    "PlanStore",
    "apply_plan",
    "desk_path",
    "export_entries",
    "open_audit",
    "open_desk",
    "open_plans",
    "plan_for",
]
