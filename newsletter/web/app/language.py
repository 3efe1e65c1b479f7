"""Which language edition a visitor of the public app reads its pages (and confirmation email) in.

In order: the `?lang=` query parameter (links from a language edition carry it), the sign-up form's
hidden `lang` field, the browser's Accept-Language matched against `[list] languages`, else the list's
default (first) language. A value naming no edition of the list is ignored, never an error.
"""

from __future__ import annotations

from ...config import Settings, primary_language


def _match(tag: str, languages: tuple[str, ...]) -> str | None:
    """The edition for `tag` (exact, else the same primary language), or None when the list has none."""
    wanted = tag.replace("_", "-").strip().lower()
    if not wanted or wanted == "*":
        return None
    for lang in languages:
        if lang.lower() == wanted:
            return lang
    primary = primary_language(wanted)
    return next((lang for lang in languages if primary_language(lang) == primary), None)


def accept_language(header: str, languages: tuple[str, ...]) -> str | None:
    """The best edition for an Accept-Language header (RFC 9110 q-values; q=0 means "not this"), or None."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag))
    for _, _, tag in sorted(ranked):
        found = _match(tag, languages)
        if found is not None:
            return found
    return None


def pick_language(settings: Settings, query: str | None, form: str | None, accept: str | None) -> str:
    """The language edition to answer in (see the module docstring); always one of `settings.languages`."""
    for candidate in (query, form):
        found = _match(str(candidate or "")[:35], settings.languages)
        if found is not None:
            return found
    return accept_language(accept or "", settings.languages) or settings.languages[0]
