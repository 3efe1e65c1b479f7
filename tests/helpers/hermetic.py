"""The guard that keeps tests off the checkout's editor folders (stories/, data/, outbox/, site/) and its
newsletter.toml.

An audit hook (PEP 578) sees every file the test process opens, every folder it lists, every SQLite
database it connects to and every `newsletter` it starts; conftest.py fails the test that touched those
places other than through the copy helpers of `demo.py`. Reading a demo file by name is not enough of a
habit to keep: an editor's story of today changes "the newest edition", so the guard checks what runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .demo import EDITOR_FILES, EDITOR_FOLDERS, REPO, copying

_PATH_EVENTS = {
    "open": 0,
    "os.listdir": 0,
    "os.scandir": 0,
    "os.mkdir": 0,
    "os.remove": 0,
    "os.rename": 0,
    "shutil.copytree": 0,
    "shutil.rmtree": 0,
    "sqlite3.connect": 0,
    "glob.glob": 0,
}
_FOLDERS = tuple(str(REPO / name) for name in EDITOR_FOLDERS)
_FILES = tuple(str(REPO / name) for name in EDITOR_FILES)
_REPO = str(REPO)

seen: list[str] = []  # what the current test touched (cleared by conftest before each test)
_installed = False


def forbidden(path: Any) -> bool:
    """Whether `path` (relative to the current folder) lies in an editor folder of the checkout."""
    if isinstance(path, int) or path is None:
        return False
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        return False
    if text.startswith("file:"):  # an SQLite URI: file:/path?mode=ro
        text = text[len("file:") :].split("?", 1)[0]
    if text in ("", ":memory:"):
        return False
    full = os.path.realpath(text)
    return full in _FILES or any(full == folder or full.startswith(folder + os.sep) for folder in _FOLDERS)


def _runs_newsletter_in_checkout(args: Any, cwd: Any) -> bool:
    """`newsletter …` started in the checkout without `--root` elsewhere (its default root is its cwd)."""
    words = [os.fsdecode(a) for a in args] if isinstance(args, list | tuple) else [os.fsdecode(args or "")]
    line = " ".join(words)
    if "newsletter" not in line or not any(w == "newsletter" or w.endswith("/newsletter") for w in words):
        return False
    program = next(i for i, w in enumerate(words) if w == "newsletter" or w.endswith("/newsletter"))
    if len(words) == program + 1 or {"--help", "-h", "--version"} & set(words):  # no command: reads no folder
        return False
    roots = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--root"]
    roots += [w.split("=", 1)[1] for w in words if w.startswith("--root=")]
    base = os.fsdecode(cwd) if cwd is not None else os.getcwd()
    if not roots:
        return os.path.realpath(base) == _REPO
    return any(os.path.realpath(os.path.join(base, r)) == _REPO for r in roots)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event in _PATH_EVENTS:
        if args and forbidden(args[0]) and not copying():
            seen.append(f"{event} {args[0]}")
    elif event == "subprocess.Popen" and not copying() and _runs_newsletter_in_checkout(args[1], args[2]):
        seen.append(f"runs newsletter in the checkout: {args[1]!r}")


def install() -> None:
    """Add the audit hook (once per process: audit hooks cannot be removed)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


def installed() -> bool:
    return _installed


def check() -> None:
    """Fail the current test if it (or a fixture before it) touched the editor's files; forget them."""
    touched, seen[:] = list(seen), []
    if touched:
        pytest.fail(
            "touched the checkout's own editor files (use the demo_root/languages_root fixtures or "
            "tests/helpers/demo.py): " + "; ".join(touched[:5]),
            pytrace=False,
        )


@contextmanager
def caught() -> Iterator[list[str]]:
    """What the block touches of the checkout's editor folders, taken out of the current test's record."""
    before = len(seen)
    found: list[str] = []
    try:
        yield found
    finally:
        found.extend(seen[before:])
        del seen[before:]
