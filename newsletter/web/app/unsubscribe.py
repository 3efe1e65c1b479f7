"""`/u/<token>`: RFC 8058 one-click unsubscribe, and the page a person sees when they open the link.

POST with `List-Unsubscribe=One-Click` (what mail providers send, without cookies or form tokens; a form
token, when sent, must be genuine) records the address in the suppression list. GET only shows a page
whose button makes that POST: link scanners follow URLs, so a GET never unsubscribes anyone. A token
that is not shaped like one is a 400, a forged one a 403.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ... import metrics
from ...delivery import ForgedTokenError, MalformedTokenError, verify_token
from .context import AppContext, context_of


async def unsubscribe(request: Request) -> Response:
    if request.method not in ("GET", "HEAD", "POST"):
        return PlainTextResponse("Method not allowed.\n", 405, headers={"Allow": "GET, HEAD, POST"})
    ctx = context_of(request)
    lang = ctx.language_of(request)
    _ = ctx.texts[lang]
    try:
        address = verify_token(ctx.secret, ctx.settings.list.id, request.path_params["token"])
    except MalformedTokenError:
        return ctx.message(
            lang, 400, _("Link not recognised"), _("This unsubscribe link is incomplete; please use the full link.")
        )
    except ForgedTokenError:
        return ctx.message(lang, 403, _("Link not valid"), _("This unsubscribe link is not valid for this newsletter."))
    if request.method != "POST":
        return _ask(ctx, lang, address)
    form = await ctx.form_of(request)
    if "csrf" in form and not (ctx.csrf.valid(form.get("csrf")) and ctx.origin_ok(request)):
        return ctx.message(
            lang, 403, _("Refused"), _("This form is out of date or came from another site; open the link again.")
        )
    if form.get("List-Unsubscribe") != "One-Click":
        return ctx.message(lang, 400, _("Bad request"), _("Expected the form field List-Unsubscribe=One-Click."))

    def record() -> None:
        ctx.suppression.add(address, "unsubscribed", f"one-click {ctx.settings.list.id}")
        ctx.store.set_status(address, "unsubscribed")
        metrics.public_event("unsubscribe", ctx.settings.list.id)

    await run_in_threadpool(record)
    return ctx.message(
        lang,
        200,
        _("Unsubscribed"),
        _("%(address)s will receive no more emails from %(title)s.")
        % {"address": address, "title": ctx.settings.title},
    )


def _ask(ctx: AppContext, lang: str, address: str) -> Response:
    """The same page whether or not the address is still subscribed; its button POSTs."""
    _ = ctx.texts[lang]
    return ctx.message(
        lang,
        200,
        _("Unsubscribe?"),
        _("Stop sending %(title)s to %(address)s? Press the button to confirm.")
        % {"title": ctx.settings.title, "address": address},
        action=_("Unsubscribe"),
        fields=[("List-Unsubscribe", "One-Click")],
        home=False,
    )


routes = [Route("/u/{token}", unsubscribe, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])]
