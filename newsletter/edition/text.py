"""The plain-text alternative, from the same context as the HTML and its own Jinja template.

Written for a terminal and for the readers who prefer text: lines of at most 72 columns (wide CJK
characters count as two), headings set off by rules, and every link a numbered reference listed under its
story. A URL longer than a line stays whole on a line of its own: a broken URL cannot be clicked.
"""

from __future__ import annotations

import re
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
    return _tidy(text)


def _tidy(text: str) -> str:
    lines = [ln.rstrip() for ln in text.replace("\r", "").split("\n")]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return out + "\n"
