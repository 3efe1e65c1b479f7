"""A story's `image` field: an https URL or a path relative to the story file, its alt text and credit.

`image_field` returns the clean `Image` or raises `ImageFieldError` naming the sub-field; the error
carries what can be shown all the same (an image without alt is shown with `alt=""`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..images import Published, Rendition
from ..textutil import clean_url
from .cleaning import field_text as _text

IMAGE_FIELDS = ("src", "alt", "credit")
# Where a body's relative image paths point until the build publishes them (photos.py): a host that
# can never resolve (.invalid is reserved), the path after it relative to the stories folder.
LOCAL_IMAGES = "https://local.invalid/"
# An image path relative to the story file: not host- or root-relative (those stay URLs on base_url),
# no colon (so nothing that could read as a scheme), no query or fragment.
_LOCAL_PATH = re.compile(r"(?![/\\])[^\x00-\x1f\x7f?#:\\]+")


@dataclass(frozen=True)
class Image:
    src: str  # an https URL, or a path relative to the story file
    alt: str
    credit: str = ""
    published: Published | None = None  # set by the build once the photo is in site/images/ (photos.py)


@dataclass(frozen=True)
class BodyPhoto:
    """A photo in a story's body once published: its source as written, the URL its `<img>` shows in
    the email, and every rendition (the archive offers them all in a `<picture>`)."""

    src: str
    url: str
    published: Published

    @property
    def in_email(self) -> Rendition:
        return next(r for r in self.published.renditions if r.url == self.url)


class ImageFieldError(Exception):
    def __init__(self, field_name: str, message: str, image: Image | None = None) -> None:
        self.field = field_name
        self.message = message
        self.image = image  # what can be shown all the same (an image without alt), or None


def _image_src(value: Any, base: str) -> str:
    """An https URL, or a path relative to the story file (kept as written: the build publishes it)."""
    if isinstance(value, str) and _LOCAL_PATH.fullmatch(value.strip()):
        return value.strip()
    return clean_url(value, base + "/", schemes=("https",))


def image_field(value: Any, base: str) -> Image:
    if isinstance(value, str):
        try:
            bare = Image(src=_image_src(value, base), alt="")
        except ValueError as exc:
            raise ImageFieldError("src", str(exc)) from None
        raise ImageFieldError("alt", "describe the photo: write image as a mapping with src, alt and credit", bare)
    if not isinstance(value, dict):
        raise ValueError("must be a mapping with src, alt and credit")
    unknown = sorted(set(map(str, value)) - set(IMAGE_FIELDS))
    if unknown:
        raise ImageFieldError(unknown[0], f"unknown image field (image takes {', '.join(IMAGE_FIELDS)})")
    if not value.get("src"):
        raise ImageFieldError("src", "required when there is an image")
    try:
        src = _image_src(value["src"], base)
    except ValueError as exc:
        raise ImageFieldError("src", str(exc)) from None
    try:
        alt = _text(value.get("alt") or "", max_len=500)
    except ValueError as exc:
        raise ImageFieldError("alt", str(exc)) from None
    try:
        credit = _text(value.get("credit") or "", max_len=300)
    except ValueError as exc:
        raise ImageFieldError("credit", str(exc), Image(src=src, alt=alt)) from None
    if not alt:
        raise ImageFieldError(
            "alt", "missing: describe the photo for readers who cannot see it", Image(src=src, alt="", credit=credit)
        )
    return Image(src=src, alt=alt, credit=credit)
