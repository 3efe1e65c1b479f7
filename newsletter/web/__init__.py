"""What a browser talks to.

In:  the settings and the edition pipeline; the delivery subsystem for unsubscribes and test sends; the
     bounces policy for provider events.
Out: HTTP pages and webhook answers.

    preview/   `newsletter preview`: the editors' local preview (loopback only), live reload, send test
    webhooks.py  bounce and complaint events from email services (Amazon SES via SNS, Mailgun), as a
               mountable Router feeding the `bounces` policy

Public face: the names in `__all__`.
"""

from __future__ import annotations

from .preview.security import loopback_host
from .preview.server import serve
from .preview.state import Previewer
from .webhooks import create_app, webhook_routes

__all__ = ["Previewer", "create_app", "loopback_host", "serve", "webhook_routes"]
