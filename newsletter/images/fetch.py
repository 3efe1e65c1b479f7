"""Mirroring: an https photo fetched once (httpx), within a size and a time limit, images only."""

from __future__ import annotations

import httpx

from .model import ImageRefused


def fetch_image(client: httpx.Client, url: str, *, max_bytes: int) -> bytes:
    """The bytes at `url`, or `ImageRefused` saying why not (status, type, size, network)."""
    if not url.lower().startswith("https://"):
        raise ImageRefused("only https images are mirrored")
    try:
        with client.stream("GET", url, headers={"Accept": "image/*"}) as reply:
            if reply.status_code != 200:
                raise ImageRefused(f"cannot fetch it: HTTP {reply.status_code}")
            kind = reply.headers.get("content-type", "").split(";")[0].strip().lower()
            if not kind.startswith("image/"):
                raise ImageRefused(f"cannot fetch it: the server sent {kind or 'no type'}, not an image")
            declared = reply.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ImageRefused(f"cannot fetch it: {int(declared) / 1e6:.1f} MB is over {max_bytes / 1e6:g} MB")
            data = bytearray()
            for chunk in reply.iter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise ImageRefused(f"cannot fetch it: more than {max_bytes / 1e6:g} MB")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise ImageRefused(f"cannot fetch it: {type(exc).__name__} {exc}".rstrip()) from None


def make_client(timeout: float) -> httpx.Client:
    """One client per build: connections kept across a list's photos, redirects followed (a few)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        max_redirects=5,
        headers={"User-Agent": "newsletter image mirror"},
    )
