"""Run the public app under uvicorn: one process, or `workers` processes sharing the port.

Workers are separate processes started by uvicorn, so they build their app from the environment
(`from_environment`), which is also the entry point for running uvicorn or gunicorn by hand.

Everything that can stop the server is checked before it says it is serving: the settings and the
secret (the app is built once here), the archive folder, the port. Then `announce` gets the lines to
print: where it listens, which Host names it answers, and a `curl` that works from this machine.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from ... import logs, metrics
from ...config import load_settings
from ...errors import ConfigError, NewsletterError
from ..preview.server import PortInUse, bind
from ..site import site_dir
from .app import create_app
from .protocol import TIMEOUT_ENV, DeadlineProtocol

ROOT_ENV = "NEWSLETTER_SERVE_ROOT"
SITE_ENV = "NEWSLETTER_SERVE_SITE"
DESK_ENV = "NEWSLETTER_SERVE_DESK"


def from_environment() -> Starlette:
    """The app for the newsletter folder `$NEWSLETTER_SERVE_ROOT` (default: the current folder), serving
    the archive too when `$NEWSLETTER_SERVE_SITE` is 1, the editors' desk when `$NEWSLETTER_SERVE_DESK` is 1."""
    settings = load_settings(os.environ.get(ROOT_ENV, "."))
    metrics.setup(settings)  # a worker process: the folder named by the environment its parent set
    if logs.chosen_format() == "json" and not logging.getLogger("uvicorn").handlers:
        logs.configure_json()
    site = site_dir(settings) if os.environ.get(SITE_ENV, "") == "1" else None
    return create_app(settings, site=site, desk=_desk_on())


def ready_lines(app: Starlette, host: str, port: int, workers: int) -> list[str]:
    """What `serve` prints once it listens: the address, the Host names, a request that works."""
    hosts = sorted(app.state.ctx.options.hosts)
    shown = f"[{host}]" if ":" in host else host
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else shown
    return [
        f"Serving the public app on http://{shown}:{port}/ ({workers} worker(s)); Ctrl+C to stop",
        f"It answers requests for the Host name(s) {', '.join(hosts)} ([web] hosts); any other Host gets 403.",
        f"Try it from this machine: curl -H 'Host: {hosts[0]}' http://{local}:{port}/subscribe",
        *([f"The editors' desk: http://{shown}:{port}/desk/ (sign in at /desk/login)"] if _desk_on() else []),
    ]


def _desk_on() -> bool:
    return os.environ.get(DESK_ENV, "") == "1"


def serve_public(
    root: Path,
    host: str,
    port: int,
    *,
    workers: int = 1,
    site: bool = False,
    desk: bool = False,
    forwarded_allow_ips: str = "127.0.0.1",
    announce: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve until stopped (Ctrl+C, SIGTERM). Configuration problems stop it before it listens."""
    os.environ[ROOT_ENV] = str(Path(root).resolve())
    os.environ[SITE_ENV] = "1" if site else "0"
    os.environ[DESK_ENV] = "1" if desk else "0"
    app = from_environment()  # fail here, with one line, rather than in every worker
    if (counted := metrics.folder()) is not None:  # the workers count into the same folder
        os.environ[metrics.DIR_ENV] = str(counted)
    if site and not site_dir(app.state.settings).is_dir():
        raise ConfigError(f"--site: {site_dir(app.state.settings)} does not exist; run `newsletter site` first")
    os.environ[TIMEOUT_ENV] = str(app.state.ctx.options.client_timeout)
    common = {
        "log_level": "warning",
        "access_log": False,  # no IP addresses in the logs by default
        "proxy_headers": True,  # the client address from X-Forwarded-For, only when the proxy is trusted:
        "forwarded_allow_ips": forwarded_allow_ips,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
        "http": DeadlineProtocol,
    }
    if logs.chosen_format() == "json":
        common["log_config"] = None  # keep the JSON handlers set up by --log-format
        os.environ[logs.FORMAT_ENV] = "json"  # and the worker processes set up their own
    sock = _listen(host, port)
    if announce is not None:
        announce(ready_lines(app, host, port, workers))
    if workers == 1:
        try:
            uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock])  # type: ignore[arg-type]
        finally:
            sock.close()
        return
    sock.close()  # the workers bind the port themselves; it was free a moment ago
    uvicorn.run(
        "newsletter.web.app:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **common,  # type: ignore[arg-type]
    )


def _listen(host: str, port: int) -> socket.socket:
    try:
        return bind(host, port)
    except PortInUse:
        raise NewsletterError(f"port {port} on {host} is already in use; choose another with --port") from None
