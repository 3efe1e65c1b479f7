"""What the preview does when asked (POST, CSRF-checked): write an edition to the outbox like `newsletter
build`, send it to one address; and the unsubscribe flow, to try it: a signed link for an address, then
the mailing stage's own `/u/<token>` handler (RFC 8058)."""

from __future__ import annotations

from urllib.parse import quote

from email_validator import EmailNotValidError, validate_email
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ...edition import write_edition
from ...errors import NewsletterError
from .context import day_of, preview_of
from .parts import Notice, mailing_state
from .security import UNSUBSCRIBE_CSP

_MAX_UNSUBSCRIBE_BODY = 64 * 1024


async def write(request: Request) -> Response:
    preview = preview_of(request)
    day, lang = day_of(request), preview.lang_of(request)
    await preview.form_of(request)
    view = await run_in_threadpool(lambda: preview.previewer.edition(day, language=lang))
    if view.build is None or not view.ok:
        why = "Not written: the edition has problems (see the banner); fix them first."
        return preview.back(day, Notice("error", why), lang)
    try:
        out = await run_in_threadpool(write_edition, view.build)
    except (OSError, NewsletterError) as exc:
        return preview.back(day, Notice("error", f"Not written: {exc}"), lang)
    preview.say(f"wrote {out}/")
    return preview.back(day, Notice("ok", f"Wrote {out}/ (newsletter.html, .txt, .eml, manifest.json)."), lang)


async def send_test(request: Request) -> Response:
    preview = preview_of(request)
    day, lang = day_of(request), preview.lang_of(request)
    fields = await preview.form_of(request)
    settings = preview.previewer.settings
    settings = settings.for_language(lang or settings.languages[0])
    mailing = mailing_state(settings)
    if not mailing["enabled"]:
        return preview.back(day, Notice("error", f"Not sent: {mailing['why']}"), lang)
    raw = fields.get("address", "").strip()
    try:
        address = validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        return preview.back(day, Notice("error", f"Not sent: {raw!r} is not a valid address ({exc})."), lang)
    from ...delivery import send_test as deliver

    try:
        done = await run_in_threadpool(deliver, settings, day, address)
    except NewsletterError as exc:
        return preview.back(day, Notice("error", f"Not sent: {exc}"), lang)
    preview.say(f"test send: {done}")
    return preview.back(day, Notice("ok", done), lang)


def unsubscribe_link(request: Request) -> Response:
    """`?address=`: a signed `/u/<token>` link for that address, to try the unsubscribe flow."""
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
    token = make_token(secret, preview_of(request).previewer.settings.list.id, address)
    return RedirectResponse(f"/u/{quote(token)}", 303)


async def unsubscribe(request: Request) -> Response:
    from ...delivery import handle_request

    preview = preview_of(request)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_UNSUBSCRIBE_BODY:
            raise HTTPException(413, "request body too large")
        chunks.append(chunk)
    status, html = await run_in_threadpool(
        handle_request,
        preview.previewer.settings,
        request.method,
        request.path_params["token"],
        b"".join(chunks),
        request.headers.get("content-type"),
    )
    headers = {"Content-Security-Policy": UNSUBSCRIBE_CSP, "Cache-Control": "no-store"}
    if status == 405:
        headers["Allow"] = "GET, HEAD, POST"
    if request.method == "POST" and status == 200:
        preview.say(f"unsubscribe: recorded ({status})")
    return HTMLResponse(html, status, headers=headers)


routes = [
    Route("/editions/{day}/send-test", send_test, methods=["POST"]),
    Route("/editions/{day}/write", write, methods=["POST"]),
    Route("/unsubscribe-link", unsubscribe_link),
    Route("/u/{token}", unsubscribe, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
]
