"""Guards shared by the local preview and the public app: Host allow-list, CSRF, security headers.

- DNS rebinding: a page on evil.example can make its own name resolve to our address and then read our
  responses as same-origin. It cannot change the `Host` header its requests carry, so `HostGuard`
  answers only the names we serve under.
- Cross-site forms: a page anywhere can POST a form to us. Our forms carry a token only pages served
  here know (`CsrfGuard`: one per preview run; `SignedCsrf`: signed and expiring, the same in every
  worker of the public app), and a foreign `Origin` is refused outright (`origin_allowed`). The RFC 8058
  one-click unsubscribe is the exception by design: mail providers POST to it without cookies or
  tokens, and its own signed token is the authorisation.
- `SecurityHeaders` puts nosniff, a referrer policy and framing rules (and a default CSP) on every
  response, whatever produced it: pages, static files, errors.

Every token comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def host_name(value: str) -> str:
    """A Host header or netloc without its port: `example.org:8443` → `example.org`; `[::1]:80` → `[::1]`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostGuard:
    """ASGI middleware: 403 for any request whose Host header is not allowed.

    With `any_port`, the allow-list holds host names and the port is not compared (the public app sits
    behind a proxy that may use any port); otherwise it holds exact `host:port` values (the preview).
    Paths in `exempt` (e.g. `/healthz`, asked by load balancers by IP) skip the check.
    """

    def __init__(
        self,
        app: ASGIApp,
        hosts: Iterable[str],
        *,
        any_port: bool = False,
        message: str = "Host not allowed.\n",
        exempt: Collection[str] = (),
    ) -> None:
        self.app = app
        self.any_port = any_port
        self.hosts = frozenset(host_name(h) if any_port else h.lower() for h in hosts)
        self.message = message
        self.exempt = frozenset(exempt)

    def allowed(self, host: str) -> bool:
        return (host_name(host) if self.any_port else host.lower()) in self.hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guarded = scope["type"] in ("http", "websocket") and scope.get("path") not in self.exempt
        if guarded and not self.allowed(Headers(scope=scope).get("host", "")):
            response = PlainTextResponse(self.message, status_code=403, headers={"X-Content-Type-Options": "nosniff"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def origin_allowed(origin: str | None, hosts: Collection[str], *, schemes: Collection[str] = ("http", "https")) -> bool:
    """True when there is no Origin header, or it names one of `hosts` (`host` or `host:port` values,
    compared as given) over one of `schemes`. `Origin: null` (sandboxed frames, some redirects) is
    refused."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return origin != "null" and parts.scheme in schemes and parts.netloc.lower() in hosts


class CsrfGuard:
    """A per-server-run secret that the forms of our own pages carry in a hidden field (the preview)."""

    field = "csrf"

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)

    def check(self, submitted: object, origin: str | None, hosts: frozenset[str]) -> str | None:
        """None when the request may change something, else why not (one line)."""
        if not origin_allowed(origin, hosts, schemes=("http",)):
            return "this form was sent from another site"
        if not isinstance(submitted, str) or not hmac.compare_digest(submitted, self.token):
            return "the form is out of date or did not come from this preview; reload the page and try again"
        return None


class SignedCsrf:
    """Stateless form tokens for a server with several workers: `<issued>.<hmac>`, valid for `max_age`
    seconds. Any worker sharing the secret accepts any other's tokens; no session, no cookie."""

    field = "csrf"

    def __init__(self, secret: bytes, max_age: int = 24 * 3600) -> None:
        self._key = hmac.new(secret, b"newsletter-csrf-v1", hashlib.sha256).digest()
        self.max_age = max_age

    def _mac(self, issued: str) -> str:
        return hmac.new(self._key, issued.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        issued = str(int(now if now is not None else time.time()))
        return f"{issued}.{self._mac(issued)}"

    def valid(self, submitted: object, now: float | None = None) -> bool:
        if not isinstance(submitted, str) or len(submitted) > 100 or "." not in submitted:
            return False
        issued, mac = submitted.split(".", 1)
        if not issued.isdigit() or not hmac.compare_digest(mac, self._mac(issued)):
            return False
        age = (now if now is not None else time.time()) - int(issued)
        return -60 <= age <= self.max_age


_BASE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    # Not no-referrer: under it, browsers send `Origin: null` with our own forms.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


class SecurityHeaders:
    """Headers every response carries, whatever produced it; a response's own value wins.

    `csp` is added to responses that set no Content-Security-Policy of their own.
    """

    def __init__(self, app: Any, csp: str | None = None) -> None:
        self.app = app
        self.headers = _BASE_HEADERS + (((b"content-security-policy", csp.encode("ascii")),) if csp else ())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((name, value) for name, value in self.headers if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["CsrfGuard", "HostGuard", "SecurityHeaders", "SignedCsrf", "host_name", "origin_allowed"]
