"""What a browser talks to.

In:  the settings and the edition pipeline; the delivery subsystem for unsubscribes and test sends; the
     bounces policy for provider events.
Out: HTTP pages and webhook answers.

    preview/   `newsletter preview`: the editors' local preview (loopback only), live reload, send test
    webhooks.py  bounce and complaint events from email services (Amazon SES via SNS, Mailgun), as a
               mountable Router feeding the `bounces` policy
    site/      the static web archive in `site/` (editions, stories, index, feed, sitemap)
    app/       `newsletter serve`: the public app (one-click unsubscribe, double opt-in subscribe)
    desk/      `newsletter serve --desk`: the editors' desk under /desk/ (accounts, sessions, the plan)
    security.py  Host allow-list, CSRF, security headers: shared by the preview and the public app
    metrics.py   the public app's request counter and its `/metrics` route (loopback, never proxied)

Public face: the names in `__all__`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app as create_public_app
    from .app import serve_public
    from .desk import DESK, AccountError, end_sessions, open_users
    from .preview.security import loopback_host
    from .preview.server import serve
    from .preview.state import Previewer
    from .site import publish_edition, rebuild_site, site_dir
    from .webhooks import create_app, webhook_routes

# Imported when first asked for: `newsletter build` writes the archive (site) and should not pay for the
# web servers (Starlette, uvicorn, the delivery and bounce stacks) it never starts.
_WHERE = {
    "AccountError": (".desk", "AccountError"),
    "DESK": (".desk", "DESK"),
    "end_sessions": (".desk", "end_sessions"),
    "open_users": (".desk", "open_users"),
    "Previewer": (".preview.state", "Previewer"),
    "create_app": (".webhooks", "create_app"),
    "create_public_app": (".app", "create_app"),
    "loopback_host": (".preview.security", "loopback_host"),
    "publish_edition": (".site", "publish_edition"),
    "rebuild_site": (".site", "rebuild_site"),
    "serve": (".preview.server", "serve"),
    "serve_public": (".app", "serve_public"),
    "site_dir": (".site", "site_dir"),
    "webhook_routes": (".webhooks", "webhook_routes"),
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _WHERE[name]
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value
    return value


__all__ = [
    "DESK",
    "AccountError",
    "Previewer",
    "create_app",
    "create_public_app",
    "end_sessions",
    "loopback_host",
    "open_users",
    "publish_edition",
    "rebuild_site",
    "serve",
    "serve_public",
    "site_dir",
    "webhook_routes",
]
