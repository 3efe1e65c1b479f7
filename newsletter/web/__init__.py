"""What a browser talks to.

In:  the settings and the edition pipeline; the delivery subsystem for unsubscribes and test sends; the
     bounces policy for provider events.
Out: HTTP pages and webhook answers.

    preview/   `newsletter preview`: the editors' local preview (loopback only), live reload, send test
    webhooks.py  bounce and complaint events from email services (Amazon SES via SNS, Mailgun), as a
               mountable Router feeding the `bounces` policy
    site/      the static web archive in `site/` (editions, stories, index, feed, sitemap)
    app/       `newsletter serve`: the public app (one-click unsubscribe, double opt-in subscribe)
    security.py  Host allow-list, CSRF, security headers: shared by the preview and the public app

Public face: the names in `__all__`.
"""

from __future__ import annotations

from .app import create_app as create_public_app
from .app import serve_public
from .preview.security import loopback_host
from .preview.server import serve
from .preview.state import Previewer
from .site import publish_edition, rebuild_site, site_dir
from .webhooks import create_app, webhook_routes

__all__ = [
    "Previewer",
    "create_app",
    "create_public_app",
    "loopback_host",
    "publish_edition",
    "rebuild_site",
    "serve",
    "serve_public",
    "site_dir",
    "webhook_routes",
]
