"""Guards for a server on 127.0.0.1: web pages in the same browser are the attackers.

- DNS rebinding: a page on evil.example can make its own name resolve to 127.0.0.1 and then read our
  responses as same-origin. It cannot change the `Host` header its requests carry, so we answer only
  when the host is a loopback name with our port.
- Cross-site forms: a page anywhere can POST a form to 127.0.0.1. The state-changing forms carry a
  token that only pages served here know, and a foreign `Origin` is refused outright. The RFC 8058
  unsubscribe endpoint is the exception by design: mail providers POST to it without cookies or tokens,
  and its own signed token is the authorisation.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

# Pages of the preview itself: scripts and styles only from /static, frames only from here.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The email as subscribers get it: inline styles, remote images, never a script; framed only by us.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; font-src https: data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
# The unsubscribe pages come from the mailing stage with one inline <style>.
UNSUBSCRIBE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"


def loopback_host(value: str) -> str:
    """The address to bind for `--host`; anything but a loopback address is refused with ValueError."""
    text = value.strip().lower()
    if text == "localhost":
        return "127.0.0.1"
    try:
        addr = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    if not addr.is_loopback:
        raise ValueError(f"{value} is not a loopback address")
    return str(addr)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def allowed_hosts(bound: str, port: int) -> frozenset[str]:
    """Every `Host` header value a browser on this machine sends for our URL."""
    names = {*LOOPBACK_NAMES, url_host(bound)}
    values = {f"{n}:{port}" for n in names}
    if port == 80:
        values |= names  # browsers leave the default port out
    return frozenset(values)


class HostGuard:
    """ASGI middleware: 403 for any request whose Host header is not ours (DNS rebinding)."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "").lower()
            if host not in self.hosts:
                response = PlainTextResponse(
                    "Host not allowed: open the preview at the http://127.0.0.1 address it printed.\n",
                    status_code=403,
                    headers={"X-Content-Type-Options": "nosniff"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class CsrfGuard:
    """A per-server-run secret that the forms of our own pages carry in a hidden field."""

    field = "csrf"

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)

    def check(self, submitted: object, origin: str | None, hosts: frozenset[str]) -> str | None:
        """None when the request may change something, else why not (one line)."""
        if origin is not None:
            parts = urlsplit(origin)
            if origin == "null" or parts.scheme != "http" or parts.netloc.lower() not in hosts:
                return "this form was sent from another site"
        if not isinstance(submitted, str) or not hmac.compare_digest(submitted, self.token):
            return "the form is out of date or did not come from this preview; reload the page and try again"
        return None


__all__ = [
    "EMAIL_CSP",
    "PAGE_CSP",
    "UNSUBSCRIBE_CSP",
    "CsrfGuard",
    "HostGuard",
    "allowed_hosts",
    "loopback_host",
    "url_host",
]


class SecurityHeaders:
    """Headers every response carries, whatever produced it (pages, static files, errors)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in (
                    (b"x-content-type-options", b"nosniff"),
                    # Not no-referrer: under it, browsers send `Origin: null` with our own forms.
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
