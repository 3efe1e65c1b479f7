"""The public app's side of the metrics: a request counter around every route, and `/metrics` for scrapers.

`/metrics` answers only a client on an allowed network (`[metrics] allow`, loopback by default) that
came straight in: a request relayed by a proxy (any `Forwarded`, `X-Forwarded-For` or `X-Real-IP`
header) is refused whatever address it claims, so a public nginx or Caddy in front never exposes it.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import metrics
from ..config import Settings
from ..errors import ConfigError

METRICS_PATH = "/metrics"
_RELAYED = ("forwarded", "x-forwarded-for", "x-real-ip")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RequestMetrics:
    """ASGI middleware: count each request by route template (never the raw path), method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")
            template = f"{scope.get('root_path', '')}{getattr(route, 'path', '')}" if route is not None else "(none)"
            method = scope.get("method", "GET") if scope.get("method") in _METHODS else "other"
            metrics.request(template, method, status, time.perf_counter() - started)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def allowed_networks(settings: Settings) -> tuple[_Network, ...]:
    """`[metrics] allow`: the networks whose clients may scrape `/metrics` (default: loopback only)."""
    raw = settings.section("metrics").get("allow", ["127.0.0.0/8", "::1/128"])
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    try:
        return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in _as_list(raw))
    except ValueError as exc:
        raise ConfigError(f"[metrics] allow: {exc}") from None


def _as_list(raw: object) -> Iterable[object]:
    if not isinstance(raw, list):
        raise ConfigError(f"[metrics] allow must be a list of networks, got {raw!r}")
    return raw


def metrics_route(settings: Settings) -> Route:
    """`GET /metrics`: the Prometheus text format of every process counting into the metrics folder."""
    networks = allowed_networks(settings)

    def permitted(request: Request) -> bool:
        if any(name in request.headers for name in _RELAYED):
            return False
        try:
            client = ipaddress.ip_address(request.client.host if request.client else "")
        except ValueError:
            return False
        return any(client in network for network in networks)

    async def scrape(request: Request) -> Response:
        if not permitted(request):
            return PlainTextResponse("Not found.\n", 404)
        body = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return Route(METRICS_PATH, scrape, methods=["GET"])


__all__ = ["METRICS_PATH", "RequestMetrics", "allowed_networks", "metrics_route"]
