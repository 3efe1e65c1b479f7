"""The desk's own pages besides the editions: the audit log, and the signed-in person's language."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from .auth import N_
from .context import LANGUAGES, Desk
from .registry import desk_page

PAGE = 50
# The families of actions the audit page filters by (an action's name up to its first dot).
FAMILIES = (
    ("", N_("All actions")),
    ("login", N_("Sign-ins")),
    ("login.", N_("Refused or limited sign-ins")),
    ("plan.", N_("Changes to editions")),
    ("user.", N_("Changes to users")),
)


@desk_page("/audit", nav=N_("Audit log"), order=80)
async def audit_page(desk: Desk) -> Response:
    """`/desk/audit`: the newest entries first, `?before=<id>` for older ones, `?action=plan.` to filter."""
    raw = desk.request.query_params.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) < 19 else None
    action = desk.request.query_params.get("action", "")[:50]
    entries = await run_in_threadpool(lambda: desk.ctx.audit.entries(limit=PAGE + 1, before=before, action=action))
    older = entries[PAGE].id + 1 if len(entries) > PAGE else None
    families = [(value, desk._(label)) for value, label in FAMILIES]
    if action and action not in dict(FAMILIES):
        families.append((action, action))
    return desk.page("audit.html", entries=entries[:PAGE], older=older, action=action, families=families)


@desk_page("/language", methods=("POST",))
def set_language(desk: Desk) -> Response:
    """The desk's language for the signed-in person (kept on their account)."""
    lang = desk.field("language", 10)
    if lang not in (*LANGUAGES, ""):
        return desk.message(400, desk._("Unknown language"), desk._("Choose a language from the list."))
    desk.ctx.users.set_language(desk.user.name, lang)
    desk.audit("user.language", desk.user.name, {"language": lang})
    back = desk.field("back", 300)
    return desk.redirect(back[len("/desk") :] if back.startswith("/desk/") else "/")
