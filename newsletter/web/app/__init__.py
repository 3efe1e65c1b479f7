"""`newsletter serve`: the public web app (one-click unsubscribe, double opt-in, optionally the archive).

    app.py           the Starlette app: its routes and the guards in front of them
    context.py       what every handler shares (settings, stores, limits, page helpers)
    unsubscribe.py   /u/<token>: RFC 8058 one-click        signup.py  /subscribe, /confirm/<token>
    files.py         /healthz, the stylesheet, the archive, 404
    guards.py        malformed requests → 400, body size and time limits
    confirmations.py the queue of sign-ups and the worker thread that mails the confirmation links
    options.py       `[web]` settings       tokens.py  confirmation tokens, IP hashes
    limits.py        rate limits            mail.py    the confirmation email
    mounts.py        extra routes other parts of the product mount (webhooks)
    server.py        running it under uvicorn (one or several workers); protocol.py: per-request deadline

For uvicorn or gunicorn directly: `uvicorn --factory newsletter.web.app:from_environment`, with
`NEWSLETTER_SERVE_ROOT` (the newsletter folder) and optionally `NEWSLETTER_SERVE_SITE=1`.
"""

from __future__ import annotations

from .app import create_app
from .server import from_environment, serve_public

__all__ = ["create_app", "from_environment", "serve_public"]
