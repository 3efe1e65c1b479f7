"""HTTP/1.1 for the public app: uvicorn's httptools protocol with a deadline on every request.

uvicorn times out an idle keep-alive connection, but not a client that opens a connection and sends its
request a byte at a time (each byte restarts nothing and ends nothing): a few hundred such clients hold
every connection the server has. Here a client has `client_timeout` seconds (`[web]`, default 10) from
opening the connection, or from the end of the previous answer, to send a whole request, head and body;
after that it gets a 408 (or, mid-body, the connection is closed). A request the app is still working
on is not the client's delay and is never cut.

httptools (llhttp, in C) rather than h11 (pure Python): h11's parsing and framing were the largest part
of a one-click POST's time. uvicorn's httptools side hands the app only the path of an absolute-form
target (`GET http://other.example/ HTTP/1.1`); the target as sent is put back in the scope's `raw_path`,
so that `guards.RequestShape` sees the other host and refuses it, as it did with h11.

An answer's head and body leave in one write (`_HeadWithBody`), not two: on loopback or a LAN each
write is a system call that also pays for delivering the segment, the largest cost left per request.

Each request's scope also keeps the connection's own peer under `PEER_KEY`, before uvicorn's proxy
headers replace `client` with the address a trusted proxy names: the desk believes its single sign-on
header only from configured proxy addresses, which is the peer, not the visitor behind it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

PEER_KEY = "newsletter.peer"

TIMEOUT_ENV = "NEWSLETTER_SERVE_CLIENT_TIMEOUT"  # set by `serve_public`, read by each worker process
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: 22\r\n\r\nRequest took too long.\n"
)


class DeadlineProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with the per-request deadline described in the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_timeout = float(os.environ.get(TIMEOUT_ENV, "10"))
        self._deadline: asyncio.TimerHandle | None = None
        self._head_begun = False  # bytes of a request head arrived, the head is not complete yet
        inner = self.app  # uvicorn's proxy headers middleware around the app

        async def record_peer(scope: Any, receive: Any, send: Any) -> None:
            scope[PEER_KEY] = scope.get("client")
            await inner(scope, receive, send)

        self.app = record_peer

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        self._head_begun = False
        super().on_headers_complete()
        if "path" not in self.scope:
            return  # an upgrade request uvicorn answers itself
        if not self.url.startswith(b"/"):
            self.scope["raw_path"] = self.url  # absolute form, as sent: RequestShape decides
        if self.scope["method"] != "HEAD":  # a HEAD answer has no body write to carry its head
            self.cycle.transport = _HeadWithBody(self.transport, self.cycle)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request on this connection gets its own full time

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.client_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:  # waiting for a request head
            if self._head_begun:
                self.transport.write(_TIMEOUT_ANSWER)
            self.transport.close()  # else an idle keep-alive connection: nothing to answer
        elif cycle.more_body and not cycle.response_started:
            self.transport.close()  # the app is waiting for a body that does not come (BodyLimit answers 408)


class _HeadWithBody:
    """The transport as one request's cycle sees it: the response head is held back and written with the
    first part of the body (every non-HEAD answer has one, even an empty one); anything else — a
    `100 Continue` before the head, `close()` — goes out at once, after what is held."""

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._held = b""
        self._holding = True  # only the head is ever held, once

    def write(self, data: bytes) -> None:
        if self._holding and self._cycle.response_started:
            self._holding = False
            self._held = data
            return
        if self._held:
            data, self._held = self._held + data, b""
        self._transport.write(data)

    def close(self) -> None:
        if self._held:
            self._transport.write(self._held)
            self._held = b""
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
