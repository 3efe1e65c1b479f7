"""Where other parts of the product add routes to the public app.

Each entry is a Starlette route (or `Mount`) built from the settings: for example the mail providers'
bounce and complaint webhooks. They sit behind the same Host allow-list, body size limit and security
headers as every other route, and before the static archive's catch-all, so their paths win.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount

from ...config import Settings
from ..metrics import metrics_route
from ..webhooks import MAX_BODY as WEBHOOK_MAX_BODY
from ..webhooks import webhook_routes

# Request bodies some mounted routes accept beyond the app's `max_body_kb` (path prefix → bytes).
BODY_LIMITS: dict[str, int] = {"/webhooks/": WEBHOOK_MAX_BODY}


def extra_routes(settings: Settings) -> list[BaseRoute]:
    """The routes mounted beside unsubscribe and subscribe. Add a line here to mount more."""
    return [
        Mount("/webhooks", app=webhook_routes(settings)),  # bounce and complaint events (SES, Mailgun)
        metrics_route(settings),  # Prometheus scrapes, from allowed networks only (loopback by default)
    ]


def desk_mount(settings: Settings, secret: bytes) -> BaseRoute:
    """The editors' desk under /desk/ (`newsletter serve --desk`): its own sign-in, sessions and CSP."""
    from ..desk import create_desk  # only when asked for: argon2 and the desk's stores

    return Mount("/desk", app=create_desk(settings, secret))
