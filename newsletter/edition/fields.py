"""The front-matter fields of a story: their names, and one checker each that returns the clean value or
raises `ValueError` with the reason (`ImageFieldError` for a field of `image`, naming it).

A new field is its name in `OPTIONAL_FIELDS`, a checker in `CHECKERS`, and the field on `Story`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..textutil import clean_url, show, true_or_false
from .cleaning import field_text as _text
from .story_image import image_field

REQUIRED_FIELDS = ("title", "published")
OPTIONAL_FIELDS = ("summary", "section", "url", "byline", "kind", "image", "tags", "priority", "lang", "private")
KNOWN_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
KINDS = ("article", "video", "audio", "podcast", "gallery", "analysis", "opinion", "interview", "live")
DEFAULT_SECTION = "News"


def _title(value: Any, _base: str) -> str:
    text = _text(value, max_len=300)
    if not text:
        raise ValueError("must not be empty")
    return text


def check_published(value: Any, _base: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not an ISO 8601 datetime: got {show(value)}")
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" and text else text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 datetime: {show(text)}") from None
    if not re.search(r"\d[Tt ]\d", text):
        raise ValueError(f"needs a date and a time with an offset, e.g. 2016-12-30T05:30:00+01:00; got {show(text)}")
    if moment.tzinfo is None:
        raise ValueError(f"has no UTC offset: {show(text)} (write e.g. {text[:40]}+01:00)")
    # Editions are computed a day either side in any time zone: keep well inside datetime's range.
    if not 1900 <= moment.year <= 9000:
        raise ValueError(f"year {moment.year} is out of range (1900-9000): {show(text)}")
    return moment


def _url(value: Any, _base: str) -> str:
    return clean_url(value)


def _tags(value: Any, _base: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a list of words, e.g. [syria, russia]")
    return tuple(t for t in (_text(i, max_len=80) for i in items) if t)


def _priority(value: Any, _base: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number (higher comes first), got {show(value)}")
    if not -1000 <= value <= 1000:
        raise ValueError(f"must be between -1000 and 1000, got {value}")
    return value


def _kind(value: Any, _base: str) -> str:
    text = _text(value, max_len=40).lower()
    if not re.fullmatch(r"[a-z][a-z0-9-]*", text):
        raise ValueError(f"must be one word such as {', '.join(KINDS[:3])}; got {show(value)}")
    return text


def _lang(value: Any, _base: str) -> str:
    text = _text(value, max_len=35)
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", text):
        raise ValueError(f"must be a language tag such as en, ar or zh-Hant; got {show(value)}")
    return text


CHECKERS: dict[str, Callable[[Any, str], Any]] = {
    "title": _title,
    "published": check_published,
    "summary": lambda v, b: _text(v, max_len=1000),
    "section": lambda v, b: _text(v, max_len=80) or DEFAULT_SECTION,
    "url": _url,
    "byline": lambda v, b: _text(v, max_len=200),
    "kind": _kind,
    "image": image_field,
    "tags": _tags,
    "priority": _priority,
    "lang": _lang,
    "private": lambda v, b: true_or_false(v),
}
