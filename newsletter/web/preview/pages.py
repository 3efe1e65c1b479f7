"""The preview's pages: the newest edition, the list of editions, and each edition's tabs (the email at
phone and desktop widths, the plain text, the manifest and lint, the web archive's page)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .context import preview_of


def home(request: Request) -> Response:
    """`/`: the newest edition as subscribers get it (the list of editions while there is none)."""
    preview = preview_of(request)
    newest = preview.previewer.newest()
    if newest is None:
        return index(request)
    view = preview.previewer.edition(newest)
    return preview.page("edition_email.html", **preview.edition_context(view, request, "email", home=True))


def index(request: Request) -> Response:
    """`/editions/`: every edition (and language edition), its stories, subject, size, last built."""
    preview = preview_of(request)
    previewer = preview.previewer
    overview = previewer.overview()
    languages = previewer.settings.languages
    multilingual = previewer.settings.multilingual
    rows = []
    for day in overview.dates:
        for lang in previewer.languages(day) if multilingual else [""]:
            lang = "" if lang == languages[0] else lang
            view = previewer.edition(day, viewed=False, language=lang)
            rows.append(
                {
                    "view": view,
                    "outbox": previewer.outbox_state(view) if view.build else None,
                    "lang": (lang or languages[0]) if multilingual else "",
                    "q": f"?lang={lang}" if lang else "",
                }
            )
    return preview.page("index.html", overview=overview, rows=rows)


def edition_page(request: Request) -> Response:
    preview = preview_of(request)
    view = preview.view_of(request)
    return preview.page("edition_email.html", **preview.edition_context(view, request, "email"))


def text_page(request: Request) -> Response:
    preview = preview_of(request)
    view = preview.view_of(request)
    return preview.page("edition_text.html", **preview.edition_context(view, request, "text"))


def manifest_page(request: Request) -> Response:
    preview = preview_of(request)
    view = preview.view_of(request)
    return preview.page("edition_manifest.html", **preview.edition_context(view, request, "manifest"))


def web_page(request: Request) -> Response:
    preview = preview_of(request)
    view = preview.view_of(request)
    src = f"/editions/{view.day.isoformat()}/web.html?v={view.version}&lang={view.language}"
    return preview.page("edition_web.html", **preview.edition_context(view, request, "web"), web_src=src)


routes = [
    Route("/", home),
    Route("/editions/", index),
    Route("/editions/{day}/", edition_page),
    Route("/editions/{day}/text", text_page),
    Route("/editions/{day}/manifest", manifest_page),
    Route("/editions/{day}/web", web_page),
]
