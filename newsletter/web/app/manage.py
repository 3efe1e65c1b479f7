"""`/manage/<token>`: the reader's own page, linked from every email's footer.

The token is the one of the reader's unsubscribe link (an HMAC over the list id and the address, signed
with the newsletter's secret: delivery/unsubscribe.py), so the page needs no login and keeps no session.
GET shows what the reader base keeps about the address — name, language, time zone, status, a pause, each
subscription — and the forms; GET changes nothing. Each form POSTs with a signed form token from an
allowed Origin (CSRF) and is one state change of the reader base, recorded in the reader's history:

    update       language (one of the list's editions) and time zone (an IANA name)
    pause        no newsletter for N days (1-366; 0 ends a pause)
    leave        unsubscribe from this newsletter
    leave_all    unsubscribe from everything

Everything shown is escaped by the page templates; the page is in the reader's language (their locale,
else the usual choice) and right to left where that language is.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ... import metrics
from ...delivery import ForgedTokenError, MalformedTokenError, verify_token
from ...storage import clean_zone
from .context import AppContext, context_of
from .language import pick_language

_ACTIONS = ("update", "pause", "leave", "leave_all")


def N_(message: str) -> str:
    """A message to translate later (found by `pybabel extract -k N_`), returned as it is."""
    return message


async def manage(request: Request) -> Response:
    ctx = context_of(request)
    token = request.path_params["token"]
    lang = ctx.language_of(request)
    _ = ctx.texts[lang]
    try:
        address = verify_token(ctx.secret, ctx.settings.list.id, token)
    except MalformedTokenError:
        return ctx.message(lang, 400, _("Link not recognised"), _("Use the link from the email."))
    except ForgedTokenError:
        return ctx.message(lang, 403, _("Link not valid"), _("Use the link from the email."))
    record = await run_in_threadpool(ctx.suppression.get, address)
    if "lang" not in request.query_params and record is not None and record.locale:
        lang = pick_language(ctx.settings, record.locale, None, None)  # the reader's own language first
        _ = ctx.texts[lang]
    if request.method != "POST":
        return await _page(ctx, lang, address, saved=request.query_params.get("done", ""))
    form = await ctx.form_of(request)
    if not (ctx.csrf.valid(form.get("csrf")) and ctx.origin_ok(request)):
        return ctx.message(
            lang, 403, _("Refused"), _("This form is out of date or came from another site; open the link again.")
        )
    action = str(form.get("action", ""))
    if action not in _ACTIONS:
        return ctx.message(lang, 400, _("Bad request"), _("Use the link from the email."))
    error = await run_in_threadpool(_apply, ctx, address, action, dict(form))
    if error:
        return await _page(ctx, lang, address, error=_(error), status=400)
    if action in ("leave", "leave_all"):
        metrics.public_event("unsubscribe", ctx.settings.list.id)
    return RedirectResponse(f"/manage/{token}?done={action}", status_code=303)


def _apply(ctx: AppContext, address: str, action: str, form: dict[str, Any]) -> str:
    """The change; "" when done, else what was wrong with the form (a msgid)."""
    base = ctx.suppression
    if action == "leave":
        base.unsubscribe([address], via="manage", source=f"manage {ctx.settings.list.id}")
    elif action == "leave_all":
        base.unsubscribe([address], via="manage", newsletter=None, source=f"manage {ctx.settings.list.id}")
    elif action == "pause":
        days = str(form.get("days", "")).strip()
        if not days.isdigit() or not 0 <= int(days) <= 366:
            return N_("Enter a number of days from 0 to 366.")
        base.pause(address, int(days))
    else:
        locale = str(form.get("locale", ""))
        zone = str(form.get("timezone", ""))[:64].strip()
        if locale not in ctx.settings.languages:
            return N_("Choose one of the languages offered.")
        if zone and not clean_zone(zone):
            return N_("Enter a time zone name like Europe/Paris, or leave it empty.")
        base.update(address, locale=locale, timezone=zone)
    return ""


async def _page(
    ctx: AppContext, lang: str, address: str, *, saved: str = "", error: str = "", status: int = 200
) -> Response:
    shown = await run_in_threadpool(ctx.suppression.show, address)
    record = shown["record"]
    return ctx.page(
        "manage.html",
        lang,
        status,
        csrf=ctx.csrf.issue(),
        address=address,
        record=record,
        subscriptions=shown["subscriptions"],
        languages=[(code, _language_name(code)) for code in ctx.settings.languages],
        current=(record or {}).get("locale") or lang,
        saved=saved in _ACTIONS,
        error=error,
        title=ctx.settings.title,
    )


def _language_name(code: str) -> str:
    """The language's own name for itself ("français", "العربية"), as a reader looks for it in a list."""
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(code.replace("-", "_")).get_display_name(code.replace("-", "_")) or code)
    except (ValueError, UnknownLocaleError):
        return code


routes = [Route("/manage/{token}", manage, methods=["GET", "HEAD", "POST"])]
