"""The web archive's page of an edition rendered in memory for the preview (nothing written to site/)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ...config import Settings
from ...edition import Story
from ..site import edition_page, site_dir, stylesheet, web_edition
from .security import WEB_CSP
from .state import EditionView, Previewer


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
    html = local_images(
        web_page_html(view.build.settings, view.build.manifest, view.build.edition.stories), view.build.settings
    )
    headers = {"Content-Security-Policy": WEB_CSP, "Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN"}
    return HTMLResponse(html, headers=headers)


PHOTOS = "/site-images/"  # where the preview serves `site/images/`


def local_images(page: str, settings: Settings) -> str:
    """`page` with its published photos (`<base_url>/images/…`) taken from this machine's `site/images/`,
    so the preview shows them before the site is deployed."""
    return page.replace(f"{settings.base_url.rstrip('/')}/images/", PHOTOS)


def site_routes(previewer: Previewer) -> list[BaseRoute]:
    """What the archive's pages load: its stylesheet (made on every request: live edits) and the photos
    of `site/images/`."""
    photos = StaticFiles(directory=site_dir(previewer.settings) / "images", check_dir=False)
    return [
        Route("/site-assets/site.css", lambda request: css_response(previewer.settings)),
        Mount(PHOTOS.rstrip("/"), photos, name="photos"),
    ]


def css_response(settings: Settings) -> Response:
    """The archive's stylesheet with the newsletter's palette (made on every request: live edits)."""
    return Response(stylesheet(settings), media_type="text/css", headers={"Cache-Control": "no-store"})
