"""Run the public app under uvicorn: one process, or `workers` processes sharing the port.

Workers are separate processes started by uvicorn, so they build their app from the environment
(`from_environment`), which is also the entry point for running uvicorn or gunicorn by hand.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from ... import logs, metrics
from ...config import load_settings
from ...errors import ConfigError
from ..preview.server import bind
from ..site import site_dir
from .app import create_app

ROOT_ENV = "NEWSLETTER_SERVE_ROOT"
SITE_ENV = "NEWSLETTER_SERVE_SITE"


def from_environment() -> Starlette:
    """The app for the newsletter folder `$NEWSLETTER_SERVE_ROOT` (default: the current folder), serving
    the archive too when `$NEWSLETTER_SERVE_SITE` is 1."""
    settings = load_settings(os.environ.get(ROOT_ENV, "."))
    metrics.setup(settings)  # a worker process: the folder named by the environment its parent set
    if logs.chosen_format() == "json" and not logging.getLogger("uvicorn").handlers:
        logs.configure_json()
    site = site_dir(settings) if os.environ.get(SITE_ENV, "") == "1" else None
    return create_app(settings, site=site)


def serve_public(
    root: Path, host: str, port: int, *, workers: int = 1, site: bool = False, forwarded_allow_ips: str = "127.0.0.1"
) -> None:
    """Serve until stopped (Ctrl+C, SIGTERM). Configuration problems stop it before it listens."""
    os.environ[ROOT_ENV] = str(Path(root).resolve())
    os.environ[SITE_ENV] = "1" if site else "0"
    app = from_environment()  # fail here, with one line, rather than in every worker
    if (counted := metrics.folder()) is not None:  # the workers count into the same folder
        os.environ[metrics.DIR_ENV] = str(counted)
    if site and not site_dir(app.state.settings).is_dir():
        raise ConfigError(f"--site: {site_dir(app.state.settings)} does not exist; run `newsletter site` first")
    common = {
        "log_level": "warning",
        "access_log": False,  # no IP addresses in the logs by default
        "proxy_headers": True,  # the client address from X-Forwarded-For, only when the proxy is trusted:
        "forwarded_allow_ips": forwarded_allow_ips,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if logs.chosen_format() == "json":
        common["log_config"] = None  # keep the JSON handlers set up by --log-format
        os.environ[logs.FORMAT_ENV] = "json"  # and the worker processes set up their own
    if workers == 1:
        sock = bind(host, port)
        try:
            uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock])  # type: ignore[arg-type]
        finally:
            sock.close()
        return
    bind(host, port).close()  # a port in use is one clear line, before the workers start
    uvicorn.run(
        "newsletter.web.app:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **common,  # type: ignore[arg-type]
    )
