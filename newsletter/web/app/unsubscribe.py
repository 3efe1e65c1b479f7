"""`/u/<token>`: RFC 8058 one-click unsubscribe, and the page a person sees when they open the link.

POST with `List-Unsubscribe=One-Click` (what mail providers send, without cookies or form tokens; a form
token, when sent, must be genuine) records the address in the suppression list — POSTs arriving together
in one transaction, answered once recorded, the answer page rendered once per language (oneclick.py).
GET only shows a page whose button makes that POST: link scanners follow URLs, so a GET never
unsubscribes anyone. A token that is not shaped like one is a 400, a forged one a 403.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ... import metrics
from ...config import Settings
from ...delivery import ForgedTokenError, MalformedTokenError, verify_token
from ...letters import chosen_settings, default_settings
from .context import AppContext, context_of
from .oneclick import PLACEHOLDER, OneClickWriter, PerLanguagePage


async def unsubscribe(request: Request) -> Response:
    if request.method not in ("GET", "HEAD", "POST"):
        return PlainTextResponse("Method not allowed.\n", 405, headers={"Allow": "GET, HEAD, POST"})
    ctx = context_of(request)
    lang = ctx.language_of(request)
    _ = ctx.texts[lang]
    letter = _newsletter_of(ctx, request.path_params.get("newsletter"))
    if letter is None:
        return ctx.message(
            lang, 404, _("Link not recognised"), _("This unsubscribe link is incomplete; please use the full link.")
        )
    try:
        address = verify_token(ctx.secret, letter.list.id, request.path_params["token"])
    except MalformedTokenError:
        return ctx.message(
            lang, 400, _("Link not recognised"), _("This unsubscribe link is incomplete; please use the full link.")
        )
    except ForgedTokenError:
        return ctx.message(lang, 403, _("Link not valid"), _("This unsubscribe link is not valid for this newsletter."))
    if request.method != "POST":
        return _ask(ctx, lang, address, letter.title)
    # A form token means a person pressed the page's button; without one, a mail provider's one-click
    # (RFC 8058's exact body, read without a form parser, never has one).
    via = "one-click"
    if not await _exactly_one_click(request):  # a browser's form (with its csrf field), or multipart
        form = await ctx.form_of(request)
        via = "page" if "csrf" in form else "one-click"
        if "csrf" in form and not (ctx.csrf.valid(form.get("csrf")) and ctx.origin_ok(request)):
            return ctx.message(
                lang, 403, _("Refused"), _("This form is out of date or came from another site; open the link again.")
            )
        if form.get("List-Unsubscribe") != "One-Click":
            return ctx.message(lang, 400, _("Bad request"), _("Expected the form field List-Unsubscribe=One-Click."))

    writers, page = _one_click(ctx, letter)
    await writers[via].record(address)
    return HTMLResponse(page(lang, address), 200, headers={"Cache-Control": "no-store", "Content-Language": lang})


_ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
_URLENCODED = "application/x-www-form-urlencoded"


async def _exactly_one_click(request: Request) -> bool:
    """True for the body RFC 8058 asks mail providers to send, urlencoded, and nothing else: the one
    byte comparison a provider's POST needs, where a general form parser was a third of the handler."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return kind == _URLENCODED and await request.body() == _ONE_CLICK_BODY


# One batch writer and one answer page per app and newsletter (oneclick.py): POSTs arriving together are one
# transaction.
_ONE_CLICK: dict[tuple[int, str], tuple[AppContext, dict[str, OneClickWriter], PerLanguagePage]] = {}


def _newsletter_of(ctx: AppContext, wanted: str | None) -> Settings | None:
    """The newsletter a link is for: `/u/<token>` the default one, `/u/<id>/<token>` another (its own
    List-Id signs its tokens, and leaving it ends that subscription only); None for an unknown id."""
    if wanted is None:
        return default_settings(ctx.settings)
    for one in chosen_settings(ctx.settings, None):
        if one.file_prefix and one.newsletter == wanted:
            return one
    return None


def _one_click(ctx: AppContext, letter: Settings) -> tuple[dict[str, OneClickWriter], PerLanguagePage]:
    found = _ONE_CLICK.get((id(ctx), letter.newsletter))
    if found is None:

        def recorder(via: str) -> OneClickWriter:
            def record(addresses: list[str]) -> None:
                # One transaction for the batch: each reader's status, subscription, history and the
                # suppression entry together (storage/readers.py); this newsletter's subscription only.
                source = f"{via} {letter.list.id}"
                ctx.suppression.unsubscribe(addresses, via=via, newsletter=letter.newsletter, source=source)
                for _address in addresses:
                    metrics.public_event("unsubscribe", letter.list.id)

            return OneClickWriter(record)

        def unsubscribed(lang: str) -> str:
            _ = ctx.texts[lang]
            line = _("%(address)s will receive no more emails from %(title)s.")
            filled = line % {"address": PLACEHOLDER, "title": letter.title}
            answer = ctx.message(lang, 200, _("Unsubscribed"), filled)
            return bytes(answer.body).decode("utf-8")

        writers = {via: recorder(via) for via in ("one-click", "page")}
        found = _ONE_CLICK[(id(ctx), letter.newsletter)] = (ctx, writers, PerLanguagePage(unsubscribed))
    return found[1], found[2]


def _ask(ctx: AppContext, lang: str, address: str, title: str) -> Response:
    """The same page whether or not the address is still subscribed; its button POSTs."""
    _ = ctx.texts[lang]
    return ctx.message(
        lang,
        200,
        _("Unsubscribe?"),
        _("Stop sending %(title)s to %(address)s? Press the button to confirm.") % {"title": title, "address": address},
        action=_("Unsubscribe"),
        fields=[("List-Unsubscribe", "One-Click")],
        home=False,
    )


_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]
routes = [
    Route("/u/{token}", unsubscribe, methods=_METHODS),
    Route("/u/{newsletter}/{token}", unsubscribe, methods=_METHODS),
]
