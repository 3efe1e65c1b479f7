"""The plain-text alternative, from the same context as the HTML and its own Jinja template.

Written for a terminal and for the readers who prefer text: lines of at most 72 columns (wide CJK
characters count as two), headings set off by rules, and every link a numbered reference listed under its
story. A URL longer than a line stays whole on a line of its own: a broken URL cannot be clicked.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import jinja2

from .plain import WIDTH, References, blocks_to_text
from .templates import TEXT_TEMPLATE, render_template


def render_text(env: jinja2.Environment, context: dict[str, Any], root: Path) -> str:
    """Render the text template with the HTML context plus each story's text body and references."""
    refs = References()
    ctx = dict(context)

    def prepare(story: dict[str, Any]) -> dict[str, Any]:
        body, used = blocks_to_text(story["excerpt_blocks"], refs, WIDTH)
        links = []
        if story["show_read_more"]:
            n = refs.number(story["read_more_url"])
            links.append((story["read_more_label"], n))
            used.append(n)
        return {
            **story,
            "text_body": body,
            "text_links": links,
            "references": [(n, refs.urls[n - 1]) for n in dict.fromkeys(used)],
        }

    ctx["lead"] = prepare(context["lead"])
    ctx["sections"] = [{**s, "stories": [prepare(st) for st in s["stories"]]} for s in context["sections"]]
    ctx["more"] = [prepare(st) for st in context["more"]]
    text = render_template(env, TEXT_TEMPLATE, ctx, root)
    text = _tidy(text)
    return right_to_left(text) if context.get("dir") == "rtl" else text


_RLM = "\u200f"  # RIGHT-TO-LEFT MARK: invisible, a strong right-to-left character


def right_to_left(text: str) -> str:
    """Make every line of a right-to-left edition read right to left in a plain-text mail client.

    Clients pick each line's direction from its first strong character (Unicode's rule), so a line that
    begins with a Latin name or a number ("FRANCE 24 · 5:00 ص", the masthead) would be set left to right
    with its Arabic words in the wrong order. Such lines start with an RLM; a URL on a line of its own
    stays as it is (it is read, and clicked, left to right).
    """
    out = []
    for line in text.split("\n"):
        if line.strip() and not line.lstrip().startswith(("http://", "https://")) and _first_strong(line) == "L":
            line = _RLM + line
        out.append(line)
    return "\n".join(out)


def _first_strong(line: str) -> str:
    for ch in line:
        kind = unicodedata.bidirectional(ch)
        if kind == "L":
            return "L"
        if kind in ("R", "AL"):
            return "R"
    return ""


def _tidy(text: str) -> str:
    lines = [ln.rstrip() for ln in text.replace("\r", "").split("\n")]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return out + "\n"
