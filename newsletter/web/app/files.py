"""The app's own files and fallbacks: `/healthz`, the stylesheet, the static archive (with `--site`), 404.

The archive is served from its folder only: a path is resolved and must stay inside it, name no hidden
file, and hold nothing a file name cannot (a NUL never gets this far: `guards.RequestShape`); anything
else is the archive's own 404 page, in the language of the folder asked for.
"""

from __future__ import annotations

from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ...config import Settings
from ..site import stylesheet
from ..site.model import base_path
from .context import context_of


async def healthz(request: Request) -> Response:
    try:
        await run_in_threadpool(context_of(request).store.get, "healthz@healthz.invalid")
    except Exception as exc:  # the probe reports any failure, it does not crash
        return PlainTextResponse(f"store unavailable: {type(exc).__name__}\n", 503)
    return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})


def not_found(request: Request) -> Response:
    ctx = context_of(request)
    lang = ctx.language_of(request)
    _ = ctx.texts[lang]
    return ctx.message(lang, 404, _("Page not found"), _("There is nothing at this address."))


def _archive_file(root: Path, rel: str) -> Path | None:
    for candidate in (root / rel, root / rel / "index.html"):
        try:
            path = candidate.resolve()
            if path.is_file() and path.is_relative_to(root) and not any(p.startswith(".") for p in path.parts):
                return path
        except (OSError, RuntimeError, ValueError):  # too long, a loop, a character no file name has
            continue
    return None


class Archive:
    """The static archive in `site`, under the path of `base_url`."""

    def __init__(self, settings: Settings, site: Path) -> None:
        self.root = site.resolve()
        self.prefix = base_path(settings)
        self.languages = settings.languages

    def respond(self, request: Request) -> Response:
        rel = request.url.path.removeprefix(self.prefix).strip("/")
        found = _archive_file(self.root, rel)
        if found is not None:
            return FileResponse(found)
        first = rel.split("/", 1)[0]
        missing = self.root / first / "404.html" if first in self.languages else self.root / "404.html"
        if not missing.is_file():
            missing = self.root / "404.html"
        if missing.is_file():
            return FileResponse(missing, status_code=404, media_type="text/html")
        return PlainTextResponse("Not found.\n", 404)


def routes(settings: Settings) -> list[BaseRoute]:
    css_text = stylesheet(settings)

    def css(request: Request) -> Response:
        return Response(css_text, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/assets/site.css", css, methods=["GET", "HEAD"]),
    ]


def fallback(settings: Settings, site: Path | None) -> BaseRoute:
    """The catch-all after every other route: the archive, or a 404 page."""
    endpoint = Archive(settings, site).respond if site is not None else not_found
    return Route("/{path:path}", endpoint, methods=["GET", "HEAD"])
