"""What a reader sees of a page or an email, and which English interface strings are left in it.

The English strings are the catalogue's own msgids (newsletter/locale/<lang>/LC_MESSAGES/messages.po),
so a string added to a template without a translation shows up here.
"""

from __future__ import annotations

import html as htmllib
import re
from functools import lru_cache

from babel.messages.pofile import read_po

from .demo import REPO

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def visible_text(html: str) -> str:
    """Text nodes plus the attributes a reader meets (alt, title, aria-label, placeholder), one-spaced."""
    body = re.sub(r"<style.*?</style>|<!--.*?-->", " ", html, flags=re.S)
    attrs = " ".join(re.findall(r'(?:alt|title|aria-label|placeholder)="([^"]*)"', body))
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", body) + " " + attrs).split())


@lru_cache(maxsize=8)
def _pieces(lang: str) -> tuple[str, ...]:
    with (REPO / "newsletter" / "locale" / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalogue = read_po(fh, locale=lang)
    found = []
    for m in catalogue:
        if not m.id or m.string == m.id:  # the same word in both languages ("Podcast")
            continue
        for piece in PLACEHOLDER.split(m.id):
            piece = " ".join(piece.split()).strip(" .,;:?[]()")
            if len(piece) >= 4 and piece not in m.string:  # "Archive" is in "Archives"
                found.append(piece)
    return tuple(found)


def english_left(text: str, lang: str) -> list[str]:
    """The English interface strings (whole words) that `text` still holds although `lang` translates them."""
    flat = " ".join(text.split())
    return [p for p in _pieces(lang) if re.search(rf"(?<!\w){re.escape(p)}(?!\w)", flat)]
