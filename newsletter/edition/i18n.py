"""Reader-visible words in the edition's language: gettext catalogues, read with Babel.

The catalogues are the `.po` files under `newsletter/locale/<lang>/LC_MESSAGES/messages.po` (they ship
in the wheel). They are compiled in memory the first time a language is used, so there is no build
step to forget and a translator's edit shows at the next build. English is the source language: a
string missing from a catalogue — or a language without one — is shown in English, never empty.

Maintainers refresh the catalogues with `pybabel` (docs/languages.md, "Translations").
"""

from __future__ import annotations

import gettext
import io
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from ..errors import ConfigError

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur", "ps", "yi", "dv", "ckb", "sd", "ug"})


def N_(message: str) -> str:
    """Mark a string for extraction without translating it yet (translated where it is shown)."""
    return message


def catalogue_path(language: str) -> Path | None:
    """The `.po` file for `language` (`fr-CA` falls back to `fr`), or None when there is none."""
    tag = language.replace("-", "_")
    for candidate in (tag, tag.split("_", 1)[0]):
        path = LOCALE_DIR / candidate / "LC_MESSAGES" / f"{DOMAIN}.po"
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=32)
def translations(language: str) -> gettext.NullTranslations:
    """The gettext translations for `language`; untranslated and fuzzy entries fall back to English."""
    path = catalogue_path(language)
    if path is None:
        return gettext.NullTranslations()
    try:
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=language.replace("-", "_"), domain=DOMAIN)
    except Exception as exc:  # a broken catalogue is a packaging error: say which file
        raise ConfigError(f"{path}: cannot read the catalogue ({exc})") from None
    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # leaves out fuzzy and empty translations: they show in English
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def text_direction(language: str) -> str:
    """`rtl` for the right-to-left scripts' languages, else `ltr`."""
    return "rtl" if language.replace("_", "-").split("-")[0].lower() in RTL_LANGUAGES else "ltr"


def language_name(language: str) -> str:
    """The language's own name for itself (`fr` → `français`), for people choosing an edition."""
    try:
        return Locale.parse(language.replace("-", "_")).get_display_name() or language
    except (UnknownLocaleError, ValueError):
        return language


# The default `tagline` (config.DEFAULTS), so the demo's masthead speaks each edition's language.
DEFAULT_TAGLINE = N_("Essential international news, every morning")
