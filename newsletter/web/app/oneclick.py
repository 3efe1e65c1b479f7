"""One-click unsubscribes written together, and their answer page made once per language.

A mailing's List-Unsubscribe-Post requests come in bursts, many at once (mail providers press the
button for the reader). Each one used to take a worker thread and a commit of its own. Here a request
hands its address to `OneClickWriter` and waits: the addresses gathered while the previous batch was
being written are one state change of the reader base (`ReaderBase.unsubscribe`: every reader's status,
subscription, history and suppression entry, in one transaction), from one worker thread. A request is
answered only once its address is recorded; a failed write fails every request of its batch, as it
failed the one request before.

The "Unsubscribed" page differs between readers only by the address: it is rendered once per language
with a placeholder, which each answer replaces with the escaped address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from markupsafe import escape
from starlette.concurrency import run_in_threadpool

PLACEHOLDER = "Zq9nlOneClickAddressQx7"  # letters and digits: nothing in a template escapes or wraps it


class OneClickWriter:
    """`await writer.record(address)`: returns once `write` has recorded the batch holding it."""

    def __init__(self, write: Callable[[list[str]], None]) -> None:
        self._write = write
        self._waiting: list[tuple[str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, address: str) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((address, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await run_in_threadpool(self._write, [address for address, _ in batch])
                except Exception as exc:  # each waiting request answers with it
                    for _, done in batch:
                        done.set_exception(exc)
                else:
                    for _, done in batch:
                        done.set_result(None)
        finally:
            self._writer = None


class PerLanguagePage:
    """A page rendered once per language around PLACEHOLDER; `page(lang, address)` fills it in."""

    def __init__(self, render: Callable[[str], str]) -> None:
        self._render = render
        self._parts: dict[str, list[str]] = {}

    def __call__(self, lang: str, address: str) -> str:
        parts = self._parts.get(lang)
        if parts is None:
            parts = self._parts[lang] = self._render(lang).split(PLACEHOLDER)
        return str(escape(address)).join(parts)
