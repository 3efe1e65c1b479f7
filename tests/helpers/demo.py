"""The demo newsletter, copied: tests never read the checkout's own stories/, data/, outbox/ or site/.

The checkout is an editor's working folder too (README: add a story under `stories/`, build, publish);
what an editor adds there must not change what a test sees. So the demo is named file by file here and
copied into a test's own folder, and `hermetic.py` fails a test that reads those folders any other way.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
CHROMIUM = "/usr/bin/chromium"
IN_CI = bool(os.environ.get("CI"))

# The demo edition: the FRANCE 24 story of 30 December 2016, the sample stories and their photos
# (stories/images/; README, "The demo").
DEMO_DATE = date(2016, 12, 30)
DEMO_STORY = Path("2016/12/30/syrian-regime-emboldened-ahead-of-russia-backed-peace-talks.md")
# The folders of the checkout that belong to its editor, not to the tests (see `hermetic.py`).
EDITOR_FOLDERS = ("stories", "data", "outbox", "site")
EDITOR_FILES = ("newsletter.toml",)

_copying = 0  # > 0 while a helper below copies the demo: hermetic.py lets those reads through


def copying() -> bool:
    return _copying > 0


@contextmanager
def demo_reads() -> Iterator[None]:
    """Reads of the checkout's demo files inside this block are the copy helpers' own."""
    global _copying
    _copying += 1
    try:
        yield
    finally:
        _copying -= 1


def copy_demo_stories(dest: Path, *, languages: bool = False) -> None:
    """Copy the demo's stories to `dest`: the English edition's, or (`languages`) the French and Arabic
    samples too (stories/samples/fr, stories/samples/ar), which the demo's newsletter.toml publishes as
    their own editions. Only the demo's files: a story an editor added to the checkout stays behind."""
    ignore = None if languages else shutil.ignore_patterns("fr", "ar")
    with demo_reads():
        (dest / DEMO_STORY.parent).mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "stories" / DEMO_STORY, dest / DEMO_STORY)
        shutil.copytree(REPO / "stories" / "samples", dest / "samples", ignore=ignore, dirs_exist_ok=True)
        if (REPO / "stories" / "images").is_dir():  # the demo's photos, which its stories name by path
            shutil.copytree(REPO / "stories" / "images", dest / "images", dirs_exist_ok=True)


def demo_story_text() -> str:
    """The FRANCE 24 story of the demo, as the checkout holds it."""
    with demo_reads():
        return (REPO / "stories" / DEMO_STORY).read_text(encoding="utf-8")


def copy_demo_config(dest: Path) -> Path:
    """The demo's newsletter.toml (three language editions) copied into the newsletter folder `dest`."""
    with demo_reads():
        target = dest / "newsletter.toml"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "newsletter.toml", target)
    return target


def make_demo_root(root: Path, *, languages: bool = False) -> Path:
    """A newsletter folder at `root` holding a copy of the demo (with its newsletter.toml for `languages`)."""
    copy_demo_stories(root / "stories", languages=languages)
    if languages:
        copy_demo_config(root)
    return root


def write_story(root: Path, rel: str, front: str, body: str = "Body text.\n") -> Path:
    """A story file `stories/<rel>` under `root` with the given front matter (YAML) and body."""
    path = root / "stories" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front.strip()}\n---\n{body}", encoding="utf-8")
    return path


def check_eml_tool() -> Path:
    """The independent `.eml` checker beside the checkout (`../shared/tools/check_eml.py`).

    Skips the calling test, with the reason, where that file is absent — except under CI=true, where its
    absence is a failure.
    """
    tool = REPO.parent / "shared" / "tools" / "check_eml.py"
    if not tool.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the .eml checker is missing: {tool.relative_to(REPO.parent)} beside the checkout")
        pytest.skip("no ../shared/tools/check_eml.py beside the checkout (the independent .eml checker)")
    return tool
