"""The webhook routes as a standalone app for the uvicorn subprocess of tests/test_webhooks.py.

`uvicorn --factory webhook_app:app` with NEWSLETTER_TEST_ROOT naming the newsletter folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette

from newsletter.config import load_settings
from newsletter.web.webhooks import create_app


def app() -> Starlette:
    return create_app(load_settings(Path(os.environ["NEWSLETTER_TEST_ROOT"])))
