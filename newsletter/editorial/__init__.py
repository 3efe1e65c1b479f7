"""Records editors make about an edition, below `edition` in the layers: it imports only `storage` and the
shared root modules; `edition`, `schedule`, `web` and the CLI use it.

In:  an editor's or operator's decision (an approval of an exact edition), and figures already recorded
     by the other subsystems (ledgers, suppression list, bounce records, subscribers).
Out: the decision kept in `data/desk.sqlite` (or PostgreSQL), and pure views of the figures.

    approval.py   ApprovalStore: who approved which exact edition (a content hash), and when;
                  edition_hash: the hash of what goes out (stories' content, the plan, subject, preheader)
    landing.py    how an edition landed: per edition and over 90 days, with the providers' alert levels
    charts.py     those figures drawn as accessible SVG on the server (title, desc, a table beside)

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
    desk_path,
    edition_hash,
    open_approvals,
)
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

__all__ = [
    "APPROVED",
    "BOUNCE_LIMIT",
    "BOUNCE_REVIEW",
    "COMPLAINT_GOAL",
    "COMPLAINT_LIMIT",
    "LANDING_DAYS",
    "VOID",
    "WAITING",
    "Alert",
    "Approval",
    "ApprovalState",
    "ApprovalStore",
    "DayFigures",
    "EditionFigures",
    "Landing",
    "alerts_for",
    "attribute",
    "desk_path",
    "edition_hash",
    "landing",
    "landing_charts",
    "line",
    "open_approvals",
    "stacked_bars",
    "table",
]
