"""What a story's text may hold: characters XML/HTML can carry, and bodies small and shallow enough.

Both are checked as a story is read (stories.py), before anything renders or sanitises it: a stray
control character pasted from Word or a PDF would otherwise break the MJML template for the whole
edition, and a body of 100,000 nested `<div>`s would take minutes to sanitise.
"""

from __future__ import annotations

import re
from typing import Any

from ..textutil import one_line

MAX_BODY_BYTES = 2_000_000  # a story body larger than this is refused before it is sanitised
MAX_NESTING = 100  # nor one whose HTML nests deeper than this (sanitising cost grows with the depth)

_NONCHARS = "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(1, 17))
_UNSHOWABLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff" + _NONCHARS + "]")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)\b[^>]*?(/?)>")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)


def clean_characters(text: str) -> str:
    """Remove what XML/HTML cannot carry; a form feed becomes a paragraph break, a vertical tab a line break."""
    if not _UNSHOWABLE.search(text) and "\x0b" not in text and "\x0c" not in text:
        return text
    return _UNSHOWABLE.sub("", text.replace("\x0c", "\n\n").replace("\x0b", "\n"))


def nesting(body: str) -> int:
    """How deep the body's HTML tags nest (a linear scan; unclosed tags count as open)."""
    depth = deepest = 0
    for closing, name, selfclosing in _TAG.findall(body):
        if selfclosing or name.lower() in _VOID:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def field_text(value: Any, *, max_len: int = 2000) -> str:
    """A front-matter value as one line of clean text, at most `max_len` characters; else ValueError."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be text, got {type(value).__name__}")
    text = clean_characters(one_line(str(value)))  # YAML escapes ("\uFFFE") are decoded after the file is read
    if len(text) > max_len:
        raise ValueError(f"too long ({len(text)} characters, at most {max_len})")
    return text
