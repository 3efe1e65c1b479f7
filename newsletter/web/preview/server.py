"""Run the preview: bind 127.0.0.1 ourselves (a taken port is one clear line), then serve with uvicorn."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from ...errors import NewsletterError
from .app import create_app
from .security import url_host
from .state import Previewer


class PortInUse(NewsletterError):
    pass


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (0: any free port), or PortInUse / NewsletterError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Like uvicorn: a restart can reuse the port while old connections linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is already in use (another preview?); choose another with --port"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise NewsletterError(f"port {port} on {host}: permission denied; use a port above 1023") from None
        raise NewsletterError(f"cannot listen on {url_host(host)}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn waits for open responses before it stops; the event streams never end by themselves."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    async def shutdown(self, sockets: Any = None) -> None:
        self._on_stop()
        await super().shutdown(sockets)


def serve(
    previewer: Previewer,
    host: str,
    port: int,
    *,
    announce: Callable[[str], None],
    log: Callable[[str], None],
) -> None:
    """Serve until Ctrl+C. `announce(url)` is called once the port is ours and the files are watched."""
    sock = bind(host, port)
    port = sock.getsockname()[1]
    url = f"http://{url_host(host)}:{port}/"
    app = create_app(previewer, host=host, port=port, log=log, on_ready=lambda: announce(url))
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        # Only our own Host check decides; uvicorn must not trust proxy headers on a local tool.
        proxy_headers=False,
        server_header=False,
    )
    logging.getLogger("newsletter.web.preview").addHandler(logging.StreamHandler())
    server = _Server(config, app.state.hub.close)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl+C it handled; the server has stopped cleanly by then
    finally:
        sock.close()


__all__ = ["PortInUse", "bind", "serve"]
