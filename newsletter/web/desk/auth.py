"""Who is signed in: the session cookie, the trusted single sign-on header, sign-in and sign-out, and the
guard in front of every desk page.

- Sign-in (`POST /desk/login`): the form carries a signed token and must come from our own origin; the
  rate limit is checked before the password (limits.py); a success makes a NEW session (the cookie a
  visitor had before is ended, never promoted) and records `login` in the audit log, a failure
  `login.refused` (the name as typed, never the password).
- The cookie: HttpOnly, SameSite=Strict, Path=/desk, Secure when the request came over HTTPS.
- Single sign-on: with `[desk] trusted_header`, a request whose *direct* peer is one of
  `trusted_proxies` may name an existing, active user in that header; from any other address the header
  is ignored (and the sign-in form is what the visitor gets).
- The guard: no session → 303 to the sign-in page (a POST: 403); a role too low → 403; a POST without
  this session's CSRF token, or from another origin → 403, before the handler runs.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..security import host_name
from .accounts import User
from .context import COOKIE, PREFIX, Desk, DeskContext, context_of
from .registry import DeskPage
from .sessions import Session


def N_(message: str) -> str:
    """Marks a string for the catalogues; translated where it is shown."""
    return message


PEER_KEY = "newsletter.peer"  # the connection's own peer, kept before proxy headers rewrite `client` (protocol.py)


def peer_address(request: Request) -> str:
    peer = request.scope.get(PEER_KEY) or request.scope.get("client")
    return str(peer[0]) if peer else ""


def set_cookie(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE, value, max_age=max_age, path=PREFIX, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def same_origin(request: Request) -> bool:
    """No Origin header (an older browser), or one naming the host this request was sent to."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin != "null" and host_name(urlsplit(origin).netloc) == host_name(request.headers.get("host", ""))


def _sso_name(ctx: DeskContext, request: Request) -> str:
    header = ctx.options.trusted_header
    if not header or not ctx.options.proxy_trusted(peer_address(request)):
        return ""
    return request.headers.get(header, "").strip().lower()[:64]


def signed_in(ctx: DeskContext, request: Request) -> tuple[User, Session, str] | None:
    """(user, session, a new cookie value or "") for this request, or None: nobody is signed in."""
    cookie = request.cookies.get(COOKIE, "")
    session = ctx.sessions.get(cookie) if cookie else None
    sso = _sso_name(ctx, request)
    if sso and (session is None or session.user != sso):
        user = ctx.users.get(sso)
        if user is None or not user.active:
            return None
        cookie, session = ctx.sessions.create(user.name, via="header")
        ctx.audit.record(user.name, "login", user.name, {"via": "header"}, newsletter=ctx.newsletter)
        return user, session, cookie
    if session is None:
        return None
    user = ctx.users.get(session.user)
    if user is None or not user.active:
        ctx.sessions.end(cookie)
        return None
    return user, session, ""


def _nav(ctx: DeskContext, user: User, lang: str, pages: list[DeskPage]) -> list[tuple[str, str]]:
    texts = ctx.gettext(lang)
    shown = sorted((p for p in pages if p.nav and "{" not in p.path and user.can(p.role)), key=lambda p: p.order)
    return [(PREFIX + p.path, texts(p.nav)) for p in shown]


def guarded(page: DeskPage, pages: list[DeskPage]) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint for a registered page: the checks of the module docstring, then its handler."""

    async def endpoint(request: Request) -> Response:
        ctx = context_of(request)
        found = await run_in_threadpool(signed_in, ctx, request)
        if found is None:
            if request.method in ("GET", "HEAD"):
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="/")
                return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303)
            return _refused(ctx, request, N_("Sign in first."))
        user, session, new_cookie = found
        lang = ctx.language_for(request, user)
        desk = Desk(ctx, request, user, session, lang, nav=_nav(ctx, user, lang, pages))
        if not user.can(page.role):
            return desk.message(403, desk._("Not allowed"), desk._("This page is for administrators."))
        if request.method not in ("GET", "HEAD"):
            desk.form = await request.form(max_files=0, max_fields=200, max_part_size=64 * 1024)
            token = desk.form.get("csrf")
            if not (isinstance(token, str) and hmac.compare_digest(token, session.csrf) and same_origin(request)):
                return desk.message(403, desk._("Refused"), desk._("This form is out of date; reload the page."))
        result = page.handler(desk)
        response = await result if inspect.isawaitable(result) else result
        if new_cookie:
            set_cookie(response, request, new_cookie, int(session.expires_at - session.created_at))
        return response

    return endpoint


def _refused(ctx: DeskContext, request: Request, why: str) -> Response:
    lang = ctx.language_for(request)
    texts = ctx.gettext(lang)
    return ctx.render(lang, "login.html", 403, error=texts(why), csrf=ctx.login_csrf.issue(), name="", next="")
