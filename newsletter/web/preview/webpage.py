"""The web archive's page of an edition rendered in memory for the preview (nothing written to site/)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ...config import Settings
from ...edition import Story
from ..site import edition_page, stylesheet, web_edition


def web_page_html(settings: Settings, manifest: Mapping[str, Any], stories: Sequence[Story]) -> str:
    """What `newsletter build` would write to `site/editions/<date>/index.html`, styled from /site-assets/."""
    warnings: list[str] = []
    edition = web_edition(settings, manifest, {s.id: s for s in stories}, warnings)
    if edition is None:
        return "<!doctype html><title>No web page</title><p>" + html.escape("; ".join(warnings))
    return edition_page(settings, edition, assets="/site-assets/")


def site_stylesheet(settings: Settings) -> str:
    """The archive's stylesheet with the newsletter's palette (re-read on every request: live edits)."""
    return stylesheet(settings)
