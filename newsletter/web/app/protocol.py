"""HTTP/1.1 for the public app: uvicorn's h11 protocol with a deadline on every request.

uvicorn times out an idle keep-alive connection, but not a client that opens a connection and sends its
request a byte at a time (each byte restarts nothing and ends nothing): a few hundred such clients hold
every connection the server has. Here a client has `client_timeout` seconds (`[web]`, default 10) from
opening the connection, or from the end of the previous answer, to send a whole request, head and body;
after that it gets a 408 (or, mid-body, the connection is closed). A request the app is still working
on is not the client's delay and is never cut.

h11 rather than httptools also gives the app the request target as sent, so an absolute-form request
for another host is seen and refused (`guards.RequestShape`).

Each request's scope also keeps the connection's own peer under `PEER_KEY`, before uvicorn's proxy
headers replace `client` with the address a trusted proxy names: the desk believes its single sign-on
header only from configured proxy addresses, which is the peer, not the visitor behind it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

PEER_KEY = "newsletter.peer"

TIMEOUT_ENV = "NEWSLETTER_SERVE_CLIENT_TIMEOUT"  # set by `serve_public`, read by each worker process
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: 22\r\n\r\nRequest took too long.\n"
)


class DeadlineProtocol(H11Protocol):
    """`H11Protocol` with the per-request deadline described in the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_timeout = float(os.environ.get(TIMEOUT_ENV, "10"))
        self._deadline: asyncio.TimerHandle | None = None
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
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head:
            if self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
                self.transport.close()  # an idle keep-alive connection: nothing to answer
                return
            self.transport.write(_TIMEOUT_ANSWER)
            self.transport.close()
        elif self.conn.their_state is h11.SEND_BODY and not self.cycle.response_started:
            self.transport.close()  # the app is waiting for a body that does not come (BodyLimit answers 408)
