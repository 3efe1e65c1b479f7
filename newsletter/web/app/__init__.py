"""`newsletter serve`: the public web app (one-click unsubscribe, double opt-in, optionally the archive).

    app.py      the Starlette app and its routes
    options.py  `[web]` settings        tokens.py  confirmation tokens, IP hashes
    limits.py   rate limits             mail.py    the confirmation email
    mounts.py   extra routes other parts of the product mount (webhooks)
    server.py   running it under uvicorn (one or several workers)

For uvicorn or gunicorn directly: `uvicorn --factory newsletter.web.app:from_environment`, with
`NEWSLETTER_SERVE_ROOT` (the newsletter folder) and optionally `NEWSLETTER_SERVE_SITE=1`.
"""

from __future__ import annotations

from .app import create_app
from .server import from_environment, serve_public

__all__ = ["create_app", "from_environment", "serve_public"]
