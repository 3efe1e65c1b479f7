"""Text helpers every stage uses: one-line values, safe URLs, word counts, slugs.

Kept apart from the story reader so that the message, personalization and intake stages can flatten a
header or judge a URL without reaching back into the reader.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

# C0, DEL and C1 controls, and the Unicode line/paragraph separators: all line breaks or worse in a
# one-line value. No-break and ideographic spaces are text (French "Syrie\u202f?", CJK), not layout.
# Bidi overrides and embeddings (U+202A-U+202E) too: they can make a title display reversed; the
# story's direction is set with `dir`, which needs none of them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")
# A host name (any script, for IDNs), an IPv4 or an IPv6 address (urlsplit drops the brackets).
_HOST = re.compile(r"[^\s%/?#@:\[\]<>\"'`\\]+|[0-9a-fA-F.]*:[0-9a-fA-F:.]*")
# Scripts written without spaces between words: each character counts as a word, about what a reader
# gets through in the time of one English word, so excerpts of Chinese or Japanese stories get cut too.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
# Thai, Lao, Khmer and Burmese: no spaces between words either, and words of about four letters (vowel
# signs and tone marks not counted), so every four letters count as one word. A dictionary segmenter
# (ICU) would count exactly; this is close enough for an excerpt and needs no system library.
_SEA = re.compile(r"[\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f]")
_SEA_LETTER = re.compile(
    r"[\u0e01-\u0e30\u0e32\u0e33\u0e40-\u0e46\u0e81-\u0eb0\u0eb2\u0eb3\u0ec0-\u0ec6\u1780-\u17b3\u1000-\u102a\u103f-\u1055]"
)
_SEA_LETTERS_PER_WORD = 4
_C0_AND_SPACE = "".join(map(chr, range(0x21)))


def one_line(value: str) -> str:
    """Flatten line breaks, tabs and other control characters, then runs of spaces, to single spaces:
    headers and headings are one line. No-break spaces and other non-ASCII spaces are kept as written."""
    return re.sub(r" {2,}", " ", _CONTROL.sub(" ", value)).strip(" ")


def slugify(stem: str) -> str:
    """A file stem made fit for an HTML id and a URL fragment: letters of any script, digits, '-', '_'."""
    return re.sub(r"[^\w-]+", "-", stem).strip("-") or "story"


def show(value: Any) -> str:
    """A short, safe rendering of a front matter value for an error message."""
    if isinstance(value, str | int | float | bool):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return f"a {type(value).__name__}"


def clean_url(value: str, base: str | None = None, *, schemes: Iterable[str] = ("http", "https")) -> str:
    """An absolute URL with an allowed scheme, or ValueError.

    Browsers ignore control characters and whitespace inside a scheme ("java\\tscript:"), so they are
    removed before the scheme is judged; relative URLs are resolved against `base` when one is given.
    """
    if not isinstance(value, str):
        raise ValueError(f"must be a URL, got {type(value).__name__}")
    # As the URL standard does: strip leading/trailing controls and spaces, drop tabs and newlines
    # anywhere. Any control or space left is percent-encoded, so it can never hide a scheme.
    url = re.sub(r"[\t\n\r]+", "", value.strip(_C0_AND_SPACE))
    url = re.sub(r"[\x00-\x20\x7f]", lambda m: f"%{ord(m.group()):02X}", url)
    if base is not None:
        url = urljoin(base, url)
    parts = urlsplit(url)
    shown = show(one_line(value))
    if parts.scheme.lower() not in set(schemes):
        raise ValueError(f"must be an absolute {'/'.join(schemes)} URL, got {shown}")
    if parts.scheme.lower() != "mailto" and not parts.netloc:
        raise ValueError(f"has no host: {shown}")
    if parts.scheme.lower() != "mailto" and not _HOST.fullmatch(parts.hostname or ""):
        raise ValueError(f"has an invalid host: {shown}")
    return url


def count_words(text: str) -> int:
    """Words in plain text: space-separated runs; each Chinese or Japanese character on its own; every
    four Thai, Lao, Khmer or Burmese letters."""
    total = 0
    for w in text.split():
        if _SEA.search(w):
            total += -(-len(_SEA_LETTER.findall(w)) // _SEA_LETTERS_PER_WORD)
            w = _SEA.sub(" ", w)
        total += len(_CJK.findall(w)) + len(_CJK.sub(" ", w).split())
    return total


def true_or_false(value: Any) -> bool:
    """A YAML/TOML boolean as it is; anything else (`"yes"`, 1) is a ValueError naming what was given."""
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {show(value)}")
    return value
