"""ASGI guards in front of every route of the public app: the shape of a request, the size of its body.

`RequestShape` answers 400, before any route or the Host allow-list sees the request, when:
- it carries more than one Host header (RFC 9112 3.2: "MUST respond with a 400"), or none in HTTP/1.1
  (a load balancer's HTTP/1.0 probe of `/healthz` may send none);
- its target is in absolute form (`GET http://other.example/ HTTP/1.1`) naming a host other than its Host
  header (RFC 9112 3.2.2: the target's authority wins; a proxy-style request for another site is not
  ours to answer), or in a form no route has (`*`, `example.org:443`);
- its path holds a NUL or another control character (no file name, no route has one: `GET /%00` is a
  400 here, never a `ValueError` in the static file handler).
An absolute-form request for one of our own hosts is answered as its path.

`BodyLimit` answers 413 for a body over the limit, declared or streamed, and 408 for one that does not
arrive within the client time limit.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import unquote_to_bytes, urlsplit

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# One regular-expression scan, not a Python loop over every byte: this runs for every request.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_CONTROL_BYTES = re.compile(b"[\x00-\x1f\x7f]")


def _refuse(status: int, text: str) -> PlainTextResponse:
    return PlainTextResponse(text, status, headers={"Connection": "close", "Cache-Control": "no-store"})


def _bad_target(scope: Scope) -> str:
    """Why the request's target or Host is malformed, or "" (and `scope` rewritten for absolute form)."""
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    if len(hosts) > 1 or (not hosts and scope.get("http_version") != "1.0"):  # HTTP/1.0 probes may send none
        return "exactly one Host header is required"
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    if not raw.startswith(b"/"):
        parts = urlsplit(raw.decode("latin-1"))
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            return "the request target is not a path"
        if not hosts or parts.netloc.lower() != hosts[0].decode("latin-1").strip().lower():
            return "the request target names another host"
        raw = (parts.path or "/").encode("latin-1")
        scope["raw_path"], scope["path"] = raw, unquote_to_bytes(raw).decode("utf-8", "replace")
    if _CONTROL_BYTES.search(unquote_to_bytes(raw)) or _CONTROL.search(scope["path"]):
        return "the path holds a control character"
    return ""


class RequestShape:
    """400 for a request no well-behaved client sends (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # In place, not a copy: the request counter around this reads the route the router sets in it.
            why = _bad_target(scope)
            if why:
                await _refuse(400, f"Bad request: {why}.\n")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a request body over `limit` bytes, declared or streamed; 408 when it takes longer than
    `timeout` seconds to arrive. The body is read before the app sees it (it is small by construction),
    so a slow or endless upload never reaches a handler."""

    def __init__(self, app: ASGIApp, limit: int, prefixes: dict[str, int] | None = None, timeout: float = 10) -> None:
        self.app = app
        self.default = limit
        self.prefixes = prefixes or {}
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = next((n for p, n in self.prefixes.items() if scope["path"].startswith(p)), self.default)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(413, "Request body too large.\n")(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.timeout):  # unlike wait_for, no task of its own per request
                body = await _read(receive, limit)
        except TimeoutError:
            await _refuse(408, "Request body too slow.\n")(scope, receive, send)
            return
        if body is None:
            await _refuse(413, "Request body too large.\n")(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes (or the client went away)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
