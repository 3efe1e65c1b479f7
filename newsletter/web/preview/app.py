"""The preview web app (Starlette): editions rendered in memory, live reload over server-sent events.

Pages                                   what
/                                       the newest edition (the page `newsletter preview` prints)
/editions/                              every edition: date, stories, subject, size, last built
/editions/<date>/                       the HTML email in a frame: widths 320/375/600/full, dark mode
                                        (every edition page takes ?lang=fr for a language edition)
/editions/<date>/text                   the plain-text part
/editions/<date>/manifest               stories, window, sizes against Gmail's 102 KB clip, checks
/editions/<date>/web                    the archive's page of the edition, framed (web.html; photos: /site-images/)
/editions/<date>/email.html             the HTML itself (?scheme=dark|light: as a client in that mode shows it)
/editions/<date>/newsletter.eml|.txt    downloads; manifest.json; newsletter.mjml (for MJML's own tools)
/editions/<date>/send-test   POST       send the edition to one address (CSRF token)
/editions/<date>/write       POST       write the edition to the outbox, like `newsletter build` (CSRF)
/unsubscribe-link?address=   GET        a signed /u/<token> link for an address, to try the flow
/u/<token>                   GET/POST   the mailing stage's unsubscribe handler (RFC 8058)
/events                                 server-sent events: "change" after every rebuild

Every page is rendered by Jinja with autoescaping; story text, file names and error messages are data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from email_validator import EmailNotValidError, validate_email
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from watchfiles import Change

from ...edition import lint_html, lint_text, render_mjml, write_edition
from ...errors import NewsletterError
from . import watcher
from .parts import (
    Hub,
    Notice,
    dark_variant,
    has_dark_styles,
    kb,
    mailing_state,
    page_templates,
    scheme_variant,
    secret_ready,
    shown_path,
    smtp_configured,
)
from .security import EMAIL_CSP, PAGE_CSP, UNSUBSCRIBE_CSP, CsrfGuard, HostGuard, SecurityHeaders, allowed_hosts
from .state import EditionView, Previewer
from .webpage import site_routes, web_response

GMAIL_CLIP = 102 * 1024
WIDTHS = ("320", "375", "600", "full")
_MAX_FORM = 16 * 1024
_MAX_UNSUBSCRIBE_BODY = 64 * 1024
_KEEPALIVE_S = 15.0
_NOTICES = 64


def create_app(
    previewer: Previewer,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    watch: bool = True,
    log: Callable[[str], None] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> Starlette:
    """The ASGI app for `previewer`, answering only to `host:port` under its loopback names.

    `on_ready` is called at startup once the file watches are in place.
    """
    env = page_templates()
    hub = Hub()
    csrf = CsrfGuard()
    hosts = allowed_hosts(host, port)
    boot = secrets.token_hex(4)
    notices: OrderedDict[str, Notice] = OrderedDict()
    say = log or (lambda _line: None)

    def token() -> str:
        """Identifies what the pages show; a browser seeing another value refreshes."""
        return f"{boot}.{previewer.generation}"

    # --- helpers -------------------------------------------------------------------------------------

    def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        overview = context.pop("overview", None) or previewer.overview()
        html = env.get_template(template).render(
            settings=previewer.settings,
            overview=overview,
            generation=token(),
            csrf=csrf.token,
            root=str(previewer.root),
            **context,
        )
        return HTMLResponse(html, status, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"})

    def parse_day(request: Request) -> date:
        text = request.path_params["day"]
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            with contextlib.suppress(ValueError):
                return date.fromisoformat(text)
        raise HTTPException(404, f"{text!r} is not an edition date (YYYY-MM-DD)")

    def parse_lang(request: Request) -> str:
        """`?lang=fr`: one of the list's language editions ("" for the first, the default)."""
        lang = request.query_params.get("lang", "")
        languages = previewer.settings.languages
        if lang and lang not in languages:
            raise HTTPException(404, f"{lang!r} is not one of this newsletter's languages ({', '.join(languages)})")
        return "" if lang == languages[0] else lang

    def view_of(day: date, *, require_build: bool = False, lang: str = "") -> EditionView:
        view = previewer.edition(day, language=lang)
        if view.build is None:
            overview = previewer.overview()
            if require_build or (day not in overview.dates and not overview.problems):
                reason = view.problems[0] if view.problems else "nothing rendered"
                raise HTTPException(404, f"No edition dated {day.isoformat()}: {reason}")
        return view

    def remember(notice: Notice) -> str:
        key = secrets.token_urlsafe(8)
        notices[key] = notice
        while len(notices) > _NOTICES:
            notices.popitem(last=False)
        return key

    def back(day: date, notice: Notice, lang: str = "") -> RedirectResponse:
        which = f"lang={lang}&" if lang else ""
        return RedirectResponse(f"/editions/{day.isoformat()}/?{which}notice={remember(notice)}", status_code=303)

    def edition_context(view: EditionView, request: Request, tab: str, *, home: bool = False) -> dict[str, Any]:
        overview = previewer.overview()
        settings = previewer.settings
        b = view.build
        sizes = b.manifest["sizes"] if b is not None else {}
        day = view.day.isoformat()
        version = view.version
        problems = []
        if b is not None and tab == "manifest":
            problems = lint_html(b.rendered.html, b.rendered.preheader, settings.html_budget) + lint_text(
                b.rendered.text
            )
        dates = list(overview.dates)
        if view.day not in dates:
            dates = sorted({*dates, view.day}, reverse=True)
        at = dates.index(view.day)
        mailing = mailing_state(settings)
        q = f"?lang={view.language}" if view.language else ""
        lang_param = f"&lang={view.language}" if view.language else ""
        return {
            "q": q,  # the language edition, carried by every link of the page
            "lang": view.language or settings.languages[0],
            "languages": previewer.languages(view.day) if settings.multilingual else [],
            "overview": overview,
            "view": view,
            "build": b,
            "day": day,
            "tab": tab,
            "home": home,
            "sizes": sizes,
            "gmail_used": (sizes.get("html_bytes", 0) / GMAIL_CLIP) if sizes else 0.0,
            "widths": WIDTHS,
            "light_src": f"/editions/{day}/email.html?v={version}&scheme=light{lang_param}",
            "dark_src": f"/editions/{day}/email.html?v={version}&scheme=dark{lang_param}",
            "dark_styles": b is not None and has_dark_styles(b.rendered.html),
            "outbox": previewer.outbox_state(view) if b is not None else None,
            "newer": dates[at - 1].isoformat() if at > 0 else None,
            "older": dates[at + 1].isoformat() if at + 1 < len(dates) else None,
            "notice": notices.get(request.query_params.get("notice", "")),
            "mailing": mailing,
            "lint": problems,
            "unsubscribe_ready": secret_ready(),
        }

    # --- pages ---------------------------------------------------------------------------------------

    def home(request: Request) -> Response:
        newest = previewer.newest()
        if newest is None:
            return index(request)
        return page("edition_email.html", **edition_context(previewer.edition(newest), request, "email", home=True))

    def index(request: Request) -> Response:
        overview = previewer.overview()
        rows = []
        multilingual = previewer.settings.multilingual
        for day in overview.dates:
            for lang in previewer.languages(day) if multilingual else [""]:
                lang = "" if lang == previewer.settings.languages[0] else lang
                view = previewer.edition(day, viewed=False, language=lang)
                rows.append(
                    {
                        "view": view,
                        "outbox": previewer.outbox_state(view) if view.build else None,
                        "lang": (lang or previewer.settings.languages[0]) if multilingual else "",
                        "q": f"?lang={lang}" if lang else "",
                    }
                )
        return page("index.html", overview=overview, rows=rows)

    def edition_page(request: Request) -> Response:
        view = view_of(parse_day(request), lang=parse_lang(request))
        return page("edition_email.html", **edition_context(view, request, "email"))

    def text_page(request: Request) -> Response:
        view = view_of(parse_day(request), lang=parse_lang(request))
        return page("edition_text.html", **edition_context(view, request, "text"))

    def manifest_page(request: Request) -> Response:
        view = view_of(parse_day(request), lang=parse_lang(request))
        return page("edition_manifest.html", **edition_context(view, request, "manifest"))

    def web_page(request: Request) -> Response:
        view = view_of(parse_day(request), lang=parse_lang(request))
        src = f"/editions/{view.day.isoformat()}/web.html?v={view.version}&lang={view.language}"
        return page("edition_web.html", **edition_context(view, request, "web"), web_src=src)

    def web_html(request: Request) -> Response:
        return web_response(view_of(parse_day(request), require_build=True, lang=parse_lang(request)))

    def email_html(request: Request) -> Response:
        view = view_of(parse_day(request), require_build=True, lang=parse_lang(request))
        assert view.build is not None
        html = view.build.rendered.html
        scheme = request.query_params.get("scheme")
        if scheme == "dark":
            html = dark_variant(html)
        elif scheme == "light":
            html = scheme_variant(html, "light")
        return HTMLResponse(
            html,
            headers={
                "Content-Security-Policy": EMAIL_CSP,
                "Cache-Control": "no-store",
                "X-Frame-Options": "SAMEORIGIN",
            },
        )

    def eml(request: Request) -> Response:
        view = view_of(parse_day(request), require_build=True, lang=parse_lang(request))
        assert view.build is not None
        return Response(
            view.build.eml,
            media_type="message/rfc822",
            headers={
                "Content-Disposition": f'attachment; filename="newsletter-{view.day.isoformat()}'
                + (f"-{view.language}" if view.language else "")
                + '.eml"',
                "Cache-Control": "no-store",
            },
        )

    def mjml(request: Request) -> Response:
        """The edition's MJML (what `newsletter build --mjml` writes), to open in MJML's own tools."""
        view = view_of(parse_day(request), require_build=True, lang=parse_lang(request))
        assert view.build is not None
        source = render_mjml(view.build.settings, view.build.rendered.context)
        return Response(
            source,
            media_type="text/plain; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="newsletter-{view.day.isoformat()}.mjml"',
                "Cache-Control": "no-store",
            },
        )

    def text_raw(request: Request) -> Response:
        view = view_of(parse_day(request), require_build=True, lang=parse_lang(request))
        assert view.build is not None
        return PlainTextResponse(view.build.rendered.text, headers={"Cache-Control": "no-store"})

    def manifest_json(request: Request) -> Response:
        view = view_of(parse_day(request), require_build=True, lang=parse_lang(request))
        assert view.build is not None
        return JSONResponse(view.build.manifest, headers={"Cache-Control": "no-store"})

    # --- forms ---------------------------------------------------------------------------------------

    async def form_of(request: Request) -> dict[str, str]:
        """The form fields, after the CSRF and Origin checks (403 otherwise)."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > _MAX_FORM:
            raise HTTPException(413, "form too large")
        form = await request.form(max_files=0, max_fields=20)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        why = csrf.check(fields.get(csrf.field), request.headers.get("origin"), hosts)
        if why:
            raise HTTPException(403, f"Refused: {why}.")
        return fields

    async def write(request: Request) -> Response:
        day, lang = parse_day(request), parse_lang(request)
        await form_of(request)
        view = await run_in_threadpool(lambda: previewer.edition(day, language=lang))
        if view.build is None or not view.ok:
            why = "Not written: the edition has problems (see the banner); fix them first."
            return back(day, Notice("error", why), lang)
        try:
            out = await run_in_threadpool(write_edition, view.build)
        except (OSError, NewsletterError) as exc:
            return back(day, Notice("error", f"Not written: {exc}"), lang)
        say(f"wrote {out}/")
        return back(day, Notice("ok", f"Wrote {out}/ (newsletter.html, .txt, .eml, manifest.json)."), lang)

    async def send_test(request: Request) -> Response:
        day, lang = parse_day(request), parse_lang(request)
        fields = await form_of(request)
        settings = previewer.settings.for_language(lang or previewer.settings.languages[0])
        mailing = mailing_state(settings)
        if not mailing["enabled"]:
            return back(day, Notice("error", f"Not sent: {mailing['why']}"), lang)
        raw = fields.get("address", "").strip()
        try:
            address = validate_email(raw, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            return back(day, Notice("error", f"Not sent: {raw!r} is not a valid address ({exc})."), lang)
        from ...delivery import send_test as deliver

        try:
            done = await run_in_threadpool(deliver, settings, day, address)
        except NewsletterError as exc:
            return back(day, Notice("error", f"Not sent: {exc}"), lang)
        say(f"test send: {done}")
        return back(day, Notice("ok", done), lang)

    def unsubscribe_link(request: Request) -> Response:
        from ...delivery import make_token, secret_from_env

        raw = request.query_params.get("address", "").strip()
        try:
            address = validate_email(raw, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise HTTPException(400, f"{raw!r} is not a valid address ({exc})") from None
        try:
            secret = secret_from_env()
        except NewsletterError as exc:
            raise HTTPException(503, str(exc)) from None
        return RedirectResponse(f"/u/{quote(make_token(secret, previewer.settings.list.id, address))}", 303)

    async def unsubscribe(request: Request) -> Response:
        from ...delivery import handle_request

        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > _MAX_UNSUBSCRIBE_BODY:
                raise HTTPException(413, "request body too large")
            chunks.append(chunk)
        status, html = await run_in_threadpool(
            handle_request,
            previewer.settings,
            request.method,
            request.path_params["token"],
            b"".join(chunks),
            request.headers.get("content-type"),
        )
        headers = {"Content-Security-Policy": UNSUBSCRIBE_CSP, "Cache-Control": "no-store"}
        if status == 405:
            headers["Allow"] = "GET, HEAD, POST"
        if request.method == "POST" and status == 200:
            say(f"unsubscribe: recorded ({status})")
        return HTMLResponse(html, status, headers=headers)

    # --- live reload ---------------------------------------------------------------------------------

    async def events(request: Request) -> Response:
        queue = hub.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                # retry: reconnect quickly after a restart of the server.
                yield f"retry: 500\nevent: hello\ndata: {json.dumps({'generation': token()})}\n\n"
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), timeout=_KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if message is None:
                        return
                    yield message
            finally:
                hub.unsubscribe(queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def on_change(changes: set[tuple[Change, str]]) -> None:
        started = time.perf_counter()
        await run_in_threadpool(previewer.changed)
        # Browsers refetch at once; each request renders what its page shows. Then the editions looked
        # at lately are rendered (if no request did it first) for the report in the terminal.
        hub.publish("change", {"generation": token()})
        views = await run_in_threadpool(previewer.warm)
        names = sorted({shown_path(Path(p), previewer.root) for _, p in changes})
        summary = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        summary = summary or "watched folders"
        outcome = []
        for view in views:
            if view.ok and view.build is not None:
                outcome.append(f"{view.day} {kb(view.build.rendered.html_bytes)}")
            else:
                outcome.append(f"{view.day} has {len(view.problems)} problem(s)")
        ms = (time.perf_counter() - started) * 1000
        say(f"{summary} changed → {'; '.join(outcome) or 'reloaded'} ({ms:.0f} ms)")
        for view in views:
            for problem in view.problems[:10]:
                say(f"  {problem}")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        ready = asyncio.Event()
        task = None
        if watch:
            task = asyncio.create_task(watcher.watch(lambda: previewer.settings, on_change, stop, ready=ready))
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                waiter.cancel()
                task.result()  # the watcher could not start: fail startup with its error
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            stop.set()
            hub.close()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return page("message.html", exc.status_code, title=f"Error {exc.status_code}", message=exc.detail)

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/editions/", index),
            Route("/editions/{day}/", edition_page),
            Route("/editions/{day}/text", text_page),
            Route("/editions/{day}/manifest", manifest_page),
            Route("/editions/{day}/web", web_page),
            Route("/editions/{day}/web.html", web_html),
            Route("/editions/{day}/email.html", email_html),
            Route("/editions/{day}/newsletter.eml", eml),
            Route("/editions/{day}/newsletter.txt", text_raw),
            Route("/editions/{day}/newsletter.mjml", mjml),
            Route("/editions/{day}/manifest.json", manifest_json),
            Route("/editions/{day}/send-test", send_test, methods=["POST"]),
            Route("/editions/{day}/write", write, methods=["POST"]),
            Route("/unsubscribe-link", unsubscribe_link),
            Route("/u/{token}", unsubscribe, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
            Route("/events", events),
            Mount("/static", StaticFiles(packages=[("newsletter.web.preview", "static")]), name="static"),
            *site_routes(previewer),
        ],
        middleware=[Middleware(SecurityHeaders), Middleware(HostGuard, hosts=hosts)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.previewer = previewer
    app.state.csrf = csrf
    return app


__all__ = ["create_app", "dark_variant", "has_dark_styles", "scheme_variant", "smtp_configured"]
