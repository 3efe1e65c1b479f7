"""What an archived edition's pages are made from, so `newsletter site` skips the editions nothing touched.

Reading, rendering and sanitising the stories is nearly all of a rebuild. An edition's key is a hash of
everything its pages come from:

    the code and the templates    every file of the package and of the newsletter's templates/ (path,
                                  modification time, size): an upgrade or an edited template rebuilds all
    the photos                    every file under stories/ that is not a story (a photo beside a story
                                  or in a shared folder): a changed photo rebuilds all
    the configuration             the loaded settings (base URL, languages, titles, …)
    the edition                   its manifest (which stories, in which places, when it was built)
    its stories                   each story file's path, modification time and size

The key is written into the edition's catalog entry (`data/site/<date>.json`) once its pages are
written; a rebuild whose key matches, with every page of the entry still on disk, leaves the edition
alone. A build that met a problem (a story gone) stores no key, so it is looked at again every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ... import __version__
from ...config import Settings

_PACKAGE = Path(__file__).resolve().parents[2]  # newsletter/


def _tree(base: Path, digest: Any) -> None:
    if not base.is_dir():
        return
    for path in sorted(base.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        st = path.stat()
        digest.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())


def _photos(stories: Path, digest: Any) -> None:
    """Every file under stories/ but the stories themselves: a listing, and a stat only for those few."""
    for folder, subfolders, names in os.walk(stories):
        subfolders.sort()
        for name in sorted(names):
            if not name.endswith(".md"):
                path = Path(folder, name)
                with contextlib.suppress(OSError):
                    st = path.stat()
                    digest.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())


def fingerprint(settings: Settings) -> str:
    """The code, templates, configuration and photos every edition's pages depend on (once per rebuild)."""
    digest = hashlib.sha256(f"{__version__}\0{settings!r}\n".encode())
    _tree(_PACKAGE, digest)
    _tree(settings.templates_dir, digest)
    _photos(settings.stories_dir, digest)
    return digest.hexdigest()


def edition_key(settings: Settings, common: str, manifest: Mapping[str, Any]) -> str:
    """The key of one edition's pages: `common` (the fingerprint), its manifest and its stories' files."""
    digest = hashlib.sha256(common.encode())
    digest.update(json.dumps(manifest, sort_keys=True, ensure_ascii=False).encode())
    for entry in manifest.get("stories", []):
        shown = str(entry.get("file", ""))
        try:
            st = (settings.root / shown).stat()
            digest.update(f"{shown}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
        except OSError:
            digest.update(f"{shown}\0gone\n".encode())
    return digest.hexdigest()
