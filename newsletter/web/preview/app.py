"""The preview web app (Starlette): editions rendered in memory, live reload over server-sent events.

Pages                                   what
/                                       the newest edition (the page `newsletter preview` prints)
/editions/                              every edition: date, stories, subject, size, last built
/editions/<date>/                       the HTML email in a frame: widths 320/375/600/full, dark mode
                                        (every edition page takes ?lang=fr for a language edition)
/editions/<date>/text                   the plain-text part
/editions/<date>/manifest               stories, window, sizes against Gmail's 102 KB clip, checks
/editions/<date>/web                    the archive's page of the edition, framed (web.html; photos: /site-images/)
/editions/<date>/email.html             the HTML itself (?scheme=dark|light: as a client in that mode shows it)
/editions/<date>/newsletter.eml|.txt    downloads; manifest.json; newsletter.mjml (for MJML's own tools)
/editions/<date>/send-test   POST       send the edition to one address (CSRF token)
/editions/<date>/write       POST       write the edition to the outbox, like `newsletter build` (CSRF)
/unsubscribe-link?address=   GET        a signed /u/<token> link for an address, to try the flow
/u/<token>                   GET/POST   the mailing stage's unsubscribe handler (RFC 8058)
/events                                 server-sent events: "change" after every rebuild

Every page is rendered by Jinja with autoescaping; story text, file names and error messages are data.

The handlers live in route modules, one per kind of page: pages.py (the HTML pages), downloads.py (an
edition's parts as files), forms.py (write, send a test, unsubscribe), live.py (events and the file
watches); context.py holds what they share. This module puts them together.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from . import downloads, forms, live, pages
from .context import Preview, preview_of
from .parts import dark_variant, has_dark_styles, scheme_variant, smtp_configured
from .security import HostGuard, SecurityHeaders, allowed_hosts
from .state import Previewer
from .webpage import site_routes


def create_app(
    previewer: Previewer,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    watch: bool = True,
    log: Callable[[str], None] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> Starlette:
    """The ASGI app for `previewer`, answering only to `host:port` under its loopback names.

    `on_ready` is called at startup once the file watches are in place.
    """
    hosts = allowed_hosts(host, port)
    preview = Preview(previewer, hosts, log or (lambda _line: None))
    routes: list[BaseRoute] = [
        *pages.routes,
        *downloads.routes,
        *forms.routes,
        *live.routes,
        Mount("/static", StaticFiles(packages=[("newsletter.web.preview", "static")]), name="static"),
        *site_routes(previewer),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders), Middleware(HostGuard, hosts=hosts)],
        exception_handlers={HTTPException: _http_error},
        lifespan=live.lifespan(preview, watch=watch, on_ready=on_ready),
    )
    app.state.preview = preview
    app.state.hub = preview.hub
    app.state.previewer = previewer
    app.state.csrf = preview.csrf
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = f"Error {exc.status_code}"
    return preview_of(request).page("message.html", exc.status_code, title=title, message=exc.detail)


__all__ = ["create_app", "dark_variant", "has_dark_styles", "scheme_variant", "smtp_configured"]
