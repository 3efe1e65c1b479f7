"""Plain-text layout: display widths, wrapping at 72 columns, numbered link references, Markdown blocks
as text, and the Jinja filters the text template uses."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import jinja2
from markdown_it.token import Token

from ..textutil import clean_url

WIDTH = 72
_TAGS = re.compile(r"<[^>]*>")
_RAW_LINK = re.compile(r"""<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_RAW_LINK_END = re.compile(r"</a\s*>", re.I)


def display_width(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(_char_width(c) for c in text)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or ch in "\u200b\u200c\u200d\u200e\u200f\ufeff":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def breaks_anywhere(ch: str) -> bool:
    """CJK ideographs, kana, hangul and their punctuation: lines may break between any two of them.

    Emoji are wide too but must not be split (a ZWJ family or a flag is several code points)."""
    return _char_width(ch) == 2 and unicodedata.category(ch) in ("Lo", "Po", "Ps", "Pe", "Lm")


def _pieces(text: str) -> list[str]:
    """Words, with each CJK character a piece of its own. A piece starting with NUL joins the one
    before it without a space (it was part of the same word)."""
    if text.isascii():
        return text.split()
    out: list[str] = []
    for word in text.split():
        if not any(breaks_anywhere(c) for c in word):
            out.append(word)
            continue
        parts: list[str] = []
        buf = ""
        for ch in word:
            if breaks_anywhere(ch):
                if buf:
                    parts.append(buf)
                    buf = ""
                parts.append(ch)
            else:
                buf += ch
        if buf:
            parts.append(buf)
        out.append(parts[0])
        out.extend("\x00" + p for p in parts[1:])
    return out


def _split_long(pieces: list[str], room: int) -> list[str]:
    """Pieces wider than `room` columns cut between characters (a combining mark or a ZWJ sequence stays
    whole), each part glued to the one before it like CJK pieces."""
    out: list[str] = []
    for piece in pieces:
        if display_width(piece.lstrip("\x00")) <= room:
            out.append(piece)
            continue
        glue = "\x00" if piece.startswith("\x00") else ""
        parts: list[str] = []
        for ch in piece.lstrip("\x00"):
            if parts and (_char_width(ch) == 0 or parts[-1].endswith("\u200d")):
                parts[-1] += ch
            else:
                parts.append(ch)
        out.append(glue + parts[0])
        out.extend("\x00" + p for p in parts[1:])
    return out


def wrap(
    text: str, width: int = WIDTH, indent: str = "", subsequent: str | None = None, *, break_long: bool = False
) -> str:
    """Fill `text` to `width` display columns; never splits a word or URL (CJK splits between characters),
    unless `break_long`: then a word too wide for a line is cut wherever the line ends."""
    if not indent and "\x00" not in text and display_width(text) <= width and text == " ".join(text.split()):
        return text  # one line already (a greeting, a heading): what `_fill` would give back
    return _fill(text, width, indent, subsequent, break_long)


def _fill(text: str, width: int, indent: str, subsequent: str | None, break_long: bool) -> str:
    subsequent = indent if subsequent is None else subsequent
    lines: list[str] = []
    line, line_w = indent, display_width(indent)
    fresh = True
    pieces = _pieces(text)
    if break_long:
        pieces = _split_long(pieces, width - max(display_width(indent), display_width(subsequent)))
    for piece in pieces:
        glue = "" if piece.startswith("\x00") or fresh else " "
        piece = piece.lstrip("\x00")
        w = display_width(piece)
        if not fresh and line_w + len(glue) + w > width:
            lines.append(line.rstrip())
            line, line_w, glue = subsequent, display_width(subsequent), ""
        line += glue + piece
        line_w += len(glue) + w
        fresh = False
    if not fresh:
        lines.append(line.rstrip())
    return "\n".join(lines)


def underline(text: str, char: str = "-") -> str:
    return char * min(display_width(text), WIDTH)


def center(text: str, width: int = WIDTH) -> str:
    pad = max(0, (width - display_width(text)) // 2)
    return " " * pad + text


class References:
    """Numbers the links of an edition in reading order; the same URL keeps its number."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def number(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1


def blocks_to_text(blocks: Iterable[Any], refs: References, width: int = WIDTH) -> tuple[str, list[int]]:
    """Plain text of body blocks, links as [n]; also the reference numbers used, in order."""
    used: list[int] = []
    paragraphs = [_block_text(list(b.tokens), refs, used, width) for b in blocks]
    return "\n\n".join(p for p in paragraphs if p.strip()), used


def _inline_text(children: Sequence[Token], refs: References, used: list[int]) -> str:
    out: list[str] = []
    href_stack: list[str | None] = []
    for tok in children:
        if tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type == "softbreak":
            out.append(" ")
        elif tok.type == "hardbreak":
            out.append("\n")
        elif tok.type == "link_open":
            href = str(tok.attrs.get("href", ""))
            href_stack.append(href if href.startswith(("http://", "https://", "mailto:")) else None)
        elif tok.type == "link_close":
            target = href_stack.pop() if href_stack else None
            if target:
                n = refs.number(target)
                used.append(n)
                out.append(f" [{n}]")
        elif tok.type == "image":
            alt = "".join(c.content for c in tok.children or [])
            if alt:
                out.append(f"[image: {alt}]")
        elif tok.type == "html_inline":
            # Raw <a href> in a story body: numbered like a Markdown link (other inline tags drop out).
            opening = _RAW_LINK.match(tok.content)
            if opening:
                raw = html.unescape(next(g for g in opening.groups() if g is not None))
                try:
                    href_stack.append(clean_url(raw, schemes=("http", "https", "mailto")))
                except ValueError:
                    href_stack.append(None)
            elif _RAW_LINK_END.match(tok.content) and href_stack:
                target = href_stack.pop()
                if target:
                    n = refs.number(target)
                    used.append(n)
                    out.append(f" [{n}]")
    return "".join(out)


def _block_text(tokens: list[Token], refs: References, used: list[int], width: int) -> str:
    lines: list[str] = []
    prefix_stack: list[str] = []  # per open container: "> " for quotes, list markers
    list_counters: list[int | None] = []
    pending_marker: str | None = None
    for tok in tokens:
        if tok.type == "blockquote_open":
            prefix_stack.append("> ")
        elif tok.type == "blockquote_close":
            prefix_stack.pop()
            lines.append("")
        elif tok.type == "bullet_list_open":
            list_counters.append(None)
        elif tok.type == "ordered_list_open":
            list_counters.append(int(str(tok.attrs.get("start", 1))))
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            list_counters.pop()
            lines.append("")
        elif tok.type == "list_item_open":
            counter = list_counters[-1] if list_counters else None
            if counter is None:
                pending_marker = "* "
            else:
                pending_marker = f"{counter}. "
                list_counters[-1] = counter + 1
            prefix_stack.append(" " * len(pending_marker))
        elif tok.type == "list_item_close":
            prefix_stack.pop()
        elif tok.type == "inline":
            text = _inline_text(tok.children or [], refs, used)
            base = "".join(prefix_stack)
            first = base
            if pending_marker:
                first = base[: len(base) - len(pending_marker)] + pending_marker
                pending_marker = None
            heading = bool(lines) and lines[-1] == "\x01"
            if heading:
                lines.pop()
                text = text.upper()
            for i, part in enumerate(text.split("\n")):
                lines.append(wrap(part, width, first if i == 0 else base, base))
        elif tok.type == "heading_open":
            lines.append("\x01")
        elif tok.type in ("paragraph_close", "heading_close") and not prefix_stack:
            lines.append("")
        elif tok.type in ("code_block", "fence"):
            base = "".join(prefix_stack)
            lines.extend(base + "    " + ln for ln in tok.content.rstrip("\n").split("\n"))
            lines.append("")
        elif tok.type == "hr":
            lines.extend(["-" * 20, ""])
        elif tok.type == "html_block":
            text = html.unescape(_TAGS.sub(" ", tok.content))
            if text.strip():
                lines.append(wrap(" ".join(text.split()), width, "".join(prefix_stack)))
                lines.append("")
    return "\n".join(lines).strip("\n")


# --- untrusted text --------------------------------------------------------------------------------

_ENTITY_LIKE = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_TEMPLATE_LIKE = re.compile(r"(?<=[{%])(?=[{%])|(?<=[}%])(?=[}%])")
_JOINER = "\u2060"  # WORD JOINER: invisible, and no checker reads `&\u2060amp;` or `{\u2060{` as code


def plain(text: str) -> str:
    """Untrusted text (a subscriber's name) as the plain-text part shows it: nothing in it reads as markup.

    It is text already, but `<b>x</b>` in a text part looks like an HTML tag that failed to render, to a
    reader and to spam and quality checkers alike. Angle brackets become their look-alikes ‹ ›; an
    entity (`&amp;`) or template braces (`{{`, `{%`) are broken by an invisible word joiner."""
    if not any(c in text for c in "<>&{}%"):
        return text
    text = text.replace("<", "\u2039").replace(">", "\u203a")
    return _TEMPLATE_LIKE.sub(_JOINER, _ENTITY_LIKE.sub("&" + _JOINER, text))


def personal_line(text: str) -> str:
    """A line holding a subscriber's name (the greeting): made `plain`, then wrapped to the text part's
    width, a name too long for a line cut where the line ends. The mailing stage builds the same line
    per subscriber with this very function (newsletter/delivery/personalize.py)."""
    return wrap(plain(text), break_long=True)


# --- the Jinja side ----------------------------------------------------------------------------------


def install_filters(env: jinja2.Environment) -> None:
    env.filters["wrap"] = wrap
    env.filters["plain"] = plain
    env.filters["personal_line"] = personal_line
    env.filters["underline"] = underline
    env.filters["center"] = center
