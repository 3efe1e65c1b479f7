"""Watch what an edition is made of — `stories/`, `templates/`, `newsletter.toml` — with watchfiles.

Two watches, because the newsletter folder itself may hold a virtualenv or an outbox with thousands of
files: the story and template folders recursively, and the folder itself only one level deep, for the
config file and for a story or template folder that appears later. When the config moves those folders
(`[paths]`), the watches start again on the new ones.

Changes are grouped the way watchfiles does it (a batch ends 50 ms after the last event), so an editor's
save-by-rename arrives as one change and the page reloads once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from watchfiles import Change, DefaultFilter, awatch

from ...config import CONFIG_FILE, Settings

OnChange = Callable[[set[tuple[Change, str]]], Awaitable[None]]

# How long watchfiles waits for more events before yielding a batch (ms), and the longest batch.
STEP_MS = 50
DEBOUNCE_MS = 400


def targets(settings: Settings) -> tuple[tuple[Path, ...], Path]:
    """(folders to watch recursively, folder to watch one level deep)."""
    folders = tuple(d for d in dict.fromkeys((settings.stories_dir, settings.templates_dir)) if d.is_dir())
    return folders, settings.root


class _TopLevel(DefaultFilter):
    """In the newsletter folder itself, only the config file and the story/template folders matter."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__()
        self.names = frozenset(names)

    def __call__(self, change: Change, path: str) -> bool:
        return Path(path).name in self.names and super().__call__(change, path)


async def _pump(
    paths: tuple[Path, ...],
    *,
    recursive: bool,
    watch_filter: DefaultFilter,
    on_change: OnChange,
    moved: Callable[[], bool],
    halt: asyncio.Event,
) -> None:
    """Feed one watch's batches to `on_change`; stop all watches when the folders moved."""
    async for changes in awatch(
        *paths, watch_filter=watch_filter, recursive=recursive, step=STEP_MS, debounce=DEBOUNCE_MS, stop_event=halt
    ):
        await on_change(changes)
        if moved():
            halt.set()


async def watch(
    get_settings: Callable[[], Settings],
    on_change: OnChange,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Call `on_change(changes)` for each batch of changes until `stop` is set.

    `get_settings` is asked again after every batch, since a config change can move the folders; after
    the watches start again, `on_change` gets an empty batch.
    """
    restarted = False
    while not stop.is_set():
        settings = get_settings()
        current = targets(settings)
        folders, root = current
        halt = asyncio.Event()
        names = [CONFIG_FILE, settings.stories_dir.name, settings.templates_dir.name]
        common: dict[str, Any] = {
            "on_change": on_change,
            "moved": lambda current=current: targets(get_settings()) != current,
            "halt": halt,
        }
        tasks = [asyncio.create_task(_pump((root,), recursive=False, watch_filter=_TopLevel(names), **common))]
        if folders:
            tasks.append(asyncio.create_task(_pump(folders, recursive=True, watch_filter=DefaultFilter(), **common)))
        stopper = asyncio.create_task(stop.wait())
        # One turn of the loop lets each pump reach awatch's first await, by which time its inotify
        # watches exist: a change saved from now on is seen.
        await asyncio.sleep(0)
        if ready is not None:
            ready.set()
        if restarted:
            # Files saved into a new folder before its watch existed: one empty batch says "look again".
            await on_change(set())
        restarted = True
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopper}:
                task.result()  # a watch that died (folder deleted) re-raises here, or restarts below
        except FileNotFoundError:
            pass  # a watched folder was removed: look again at what exists
        finally:
            halt.set()
            stopper.cancel()
            for task in tasks:
                task.cancel()
            for task in [*tasks, stopper]:
                with contextlib.suppress(asyncio.CancelledError, FileNotFoundError):
                    await task
        if not stop.is_set():
            await asyncio.sleep(0.05)


__all__ = ["DEBOUNCE_MS", "STEP_MS", "targets", "watch"]
