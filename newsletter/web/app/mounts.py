"""Where other parts of the product add routes to the public app.

Each entry is a Starlette route (or `Mount`) built from the settings: for example the mail providers'
bounce and complaint webhooks. They sit behind the same Host allow-list, body size limit and security
headers as every other route, and before the static archive's catch-all, so their paths win.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from ...config import Settings


def extra_routes(settings: Settings) -> list[BaseRoute]:
    """The routes mounted beside unsubscribe and subscribe. Add a line here to mount more."""
    routes: list[BaseRoute] = []
    return routes
