"""The web archive's page of an edition rendered in memory for the preview (nothing written to site/)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import HTMLResponse, Response

from ...config import Settings
from ...edition import Story
from ..site import edition_page, stylesheet, web_edition
from .security import WEB_CSP
from .state import EditionView


def web_page_html(settings: Settings, manifest: Mapping[str, Any], stories: Sequence[Story]) -> str:
    """What `newsletter build` would write to `site/editions/<date>/index.html`, styled from /site-assets/."""
    warnings: list[str] = []
    edition = web_edition(settings, manifest, {s.id: s for s in stories}, warnings)
    if edition is None:
        return "<!doctype html><title>No web page</title><p>" + html.escape("; ".join(warnings))
    return edition_page(settings, edition, assets="/site-assets/")


def web_response(view: EditionView) -> HTMLResponse:
    """The edition's web page, framed by the preview only, with no script."""
    assert view.build is not None
    html = web_page_html(view.build.settings, view.build.manifest, view.build.edition.stories)
    headers = {"Content-Security-Policy": WEB_CSP, "Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN"}
    return HTMLResponse(html, headers=headers)


def css_response(settings: Settings) -> Response:
    """The archive's stylesheet with the newsletter's palette (made on every request: live edits)."""
    return Response(stylesheet(settings), media_type="text/css", headers={"Cache-Control": "no-store"})
