"""The sign-in form and sign-out: `GET/POST /desk/login`, `POST /desk/logout` (see auth.py)."""

from __future__ import annotations

import hmac

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .auth import N_, same_origin, set_cookie, signed_in
from .context import COOKIE, PREFIX, DeskContext, context_of


def _next(raw: object) -> str:
    """Where to go after signing in: a desk path only (never another site: no open redirect)."""
    value = raw if isinstance(raw, str) else ""
    ok = value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value and len(value) < 500
    return value if ok and all(c.isprintable() for c in value) else PREFIX + "/"


def _form(ctx: DeskContext, request: Request, status: int, error: str, name: str = "", target: str = "") -> Response:
    lang = ctx.language_for(request)
    texts = ctx.gettext(lang)
    return ctx.render(
        lang, "login.html", status, error=texts(error) if error else "", csrf=ctx.login_csrf.issue(),
        name=name, next=target or _next(request.query_params.get("next")),
    )  # fmt: skip


async def login_form(request: Request) -> Response:
    ctx = context_of(request)
    if await run_in_threadpool(signed_in, ctx, request) is not None:
        return RedirectResponse(_next(request.query_params.get("next")), status_code=303)
    return _form(ctx, request, 200, "")


async def login(request: Request) -> Response:
    ctx = context_of(request)
    form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    name = str(form.get("name", ""))[:64].strip().lower()
    target = _next(form.get("next"))
    if not (ctx.login_csrf.valid(form.get("csrf")) and same_origin(request)):
        return _form(ctx, request, 403, N_("This form is out of date; reload the page."), name, target)
    # The visitor's address (behind a trusted proxy, the one it names), not the proxy's: see auth.py.
    address = request.client.host if request.client else ""
    keys = (f"user:{name}", f"addr:{address}")
    wait = ctx.limits.wait(*keys)
    if wait > 0:
        ctx.audit.record(name or "-", "login.limited", name, {"wait": int(wait)}, newsletter=ctx.newsletter)
        response = _form(ctx, request, 429, N_("Too many failed sign-ins. Wait a few minutes and try again."), name)
        response.headers["Retry-After"] = str(int(wait + 0.999))
        return response
    password = form.get("password", "")
    user = await run_in_threadpool(ctx.users.verify, name, password if isinstance(password, str) else "")
    if user is None:
        ctx.limits.failed(*keys)
        ctx.audit.record(name or "-", "login.refused", name, newsletter=ctx.newsletter)
        return _form(ctx, request, 401, N_("Wrong name or password."), name, target)
    ctx.limits.forget(keys[0])
    old = request.cookies.get(COOKIE, "")
    if old:
        ctx.sessions.end(old)  # whatever id the browser carried in is dead from now on
    cookie, session = ctx.sessions.create(user.name)
    ctx.audit.record(user.name, "login", user.name, {"via": "password"}, newsletter=ctx.newsletter)
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, request, cookie, int(session.expires_at - session.created_at))
    return response


async def logout(request: Request) -> Response:
    ctx = context_of(request)
    form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    cookie = request.cookies.get(COOKIE, "")
    found = ctx.sessions.get(cookie) if cookie else None
    token = form.get("csrf")
    if found is None or not (isinstance(token, str) and hmac.compare_digest(token, found.csrf)):
        return _form(ctx, request, 403, N_("This form is out of date; reload the page."))
    ctx.sessions.end(cookie)
    ctx.audit.record(found.user, "logout", found.user, newsletter=ctx.newsletter)
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


routes = [
    Route("/login", login_form, methods=["GET", "HEAD"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
