"""The desk as a Starlette app, mounted under `/desk/` of the public app by `newsletter serve --desk`.

Route                         what                                           module
GET/POST /desk/login          the sign-in form                               login.py
POST /desk/logout             sign out (this session)                        login.py
GET  /desk/static/desk.css    the desk's styles                              here
every page of `desk_pages`    behind the guard (auth.py)                     PAGE_MODULES (registry.py)

The public app's guards stand in front (Host allow-list, body limit, request shape, security headers);
the desk's pages set a CSP of their own that runs no script at all.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from ...config import Settings
from . import login
from .auth import guarded
from .context import DeskContext
from .registry import PAGE_MODULES, desk_pages

STATIC = Path(__file__).resolve().parent / "static"


def _stylesheet(_request: Request) -> Response:
    return FileResponse(STATIC / "desk.css", media_type="text/css", headers={"Cache-Control": "public, max-age=300"})


def create_desk(settings: Settings, secret: bytes) -> Starlette:
    """The desk for `settings`; `secret` signs the sign-in form's token (the public app's secret).
    A bad `[desk]` table or an unreadable store raises here, before the server listens."""
    for module in PAGE_MODULES:
        importlib.import_module(module)
    pages = list(desk_pages)
    ctx = DeskContext.from_settings(settings, secret)
    routes: list[BaseRoute] = [
        *login.routes,
        Route("/static/desk.css", _stylesheet),
        *(Route(p.path, guarded(p, pages), methods=list(p.methods)) for p in pages),
    ]
    app = Starlette(routes=routes)
    app.state.desk = ctx
    return app
