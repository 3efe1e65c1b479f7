"""The public web app (Starlette), meant to run behind nginx or Caddy. Nothing of the preview is here.

Route                       what
GET  /healthz               "ok" when the subscriber store answers (exempt from the Host check)
POST /u/<token>             RFC 8058 one-click: `List-Unsubscribe=One-Click` → suppression list; no
                            cookie or form token needed (a form token, when sent, must be genuine)
GET  /u/<token>             a confirmation page whose button makes that POST; changes nothing
GET  /subscribe             the sign-up form
POST /subscribe             → 303 /subscribe/sent, the same for every address (no enumeration); sends
                            the confirmation email after the answer, unless already confirmed
GET  /confirm/<token>       a page with a button; changes nothing (link scanners follow GETs)
POST /confirm/<token>       confirms, with a consent record (time, form, keyed hash of the IP)
GET  /assets/site.css       the pages' styles
POST /webhooks/ses|mailgun   bounce and complaint events (`newsletter/web/webhooks.py`, via `mounts.py`)
GET  /<anything else>       with `site`: the static archive (`<path>`, then `<path>/index.html`), else 404

Tokens: unsubscribe 400 malformed / 403 forged; confirmation 400 / 403 / 410 expired. Forms carry a
signed, expiring CSRF token, or (the embeddable sign-up form on the archive's pages) come from an
allowed Origin. Every answer carries the security headers; the CSP allows no script at all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ... import metrics
from ...config import Settings
from ...delivery import (
    ForgedTokenError,
    MalformedTokenError,
    check_address,
    clean_name,
    open_suppression,
    secret_from_env,
    subscriber_store,
    verify_token,
)
from ...edition import translations
from ...storage import Consent, now_iso
from ..metrics import METRICS_PATH, RequestMetrics
from ..security import HostGuard, SecurityHeaders, SignedCsrf, host_name
from ..site import page_environment, site_context, stylesheet
from ..site.model import base_path
from . import mail, tokens
from .language import pick_language
from .limits import SlidingWindow
from .mounts import BODY_LIMITS, extra_routes
from .options import WebOptions

_NAME_MAX = 100
_TAGS = re.compile(r"<[^>]*>")


def _clean_form_name(raw: str) -> str:
    """A name typed into a public form: no markup, no control or bidi characters, one line, 100 chars."""
    return clean_name(_TAGS.sub("", raw).replace("<", "").replace(">", ""))[:_NAME_MAX].strip()


def _csp(settings: Settings) -> str:
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.base_url))
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
        f"form-action 'self' {origin}; base-uri 'none'; frame-ancestors 'none'"
    )


class BodyLimit:
    """413 for a request body over `limit` bytes, declared or streamed; the body is read before the app
    sees it (it is small by construction), so a slow or endless upload never reaches a handler."""

    def __init__(self, app: ASGIApp, limit: int, prefixes: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = limit
        self.prefixes = prefixes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = next((n for p, n in self.prefixes.items() if scope["path"].startswith(p)), self.default)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        too_big = declared.isdigit() and int(declared) > limit
        chunks: list[bytes] = []
        size = 0
        while not too_big:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            too_big = size > limit
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if too_big:
            await PlainTextResponse("Request body too large.\n", 413, headers={"Connection": "close"})(
                scope, receive, send
            )
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def create_app(settings: Settings, *, site: Path | None = None, extra: list[BaseRoute] | None = None) -> Starlette:
    """The public app for `settings`. `site`: a folder to serve as the static archive too.

    Needs `NEWSLETTER_UNSUBSCRIBE_SECRET` (it checks unsubscribe links and signs confirmation and form
    tokens); raises `ConfigError` at once when it or a `[web]` setting is missing or wrong.
    """
    options = WebOptions.from_settings(settings)
    secret = secret_from_env()
    csrf = SignedCsrf(secret)
    store = subscriber_store(settings)
    suppression = open_suppression(settings)  # SQLite, or PostgreSQL with database_url
    per_ip = SlidingWindow(options.per_ip, options.window)
    per_address = SlidingWindow(options.per_address, options.window)
    # Every page and confirmation email exists in each language edition, made once at start-up.
    editions = {lang: settings.for_language(lang) for lang in settings.languages}
    mailers = {lang: mail.ConfirmationMailer(s, options.confirm_hours) for lang, s in editions.items()}
    loader = jinja2.ChoiceLoader(
        [jinja2.PackageLoader("newsletter.web.app", "templates"), jinja2.PackageLoader("newsletter.web.site")]
    )
    envs = {lang: page_environment(loader, s.locale) for lang, s in editions.items()}
    texts = {lang: translations(s.locale).gettext for lang, s in editions.items()}
    site_infos = {lang: site_context(s, assets="/assets/") for lang, s in editions.items()}
    base = settings.base_url.rstrip("/")
    host_names = frozenset(host_name(h) for h in options.hosts)
    page_defaults = {"canonical": None, "description": "", "image": "", "noindex": True}

    def language_of(request: Request, form: FormData | None = None) -> str:
        form_lang = form.get("lang") if form is not None else None
        return pick_language(
            settings, request.query_params.get("lang"), str(form_lang or ""), request.headers.get("accept-language")
        )

    def with_lang(path: str, lang: str) -> str:
        """`path` for a page in `lang`: the default language needs no parameter."""
        return path if lang == settings.languages[0] else f"{path}?lang={lang}"

    def page(template: str, lang: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = envs[lang].get_template(template).render(site=site_infos[lang], **{**page_defaults, **context})
        return HTMLResponse(html, status, headers={"Cache-Control": "no-store", "Content-Language": lang})

    def message(lang: str, status: int, heading: str, *lines: str, **context: Any) -> HTMLResponse:
        context.setdefault("action", "")
        context.setdefault("fields", [])
        context.setdefault("home", True)
        return page("message.html", lang, status, heading=heading, lines=lines, csrf=csrf.issue(), **context)

    def client_ip(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def origin_ok(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return True
        return origin != "null" and host_name(urlsplit(origin).netloc) in host_names

    async def form_of(request: Request) -> FormData:
        return await request.form(max_files=0, max_fields=20, max_part_size=options.max_body)

    # --- health ----------------------------------------------------------------------------------------

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(store.get, "healthz@healthz.invalid")
        except Exception as exc:  # the probe reports any failure, it does not crash
            return PlainTextResponse(f"store unavailable: {type(exc).__name__}\n", 503)
        return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})

    # --- unsubscribe (RFC 8058) ------------------------------------------------------------------------

    async def unsubscribe(request: Request) -> Response:
        if request.method not in ("GET", "HEAD", "POST"):
            return PlainTextResponse("Method not allowed.\n", 405, headers={"Allow": "GET, HEAD, POST"})
        lang = language_of(request)
        _ = texts[lang]
        try:
            address = verify_token(secret, settings.list.id, request.path_params["token"])
        except MalformedTokenError:
            return message(
                lang, 400, _("Link not recognised"), _("This unsubscribe link is incomplete; please use the full link.")
            )
        except ForgedTokenError:
            return message(lang, 403, _("Link not valid"), _("This unsubscribe link is not valid for this newsletter."))
        if request.method != "POST":
            # The same page whether or not the address is still subscribed; the button POSTs.
            return message(
                lang,
                200,
                _("Unsubscribe?"),
                _("Stop sending %(title)s to %(address)s? Press the button to confirm.")
                % {"title": settings.title, "address": address},
                action=_("Unsubscribe"),
                fields=[("List-Unsubscribe", "One-Click")],
                home=False,
            )
        form = await form_of(request)
        if "csrf" in form and not (csrf.valid(form.get("csrf")) and origin_ok(request)):
            return message(
                lang, 403, _("Refused"), _("This form is out of date or came from another site; open the link again.")
            )
        if form.get("List-Unsubscribe") != "One-Click":
            return message(lang, 400, _("Bad request"), _("Expected the form field List-Unsubscribe=One-Click."))

        def record() -> None:
            suppression.add(address, "unsubscribed", f"one-click {settings.list.id}")
            store.set_status(address, "unsubscribed")
            metrics.public_event("unsubscribe", settings.list.id)

        await run_in_threadpool(record)
        return message(
            lang,
            200,
            _("Unsubscribed"),
            _("%(address)s will receive no more emails from %(title)s.")
            % {"address": address, "title": settings.title},
        )

    # --- subscribe (double opt-in) ---------------------------------------------------------------------

    def subscribe_form(request: Request) -> Response:
        lang = language_of(request)
        canonical = base + with_lang("/subscribe", lang)
        return page("subscribe.html", lang, csrf=csrf.issue(), error="", email="", name="", canonical=canonical)

    async def subscribe(request: Request) -> Response:
        form = await form_of(request)
        lang = language_of(request, form)
        _ = texts[lang]
        token_ok = csrf.valid(form.get("csrf"))
        # The form on the archive's static pages carries no token: its Origin must then be ours.
        if not origin_ok(request) or not (token_ok or request.headers.get("origin")):
            return message(lang, 403, _("Refused"), _("This form came from another site or is out of date; reload it."))
        done = RedirectResponse(with_lang("/subscribe/sent", lang), status_code=303)
        if str(form.get("website", "")).strip():
            return done  # the honeypot: a bot filled the field people cannot see; answer as usual
        raw, name = str(form.get("email", "")), _clean_form_name(str(form.get("name", "")))
        try:
            address = check_address(raw[:320])
        except ValueError:
            error = _("Please enter a valid email address.")
            return page("subscribe.html", lang, 400, csrf=csrf.issue(), error=error, email=raw[:320], name=name)
        for window, key in ((per_ip, client_ip(request)), (per_address, address.lower())):
            wait = window.hit(key)
            if wait is not None:
                response = message(lang, 429, _("Too many requests"), _("Please wait a while and try again."))
                response.headers["Retry-After"] = str(int(wait + 0.999))
                return response
        source = str(form.get("form", "subscribe"))[:200]
        if source != "subscribe" and not source.startswith(base + "/"):
            source = "subscribe"

        def request_and_mail() -> None:
            record = store.request(address, name=name)
            metrics.public_event("signup", settings.list.id)
            if record.status == "confirmed" and address not in suppression:
                return  # already getting it: nothing to confirm, and the answer was the same
            token = tokens.make_confirm_token(secret, settings.list.id, address, source, options.confirm_hours)
            url = base + with_lang(f"/confirm/{token}", lang)  # the confirmation page in the sign-up's language
            data = mailers[lang].message(address, record.name or name, url)
            sent = mail.send_confirmation(editions[lang], address, data)  # outbox: that edition's folder
            metrics.public_event("confirmation_email", settings.list.id, "sent" if sent.sent else "failed")

        # After the answer, so a new address takes no longer to answer than a known one.
        done.background = BackgroundTask(run_in_threadpool, request_and_mail)
        return done

    def subscribe_sent(request: Request) -> Response:
        lang = language_of(request)
        _ = texts[lang]
        return message(
            lang,
            200,
            _("Check your inbox"),
            _("If the address can receive it, an email with a confirmation link is on its way."),
            _("Open it and press the button to start receiving the newsletter. Nothing is sent until you do."),
        )

    # --- confirm ---------------------------------------------------------------------------------------

    async def confirm(request: Request) -> Response:
        lang = language_of(request)
        _ = texts[lang]
        try:
            found = tokens.read_confirm_token(secret, settings.list.id, request.path_params["token"])
        except tokens.ConfirmTokenError as exc:
            why = {
                400: _("Malformed confirmation link."),
                403: _("This confirmation link is not valid for this newsletter."),
                410: _("This confirmation link has expired."),
            }
            lines = {410: _("Subscribe again to get a new link."), 403: _("Use the link from the email.")}
            return message(
                lang, exc.status, _("Link not valid"), why.get(exc.status, str(exc)), lines.get(exc.status, "")
            )
        if request.method != "POST":
            return message(
                lang,
                200,
                _("Confirm your subscription"),
                _("Press the button to receive %(title)s at %(address)s.")
                % {"title": settings.title, "address": found.address},
                action=_("Confirm my subscription"),
                home=False,
            )
        form = await form_of(request)
        if not (csrf.valid(form.get("csrf")) and origin_ok(request)):
            return message(
                lang, 403, _("Refused"), _("This form is out of date or came from another site; open the link again.")
            )
        consent = Consent(at=now_iso(), form=found.form, ip_hash=tokens.ip_hash(secret, client_ip(request)))

        def record() -> None:
            store.confirm(found.address, consent)
            suppression.remove(found.address)  # a new, confirmed request outranks an old unsubscribe
            metrics.public_event("confirm", settings.list.id)

        await run_in_threadpool(record)
        return message(
            lang,
            200,
            _("You are subscribed"),
            _("%(address)s will receive %(title)s from tomorrow.")
            % {"address": found.address, "title": settings.title},
        )

    # --- files -----------------------------------------------------------------------------------------

    css_text = stylesheet(settings)

    def css(request: Request) -> Response:
        return Response(css_text, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    prefix = base_path(settings)

    def static(request: Request) -> Response:
        assert site is not None
        rel = request.url.path.removeprefix(prefix).strip("/")
        root = site.resolve()
        for candidate in (root / rel, root / rel / "index.html"):
            try:
                path = candidate.resolve()
            except (OSError, RuntimeError):
                continue
            if path.is_file() and path.is_relative_to(root) and not any(p.startswith(".") for p in path.parts):
                return FileResponse(path)
        first = rel.split("/", 1)[0]
        missing = root / first / "404.html" if first in settings.languages else root / "404.html"
        if not missing.is_file():
            missing = root / "404.html"
        if missing.is_file():
            return FileResponse(missing, status_code=404, media_type="text/html")
        return PlainTextResponse("Not found.\n", 404)

    def not_found(request: Request) -> Response:
        lang = language_of(request)
        _ = texts[lang]
        return message(lang, 404, _("Page not found"), _("There is nothing at this address."))

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/u/{token}", unsubscribe, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/subscribe", subscribe_form, methods=["GET", "HEAD"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/subscribe/sent", subscribe_sent, methods=["GET", "HEAD"]),
        Route("/confirm/{token}", confirm, methods=["GET", "HEAD", "POST"]),
        Route("/assets/site.css", css, methods=["GET", "HEAD"]),
        *(extra if extra is not None else extra_routes(settings)),
        Route("/{path:path}", static if site is not None else not_found, methods=["GET", "HEAD"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestMetrics),
            Middleware(SecurityHeaders, csp=_csp(settings)),
            Middleware(HostGuard, hosts=options.hosts, any_port=True, exempt=("/healthz", METRICS_PATH)),
            Middleware(BodyLimit, limit=options.max_body, prefixes=BODY_LIMITS),
        ],
    )
    app.state.settings = settings
    app.state.store = store
    return app
