"""Publishing photos into `site/images/`, once per original: the I/O edge of the images subsystem.

    site/images/<key>-<width>.<ext>     the renditions; `<key>` hashes the original's bytes and the recipe
    data/images/cache.json              what is known: each file's size, mtime and content hash (so it is
                                        not re-read), each mirrored URL's content hash (so it is fetched
                                        once), the renditions made from each original (so a rebuild
                                        does no image work)

A name changes exactly when the photo or the recipe does, so a published file never changes and can
be cached forever. Every file goes through a temp file and a rename; the cache is one small file,
written once per build when something was learnt (merged with what another process wrote meanwhile).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..fsutil import write_atomic
from .model import ImageRefused, Published, Rendition
from .options import ImageOptions

if TYPE_CHECKING:
    import httpx


@dataclass
class Work:
    """What a run did: processed originals, reused ones, downloads."""

    processed: int = 0
    reused: int = 0
    fetched: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


class Publisher:
    """Photos in (a file of the newsletter, or an https URL when mirroring), `Published` out.

    `close()` writes down what was learnt (and closes the mirror's connections)."""

    def __init__(self, options: ImageOptions, base_url: str) -> None:
        self.options = options
        self.base_url = base_url.rstrip("/")
        self.work = Work()
        self._client: httpx.Client | None = None
        self._cache = _load(options.cache_dir / CACHE_FILE)
        self._learnt: dict[str, dict[str, Any]] = {kind: {} for kind in _KINDS}
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if any(self._learnt.values()):
            path = self.options.cache_dir / CACHE_FILE
            merged = _load(path)  # another process may have written since this one read
            for kind in _KINDS:
                merged[kind].update(self._learnt[kind])
            with contextlib.suppress(OSError):  # only a cache: the next build does the work again
                write_atomic(path, json.dumps(merged, separators=(",", ":")), fsync=False)

    def local(self, path: Path) -> Published:
        """A file inside the newsletter folder, published; `ImageRefused` when missing or not a photo."""
        # Judged on the path as written (`..` folded, symlinks kept): a story cannot climb out of the
        # newsletter or stories folder, but a stories folder linked in from elsewhere is still its own.
        where = Path(os.path.abspath(path))
        inside = (self.options.root, self.options.stories_dir or self.options.root)
        if not any(where.is_relative_to(folder) for folder in inside):
            raise ImageRefused("is outside the newsletter folder")
        try:
            resolved = path.resolve()
            stat = resolved.stat()
            if not resolved.is_file():
                raise ImageRefused("is not a file")
            if stat.st_size > self.options.max_source_mb * 1_000_000:
                raise ImageRefused(f"{stat.st_size / 1e6:.1f} MB is over [images] max_source_mb")
            known = self._known("sources", str(resolved))
            if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
                found = self._published(str(known["sha"]))
                if found is not None:
                    self.work.add(reused=1)
                    return found
            data = resolved.read_bytes()
        except FileNotFoundError:
            raise ImageRefused("no such file") from None
        except OSError as exc:
            raise ImageRefused(f"cannot read it ({exc.strerror or exc})") from None
        sha = hashlib.sha256(data).hexdigest()
        self._remember("sources", str(resolved), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha": sha})
        return self._publish(sha, data)

    def remote(self, url: str) -> Published:
        """An https photo, fetched the first time only (mirroring)."""
        known = self._known("remote", url)
        if known:
            found = self._published(str(known["sha"]))
            if found is not None:
                self.work.add(reused=1)
                return found
        # httpx and Pillow are imported when there is work for them: a warm build pays for neither.
        from .fetch import fetch_image, make_client

        with self._lock:
            if self._client is None:
                self._client = make_client(self.options.fetch_timeout)
        data = fetch_image(self._client, url, max_bytes=self.options.max_source_mb * 1_000_000)
        self.work.add(fetched=1)
        sha = hashlib.sha256(data).hexdigest()
        published = self._publish(sha, data)
        self._remember("remote", url, {"sha": sha})
        return published

    def _key(self, sha: str) -> str:
        return hashlib.sha256(f"{sha} {self.options.recipe}".encode()).hexdigest()[:20]

    def _known(self, kind: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._learnt[kind].get(name) or self._cache[kind].get(name)
        return value if isinstance(value, dict) else None

    def _remember(self, kind: str, name: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._learnt[kind][name] = value

    def _published(self, sha: str) -> Published | None:
        """What was made from this original before, if every file of it is still there."""
        record = self._known("out", self._key(sha))
        return self._from_record(record) if record else None

    def _from_record(self, record: dict[str, Any]) -> Published | None:
        try:
            made = [
                (str(r["file"]), int(r["width"]), int(r["height"]), str(r["format"]), int(r["bytes"]))
                for r in record["renditions"]
            ]
        except (KeyError, TypeError, ValueError):
            return None
        if not made or not all((self.options.site_dir / name).is_file() for name, *_ in made):
            return None
        return Published(tuple(Rendition(f"{self.base_url}/{n}", w, h, f, b) for n, w, h, f, b in made))

    def _publish(self, sha: str, data: bytes) -> Published:
        found = self._published(sha)
        if found is not None:  # the same photo under another name, or a touched file
            self.work.add(reused=1)
            return found
        from .process import decode, encode

        options = self.options
        widths = options.email_widths + options.archive_widths
        img = decode(data, largest=max(widths), max_pixels=options.max_pixels)
        key = self._key(sha)
        made: list[dict[str, Any]] = []
        for out in encode(img, options.email_widths, options.archive_widths, options.quality, avif=options.avif):
            name = f"images/{key}-{out.width}.{out.extension}"
            try:
                write_atomic(options.site_dir / name, out.data, fsync=False)
            except OSError as exc:
                raise ImageRefused(f"cannot write {name} ({exc.strerror or exc})") from None
            made.append({"file": name, "width": out.width, "height": out.height, "format": out.format})
            made[-1]["bytes"] = len(out.data)
        self._remember("out", key, {"renditions": made})
        self.work.add(processed=1)
        published = self._from_record({"renditions": made})
        if published is None:  # written a moment ago: only a folder removed under us gets here
            raise ImageRefused(f"its files vanished from {options.site_dir / 'images'} as they were written")
        return published


CACHE_FILE = "cache.json"
_KINDS = ("sources", "remote", "out")


def _load(path: Path) -> dict[str, dict[str, Any]]:
    """The cache file's tables; empty ones when it is missing or unreadable (then the work is redone)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        value = {}
    if not isinstance(value, dict):
        value = {}
    return {kind: dict(value[kind]) if isinstance(value.get(kind), dict) else {} for kind in _KINDS}
