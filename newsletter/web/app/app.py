"""The public web app (Starlette), meant to run behind nginx or Caddy. Nothing of the preview is here.

Route                       what                                                  module
GET  /healthz               "ok" when the subscriber store answers (no Host check) files.py
POST /u/<token>             RFC 8058 one-click unsubscribe                        unsubscribe.py
GET  /u/<token>             a confirmation page whose button makes that POST      unsubscribe.py
GET  /subscribe             the sign-up form                                      signup.py
POST /subscribe             → 303 /subscribe/sent, the same for every address     signup.py
GET  /confirm/<token>       a page with a button; changes nothing                 signup.py
POST /confirm/<token>       confirms, with a consent record                       signup.py
GET  /manage/<token>        the reader's data and choices; changes nothing        manage.py
POST /manage/<token>        language, time zone, pause, unsubscribe (form token)  manage.py
GET  /assets/site.css       the pages' styles                                     files.py
POST /webhooks/ses|mailgun  bounce and complaint events                           mounts.py → web/webhooks.py
/desk/…                     with `desk`: the editors' desk, behind a sign-in       mounts.py → web/desk/
GET  /<anything else>       with `site`: the static archive, else 404             files.py

In front of every route (guards.py, security.py): requests of a shape no browser sends (two Host
headers, another host's absolute URL, a control character in the path) are a 400; a Host not allowed is
a 403; a body over `max_body_kb` a 413, one slower than `client_timeout` a 408; every answer carries the
security headers, and the CSP allows no script at all.

Tokens: unsubscribe 400 malformed / 403 forged; confirmation 400 / 403 / 410 expired. Forms carry a
signed, expiring CSRF token, or (the embeddable sign-up form on the archive's pages) come from an
allowed Origin.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from ...config import Settings
from ..metrics import METRICS_PATH, RequestMetrics
from ..security import HostGuard, SecurityHeaders
from . import files, manage, signup, unsubscribe
from .context import AppContext
from .guards import BodyLimit, RequestShape
from .mounts import BODY_LIMITS, desk_mount, extra_routes


def _csp(settings: Settings) -> str:
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.base_url))
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
        f"form-action 'self' {origin}; base-uri 'none'; frame-ancestors 'none'"
    )


def create_app(
    settings: Settings, *, site: Path | None = None, extra: list[BaseRoute] | None = None, desk: bool = False
) -> Starlette:
    """The public app for `settings`. `site`: a folder to serve as the static archive too; `desk`: the
    editors' desk under /desk/ (mounts.py).

    Needs `NEWSLETTER_UNSUBSCRIBE_SECRET` (it checks unsubscribe links and signs confirmation and form
    tokens); raises `ConfigError` at once when it or a `[web]` setting is missing or wrong.
    """
    ctx = AppContext.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        ctx.queue.start(signup.ConfirmationSender(ctx))  # sends what an earlier run left waiting, too
        try:
            yield
        finally:
            ctx.close()

    routes: list[BaseRoute] = [
        *files.routes(settings),
        *unsubscribe.routes,
        *manage.routes,
        *signup.routes,
        *(extra if extra is not None else extra_routes(settings)),
        *([desk_mount(settings, ctx.secret)] if desk else []),
        files.fallback(settings, site),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestMetrics),
            Middleware(SecurityHeaders, csp=_csp(settings)),
            Middleware(RequestShape),
            Middleware(HostGuard, hosts=ctx.options.hosts, any_port=True, exempt=("/healthz", METRICS_PATH)),
            Middleware(BodyLimit, limit=ctx.options.max_body, prefixes=BODY_LIMITS, timeout=ctx.options.client_timeout),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = ctx.store
    app.state.ctx = ctx
    return app
