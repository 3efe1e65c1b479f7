"""`/desk/users` (administrators): the accounts, adding one, changing a role, disabling or enabling one.

The same as `newsletter desk add-user`, in the browser. An administrator cannot demote or disable the
last active administrator (nobody could manage users any more), and every change is in the audit log.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from .accounts import ROLES, AccountError
from .auth import N_
from .context import Desk
from .registry import desk_page


@desk_page("/users", nav=N_("Users"), role="admin", order=90)
def users_page(desk: Desk) -> Response:
    return desk.page(
        "users.html", users=desk.ctx.users.users(), roles=ROLES, error="", minimum=desk.ctx.options.min_password
    )


@desk_page("/users", methods=("POST",), role="admin")
async def add_user(desk: Desk) -> Response:
    name, role, password = desk.field("name", 100), desk.field("role", 20), desk.field("password", 1100)
    try:
        new = await run_in_threadpool(desk.ctx.users.add, name, role, password, minimum=desk.ctx.options.min_password)
    except AccountError as exc:
        users = desk.ctx.users.users()
        return desk.page(
            "users.html", 400, users=users, roles=ROLES, error=str(exc), minimum=desk.ctx.options.min_password
        )
    clean = name.strip().lower()
    if not new:
        desk.ctx.sessions.end_all(clean)  # a new password: sessions made with the old one end
    desk.audit("user.add" if new else "user.password", clean, {"role": role})
    return desk.redirect("/users")


@desk_page("/users/{name}", methods=("POST",), role="admin")
def change_user(desk: Desk) -> Response:
    name = str(desk.request.path_params["name"])[:64]
    target = desk.ctx.users.get(name)
    if target is None:
        return desk.message(404, desk._("No such user"), name)
    role, active = desk.field("role", 20), desk.field("active", 5)
    last_admin = target.role == "admin" and target.active and desk.ctx.users.admins() <= 1
    if last_admin and (role not in ("", "admin") or active == "0"):
        return desk.message(409, desk._("Not changed"), desk._("The last administrator stays an active administrator."))
    if role in ROLES and role != target.role:
        desk.ctx.users.set_role(target.name, role)
        desk.audit("user.role", target.name, {"from": target.role, "to": role})
    if active in ("0", "1") and (active == "1") != target.active:
        desk.ctx.users.set_active(target.name, active == "1")
        if active == "0":
            desk.ctx.sessions.end_all(target.name)
        desk.audit("user.enable" if active == "1" else "user.disable", target.name)
    return desk.redirect("/users")
