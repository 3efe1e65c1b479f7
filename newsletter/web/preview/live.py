"""Live reload: the file watches (started with the app), a rebuild on every change, and the server-sent
events that tell open pages to refetch."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from watchfiles import Change

from . import watcher
from .context import Preview, preview_of
from .parts import kb, shown_path

_KEEPALIVE_S = 15.0


async def events(request: Request) -> Response:
    """`/events`: "hello" with what the pages show, then "change" after every rebuild."""
    preview = preview_of(request)
    queue = preview.hub.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            # retry: reconnect quickly after a restart of the server.
            yield f"retry: 500\nevent: hello\ndata: {json.dumps({'generation': preview.token()})}\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=_KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                yield message
        finally:
            preview.hub.unsubscribe(queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def on_change(preview: Preview, changes: set[tuple[Change, str]]) -> None:
    """Rebuild after files changed, tell the pages, and report in the terminal what the change did."""
    previewer = preview.previewer
    started = time.perf_counter()
    await run_in_threadpool(previewer.changed)
    # Browsers refetch at once; each request renders what its page shows. Then the editions looked
    # at lately are rendered (if no request did it first) for the report in the terminal.
    preview.hub.publish("change", {"generation": preview.token()})
    views = await run_in_threadpool(previewer.warm)
    names = sorted({shown_path(Path(p), previewer.root) for _, p in changes})
    summary = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    summary = summary or "watched folders"
    outcome = []
    for view in views:
        if view.ok and view.build is not None:
            outcome.append(f"{view.day} {kb(view.build.rendered.html_bytes)}")
        else:
            outcome.append(f"{view.day} has {len(view.problems)} problem(s)")
    ms = (time.perf_counter() - started) * 1000
    preview.say(f"{summary} changed → {'; '.join(outcome) or 'reloaded'} ({ms:.0f} ms)")
    for view in views:
        for problem in view.problems[:10]:
            preview.say(f"  {problem}")


def lifespan(
    preview: Preview, *, watch: bool, on_ready: Callable[[], None] | None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the file watches in place before `on_ready`, stopped with the server."""

    @asynccontextmanager
    async def run(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        ready = asyncio.Event()
        task = None
        if watch:
            changed = functools.partial(on_change, preview)
            task = asyncio.create_task(watcher.watch(lambda: preview.previewer.settings, changed, stop, ready=ready))
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                waiter.cancel()
                task.result()  # the watcher could not start: fail startup with its error
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            stop.set()
            preview.hub.close()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return run


routes = [Route("/events", events)]
