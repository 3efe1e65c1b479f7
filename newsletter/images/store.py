"""Publishing photos into `site/images/`, once per original: the I/O edge of the images subsystem.

    site/images/<key>-<width>.<ext>     the renditions; `<key>` hashes the original's bytes and the recipe
    data/images/out/<key>.json          the renditions made from it (so a rebuild does no image work)
    data/images/sources/<id>.json       a file's size, mtime and content hash (so it is not re-read)
    data/images/remote/<id>.json        a mirrored URL's content hash (so it is fetched once)

A name changes exactly when the photo or the recipe does, so a published file never changes and can
be cached forever. Every file goes through a temp file and a rename.
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
    """Photos in (a file of the newsletter, or an https URL when mirroring), `Published` out."""

    def __init__(self, options: ImageOptions, base_url: str) -> None:
        self.options = options
        self.base_url = base_url.rstrip("/")
        self.work = Work()
        self._client: httpx.Client | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

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
            memo = self._memo("sources", str(resolved))
            known = _read_json(memo)
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
        self._remember(memo, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha": sha})
        return self._publish(sha, data)

    def remote(self, url: str) -> Published:
        """An https photo, fetched the first time only (mirroring)."""
        memo = self._memo("remote", url)
        known = _read_json(memo)
        if known and known.get("url") == url:
            found = self._published(str(known["sha"]))
            if found is not None:
                self.work.add(reused=1)
                return found
        # httpx and Pillow are imported when there is work for them: a warm build pays for neither.
        from .fetch import fetch_image, make_client

        if self._client is None:
            self._client = make_client(self.options.fetch_timeout)
        data = fetch_image(self._client, url, max_bytes=self.options.max_source_mb * 1_000_000)
        self.work.add(fetched=1)
        sha = hashlib.sha256(data).hexdigest()
        published = self._publish(sha, data)
        self._remember(memo, {"url": url, "sha": sha})
        return published

    def _key(self, sha: str) -> str:
        return hashlib.sha256(f"{sha} {self.options.recipe}".encode()).hexdigest()[:20]

    def _published(self, sha: str) -> Published | None:
        """What was made from this original before, if every file of it is still there."""
        record = _read_json(self.options.cache_dir / "out" / f"{self._key(sha)}.json")
        if not record:
            return None
        try:
            made = [
                (str(r["file"]), int(r["width"]), int(r["height"]), str(r["format"]), int(r["bytes"]))
                for r in record["renditions"]
            ]
        except (KeyError, TypeError, ValueError):
            return None
        if not all((self.options.site_dir / name).is_file() for name, *_ in made):
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
        for out in encode(img, options.email_widths, options.archive_widths, options.quality):
            name = f"images/{key}-{out.width}.{out.extension}"
            try:
                write_atomic(options.site_dir / name, out.data, fsync=False)
            except OSError as exc:
                raise ImageRefused(f"cannot write {name} ({exc.strerror or exc})") from None
            made.append({"file": name, "width": out.width, "height": out.height, "format": out.format})
            made[-1]["bytes"] = len(out.data)
        self._remember(options.cache_dir / "out" / f"{key}.json", {"renditions": made})
        self.work.add(processed=1)
        found = self._published(sha)
        if found is None:  # the files were just written: only a failed record write gets here
            raise ImageRefused(f"cannot record {key} under {options.cache_dir}")
        return found

    def _memo(self, kind: str, name: str) -> Path:
        return self.options.cache_dir / kind / f"{hashlib.sha256(name.encode()).hexdigest()[:24]}.json"

    def _remember(self, path: Path, value: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # only a cache: the next build does the work again
            write_atomic(path, json.dumps(value), fsync=False)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
