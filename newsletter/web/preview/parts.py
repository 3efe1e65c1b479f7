"""Pieces the preview app is assembled from: dark-mode emulation, the live-reload hub, page templates,
and small formatting helpers."""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from ...config import Settings

_DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.I)
_LIGHT_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", re.I)
# Gmail's and Outlook's apps darken an email without dark styles by inverting its lightness; this is
# the usual approximation of it (hue kept, photos turned back).
_INVERT = (
    '<style id="preview-dark">html{background:#fff;filter:invert(1) hue-rotate(180deg)}'
    "img,video,picture{filter:invert(1) hue-rotate(180deg)}</style>"
)


# The email's own colour-scheme declarations (meta tags and the CSS property) that name both schemes.
_SCHEME_META = re.compile(
    r"""((?:<meta\s+name=["'](?:color-scheme|supported-color-schemes)["']\s+content=["']|"""
    r"""(?:supported-color-schemes|color-scheme):\s*))light dark(["';\s}])""",
    re.I,
)


def has_dark_styles(html: str) -> bool:
    return bool(_DARK_QUERY.search(html))


def dark_variant(html: str) -> str:
    """The email as a client in dark mode shows it.

    With its own `prefers-color-scheme: dark` rules, those rules apply (Apple Mail, iOS); without, the
    colours are inverted the way Gmail's and Outlook's apps do it.
    """
    if has_dark_styles(html):
        return scheme_variant(html, "dark")
    head_end = html.lower().find("</head>")
    return html[:head_end] + _INVERT + html[head_end:] if head_end >= 0 else _INVERT + html


def scheme_variant(html: str, scheme: str) -> str:
    """The email as a client whose reader chose `scheme` ("light" or "dark") shows it, whatever the scheme
    of the browser showing the preview: `prefers-color-scheme` is settled in the email's own style sheet
    (always-true and never-true media conditions, so `and (max-width: …)` parts keep their meaning, at
    every width) and its `color-scheme` declarations name that one scheme."""
    on, off = (_DARK_QUERY, _LIGHT_QUERY) if scheme == "dark" else (_LIGHT_QUERY, _DARK_QUERY)
    html = off.sub("(max-width: 0px)", on.sub("(min-width: 0px)", html))
    html = _SCHEME_META.sub(rf"\g<1>{scheme}\g<2>", html)
    extra = f'<meta name="color-scheme" content="{scheme}">'
    head_end = html.lower().find("</head>")
    return html[:head_end] + extra + html[head_end:] if head_end >= 0 else extra + html


def smtp_configured(settings: Settings) -> bool:
    return bool(settings.section("smtp").get("url") or os.environ.get("NEWSLETTER_SMTP__URL"))


def kb(n: int) -> str:
    return f"{n / 1000:.1f} KB"


@dataclass(frozen=True)
class Notice:
    level: str  # "ok" | "error"
    text: str


class Hub:
    """The open event streams; used from the event loop only."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[str | None]] = set()
        self.closed = False

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(None)
        self.queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self.queues.discard(queue)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        message = f"event: {event}\ndata: {json.dumps(data)}\n\n"
        for queue in self.queues:
            queue.put_nowait(message)

    def close(self) -> None:
        """End every stream, so the server can stop without waiting for browsers to hang up."""
        self.closed = True
        for queue in self.queues:
            queue.put_nowait(None)


def page_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("newsletter.web.preview", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["kb"] = kb
    env.filters["percent"] = lambda v: f"{v:.0%}"
    env.filters["clock"] = lambda t: datetime.fromtimestamp(t).strftime("%H:%M:%S") if t else "—"
    env.filters["utc"] = utc_text
    return env


def mailing_state(settings: Settings) -> dict[str, Any]:
    """Whether the send-test form can work, and if not, the one line that says why."""
    if not smtp_configured(settings):
        return {
            "enabled": False,
            "why": "no SMTP server is configured. Set [smtp] url in newsletter.toml or the NEWSLETTER_SMTP__URL "
            "environment variable (e.g. smtp://127.0.0.1:1025); this page updates when newsletter.toml is saved.",
        }
    try:
        from ...delivery import send_test  # noqa: F401
    except ImportError:
        return {"enabled": False, "why": "this version of newsletter cannot send yet (no mailing module)."}
    return {"enabled": True, "why": ""}


def secret_ready() -> bool:
    from ...delivery import SECRET_ENV

    return bool(os.environ.get(SECRET_ENV, "").strip())


def shown_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def utc_text(value: str) -> str:
    """An ISO timestamp from a manifest, shown as `YYYY-MM-DD HH:MM UTC`."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
