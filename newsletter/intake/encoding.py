"""Text of documents whose charset is missing or wrong, and a check that what we read is not mojibake.

Feeds and pages declare UTF-8 and are KOI8-R, Shift-JIS, EUC-JP or windows-1255; or declare latin-1
and are UTF-8. Bytes that are valid UTF-8 are UTF-8 (another encoding producing valid UTF-8 by chance
is vanishingly rare beyond a few bytes); otherwise a declared charset is tried and, when it fails or
gives garbage, charset-normalizer guesses. Whatever comes out is checked with charset-normalizer's
"mess" measure (and for UTF-8 read as windows-1252, "Ã©"): a text that still looks like mojibake is
an error, not a story.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer
from charset_normalizer.md import mess_ratio

from ..errors import IntakeError

_XML_DECL = re.compile(rb"""^(\s*<\?xml[^>]*?encoding\s*=\s*["'])([A-Za-z0-9._:-]+)(["'])""")
# UTF-8 read as windows-1252 / latin-1: "Ã©", "Ã¼", "â€™" …
_UTF8_AS_LATIN = re.compile(r"Ã[\u0080-\u00bf]|â€[\u0080-\u00bf™œ\u009d“”˜]|Â[\u00a0-\u00bf]")
_MESS_LIMIT = 0.2  # charset-normalizer's own threshold for "this decoding is wrong"
_SAMPLE = 20_000


_SHOWN = {
    "cp932": "Shift-JIS",
    "shift_jis": "Shift-JIS",
    "shift_jis_2004": "Shift-JIS",
    "euc_jp": "EUC-JP",
    "euc_jis_2004": "EUC-JP",
    "utf-8": "UTF-8",
}


def shown(name: str) -> str:
    """A charset as people write it: 'cp1255' → 'windows-1255', 'koi8-r' → 'KOI8-R'."""
    if name in _SHOWN:
        return _SHOWN[name]
    if re.fullmatch(r"cp125\d", name):
        return "windows-" + name[2:]
    if name.startswith("iso8859-"):
        return "ISO-8859-" + name[8:]
    return name.upper().replace("_", "-") if not name.startswith(("iso", "windows")) else name


def canonical(name: str | None) -> str | None:
    """Python's name for a charset label ('UTF8' → 'utf-8'), None when unknown."""
    if not name:
        return None
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        return None


def xml_as_utf8(data: bytes, declared: str | None, source: str) -> tuple[bytes, str | None]:
    """An XML document as UTF-8 bytes declaring UTF-8, and a warning when its declaration was wrong.

    `declared` is the HTTP charset, if any. Documents that are valid UTF-8, or valid in the charset
    they declare and readable in it, are returned as they are.
    """
    try:
        data.decode("utf-8")
        return data, None
    except UnicodeDecodeError:
        pass
    match = _XML_DECL.match(data[:200])
    label = declared or (match.group(2).decode("ascii") if match else None)
    name = canonical(label) or "utf-8"  # XML without a declaration is UTF-8 by definition
    if name != "utf-8":
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            text = ""
        if text and not looks_garbled(text):
            return data, None
    guess = _guess(data)
    if guess is None:
        raise IntakeError(
            f"{source}: declared {label or 'UTF-8'} but is not, and its real encoding could not be recognised; "
            "nothing imported"
        )
    encoding, text = guess
    body = text.encode("utf-8")
    if match:
        body = _XML_DECL.sub(rb"\1utf-8\3", body, count=1)
    return body, f"{source}: declared {label or 'UTF-8'} but is {shown(encoding)}; read as {shown(encoding)}"


def html_text(data: bytes, declared: list[str | None]) -> tuple[str, str | None]:
    """The text of an HTML page, and the encoding used when it was not UTF-8 or the first declared one."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    for label in declared:
        name = canonical(label)
        if name and name != "utf-8":
            try:
                text = data.decode(name)
            except UnicodeDecodeError:
                continue
            if not looks_garbled(text):
                return text, None
    guess = _guess(data)
    if guess is not None:
        return guess[1], guess[0]
    # What browsers assume for an unlabelled Western page; the garbling check decides if it is usable.
    return data.decode("cp1252", errors="replace"), "windows-1252"


def looks_garbled(text: str) -> bool:
    """True when `text` reads like a wrong decoding: symbols and accents where letters should be."""
    sample = text[:_SAMPLE]
    letters = sum(c.isalpha() for c in sample)
    if not letters:
        return False
    if sample.count("\ufffd") > max(3, letters // 100):
        return True
    if len(_UTF8_AS_LATIN.findall(sample)) >= 3:
        return True
    return mess_ratio(sample, _MESS_LIMIT) >= _MESS_LIMIT


def refuse_garbled(texts: list[str], source: str) -> None:
    """Raise when the imported texts look like mojibake: a garbled story is worse than none."""
    joined = " ".join(t for t in texts if t)
    if looks_garbled(joined):
        sample = next((t for t in texts if t and looks_garbled(t)), joined)[:60]
        raise IntakeError(
            f"{source}: the text looks garbled ({sample!r}…): the document's encoding is wrong and could not be "
            "recognised; nothing imported"
        )


def _guess(data: bytes) -> tuple[str, str] | None:
    best = charset_normalizer.from_bytes(data[: _SAMPLE * 4]).best()
    if best is None or not best.encoding:
        return None
    try:
        text = data.decode(best.encoding)
    except (LookupError, UnicodeDecodeError):
        return None
    if looks_garbled(text):
        return None
    return codecs.lookup(best.encoding).name, text
