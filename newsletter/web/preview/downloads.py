"""An edition's parts as files: the HTML email (light or dark, as a client in that mode shows it), the
web archive's page, the `.eml`, the plain text, the MJML and the manifest. Each needs a built edition."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ...edition import Build, render_mjml
from .context import preview_of
from .parts import dark_variant, scheme_variant
from .security import EMAIL_CSP
from .state import EditionView
from .webpage import local_images, web_response

_NO_STORE = {"Cache-Control": "no-store"}


def _built(request: Request) -> tuple[EditionView, Build]:
    view = preview_of(request).view_of(request, require_build=True)
    assert view.build is not None  # view_of answered 404 otherwise
    return view, view.build


def web_html(request: Request) -> Response:
    return web_response(preview_of(request).view_of(request, require_build=True))


def email_html(request: Request) -> Response:
    """`?scheme=dark|light`: the email as a client in that colour scheme shows it. Its photos and logo
    come from this machine's `site/images/` (they show before the site is deployed); the `.eml` and
    every message sent keep their links under base_url."""
    _, build = _built(request)
    html = local_images(build.rendered.html, build.settings)
    scheme = request.query_params.get("scheme")
    if scheme == "dark":
        html = dark_variant(html)
    elif scheme == "light":
        html = scheme_variant(html, "light")
    headers = {"Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN", **_NO_STORE}
    return HTMLResponse(html, headers=headers)


def eml(request: Request) -> Response:
    view, build = _built(request)
    name = f"newsletter-{view.day.isoformat()}" + (f"-{view.language}" if view.language else "")
    headers = {"Content-Disposition": f'attachment; filename="{name}.eml"', **_NO_STORE}
    return Response(build.eml, media_type="message/rfc822", headers=headers)


def mjml(request: Request) -> Response:
    """The edition's MJML (what `newsletter build --mjml` writes), to open in MJML's own tools."""
    view, build = _built(request)
    source = render_mjml(build.settings, build.rendered.context)
    headers = {"Content-Disposition": f'attachment; filename="newsletter-{view.day.isoformat()}.mjml"', **_NO_STORE}
    return Response(source, media_type="text/plain; charset=utf-8", headers=headers)


def text_raw(request: Request) -> Response:
    _, build = _built(request)
    return PlainTextResponse(build.rendered.text, headers=_NO_STORE)


def manifest_json(request: Request) -> Response:
    _, build = _built(request)
    return JSONResponse(build.manifest, headers=_NO_STORE)


routes = [
    Route("/editions/{day}/web.html", web_html),
    Route("/editions/{day}/email.html", email_html),
    Route("/editions/{day}/newsletter.eml", eml),
    Route("/editions/{day}/newsletter.txt", text_raw),
    Route("/editions/{day}/newsletter.mjml", mjml),
    Route("/editions/{day}/manifest.json", manifest_json),
]
