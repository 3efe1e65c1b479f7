"""Story photos made fit to publish: sized for where they are shown, stripped of what they must not carry.

In:  an original — a file inside the newsletter folder, or (with `[images] mirror = true`) an https URL —
     and the `[images]` options.
Out: `Published`: its renditions under `site/images/` (content-hashed names, JPEG/PNG for the email,
     WebP — and AVIF when asked — too for the archive), each with its URL under base_url, width, height and size; or
     `ImageRefused` saying why the original cannot be published (one warning line).

    options.py   `[images]` → `ImageOptions` (and the masthead `Logo`), read once
    process.py   Pillow: decode (type, pixel limit, whole), upright, sRGB, no metadata; encode widths
    fetch.py     httpx: an https original fetched within size and time limits, images only
    store.py     `Publisher`: the cache under data/images/ and the files under site/images/
    model.py     `Published`, `Rendition`: what templates need (which file for which shown width)

Public face: the names in `__all__`. The edition's build step and the web archive call `Publisher`;
templates see `Published` values only.
"""

from __future__ import annotations

from .model import MODERN, ImageRefused, Masthead, Published, Rendition, Shown, srcset
from .options import BODY_WIDTH, CARD_WIDTH, EMAIL_WIDTH, ImageOptions, Logo, image_options
from .store import Publisher, Work

__all__ = [
    "BODY_WIDTH",
    "CARD_WIDTH",
    "EMAIL_WIDTH",
    "MODERN",
    "ImageOptions",
    "ImageRefused",
    "Logo",
    "Masthead",
    "Published",
    "Publisher",
    "Rendition",
    "Shown",
    "Work",
    "image_options",
    "srcset",
]
