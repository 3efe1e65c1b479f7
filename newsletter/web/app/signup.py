"""Double opt-in: the sign-up form, its answer, and the confirmation link.

GET  /subscribe          the form
POST /subscribe          → 303 /subscribe/sent, the same answer in the same time for every address (no
                         enumeration): the sign-up is queued and a worker sends the confirmation email
                         (confirmations.py), unless the address is confirmed already
GET  /confirm/<token>    a page with a button; changes nothing (link scanners follow GETs)
POST /confirm/<token>    confirms, with a consent record (time, form, keyed hash of the IP)
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ... import metrics
from ...config import Settings
from ...delivery import check_address, clean_name
from ...letters import chosen_settings
from ...storage import Consent, ReaderBase, SubscriberRecord, now_iso
from . import mail, tokens
from .confirmations import SignUp
from .context import AppContext, client_ip, context_of

_NAME_MAX = 100
_TAGS = re.compile(r"<[^>]*>")


def _clean_form_name(raw: str) -> str:
    """A name typed into a public form: no markup, no control or bidi characters, one line, 100 chars."""
    return clean_name(_TAGS.sub("", raw).replace("<", "").replace(">", ""))[:_NAME_MAX].strip()


def subscribe_form(request: Request) -> Response:
    ctx = context_of(request)
    lang = ctx.language_of(request)
    canonical = ctx.base + ctx.with_lang("/subscribe", lang)
    return ctx.page(
        "subscribe.html",
        lang,
        csrf=ctx.csrf.issue(),
        error="",
        email="",
        name="",
        canonical=canonical,
        newsletters=offered(ctx.settings),
    )


def offered(settings: Settings) -> list[dict[str, Any]]:
    """The newsletters the form offers as checkboxes: the public ones, when there are several (none: the
    form is for the one newsletter, as ever). The default newsletter's box is ticked."""
    public = [one for one in chosen_settings(settings, None) if one.public]
    if len(public) < 2:
        return []
    return [
        {"id": one.newsletter, "name": one.title, "description": one.tagline, "checked": not one.file_prefix}
        for one in public
    ]


def _ticked(settings: Settings, form: FormData) -> tuple[str, ...]:
    """The public newsletters ticked on the form, in the configuration's order; none (an older form, the
    archive's): the default newsletter."""
    wanted = {str(v) for v in form.getlist("newsletter")}
    return tuple(n["id"] for n in offered(settings) if n["id"] in wanted)


async def subscribe(request: Request) -> Response:
    ctx = context_of(request)
    form = await ctx.form_of(request)
    lang = ctx.language_of(request, form)
    _ = ctx.texts[lang]
    token_ok = ctx.csrf.valid(form.get("csrf"))
    # The form on the archive's static pages carries no token: its Origin must then be ours.
    if not ctx.origin_ok(request) or not (token_ok or request.headers.get("origin")):
        return ctx.message(lang, 403, _("Refused"), _("This form came from another site or is out of date; reload it."))
    done = RedirectResponse(ctx.with_lang("/subscribe/sent", lang), status_code=303)
    if str(form.get("website", "")).strip():
        return done  # the honeypot: a bot filled the field people cannot see; answer as usual
    raw, name = str(form.get("email", "")), _clean_form_name(str(form.get("name", "")))
    try:
        address = check_address(raw[:320])
    except ValueError:
        error = _("Please enter a valid email address.")
        return ctx.page(
            "subscribe.html",
            lang,
            400,
            csrf=ctx.csrf.issue(),
            error=error,
            email=raw[:320],
            name=name,
            newsletters=offered(ctx.settings),
        )
    for window, key in ((ctx.per_ip, client_ip(request)), (ctx.per_address, address.lower())):
        wait = window.hit(key)
        if wait is not None:
            response = ctx.message(lang, 429, _("Too many requests"), _("Please wait a while and try again."))
            response.headers["Retry-After"] = str(int(wait + 0.999))
            return response
    source = str(form.get("form", "subscribe"))[:200]
    if source != "subscribe" and not source.startswith(ctx.base + "/"):
        source = "subscribe"
    # One row on disk for every address alike; whether an email goes out is the worker's business.
    zone = str(form.get("timezone", ""))[:64].strip()
    signup = SignUp(address, name, lang, source, zone, _ticked(ctx.settings, form))
    await run_in_threadpool(ctx.queue.put, signup)
    return done


def subscribe_sent(request: Request) -> Response:
    ctx = context_of(request)
    lang = ctx.language_of(request)
    _ = ctx.texts[lang]
    return ctx.message(
        lang,
        200,
        _("Check your inbox"),
        _("If the address can receive it, an email with a confirmation link is on its way."),
        _("Open it and press the button to start receiving the newsletter. Nothing is sent until you do."),
    )


async def confirm(request: Request) -> Response:
    ctx = context_of(request)
    lang = ctx.language_of(request)
    _ = ctx.texts[lang]
    try:
        found = tokens.read_confirm_token(ctx.secret, ctx.settings.list.id, request.path_params["token"])
    except tokens.ConfirmTokenError as exc:
        why = {
            400: _("Malformed confirmation link."),
            403: _("This confirmation link is not valid for this newsletter."),
            410: _("This confirmation link has expired."),
        }
        lines = {410: _("Subscribe again to get a new link."), 403: _("Use the link from the email.")}
        return ctx.message(
            lang, exc.status, _("Link not valid"), why.get(exc.status, str(exc)), lines.get(exc.status, "")
        )
    if request.method != "POST":
        return ctx.message(
            lang,
            200,
            _("Confirm your subscription"),
            _("Press the button to receive %(title)s at %(address)s.")
            % {"title": ctx.settings.title, "address": found.address},
            action=_("Confirm my subscription"),
            home=False,
        )
    form = await ctx.form_of(request)
    if not (ctx.csrf.valid(form.get("csrf")) and ctx.origin_ok(request)):
        return ctx.message(
            lang, 403, _("Refused"), _("This form is out of date or came from another site; open the link again.")
        )
    consent = Consent(at=now_iso(), form=found.form, ip_hash=tokens.ip_hash(ctx.secret, client_ip(request)))
    issued = found.issued if found.issued is not None else found.expires - ctx.options.confirm_hours * 3600

    def record() -> bool:
        # One change: confirmed, off the suppression list, subscribed, in the history — unless the address
        # unsubscribed (or bounced, complained, was forgotten) after this link was issued: then it is void.
        done = confirm_all(ctx.suppression, found.address, consent, issued) is not None
        metrics.public_event("confirm", ctx.settings.list.id)
        return done

    if not await run_in_threadpool(record):
        return ctx.message(
            lang,
            410,
            _("Link not valid"),
            _("This address unsubscribed after this link was sent, so the link no longer works."),
            _("Subscribe again to get a new link."),
        )
    return ctx.message(
        lang,
        200,
        _("You are subscribed"),
        _("%(address)s will receive %(title)s from tomorrow.")
        % {"address": found.address, "title": ctx.settings.title},
    )


def sign_up_for(base: ReaderBase, signup: SignUp, lang: str) -> tuple[SubscriberRecord, bool]:
    """The sign-up's request in the reader base: a pending subscription to each newsletter ticked (the
    default one when none was); and whether one of them still waits for confirmation."""
    letters = signup.newsletters or (base.newsletter,)
    for letter in letters:
        one = base if letter == base.newsletter else ReaderBase(base.db, letter)
        record = one.sign_up(signup.address, name=signup.name, locale=lang, timezone=signup.timezone)
    key = signup.address.strip().lower()
    return record, any(s.status == "pending" and s.newsletter in letters for s in base.subscriptions.of(key))


def confirm_all(base: ReaderBase, address: str, consent: Consent, issued: float) -> SubscriberRecord | None:
    """One double opt-in for every newsletter chosen on the form: the reader confirmed, then each of their
    pending subscriptions confirmed with the same consent."""
    key = address.strip().lower()
    letters = [s.newsletter for s in base.subscriptions.of(key) if s.status == "pending"] or [base.newsletter]
    record = None
    for letter in letters:
        record = ReaderBase(base.db, letter).confirm(address, consent, issued=issued)
        if record is None:
            return None  # the address left after the link was sent: void for every newsletter
    return record


class ConfirmationSender:
    """What the queue's worker does with one sign-up: record the request, then mail the link unless the
    address is confirmed (and not suppressed) already. Compiled templates live as long as the server."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        settings: Settings = ctx.settings
        hours = ctx.options.confirm_hours
        self.editions = {lang: settings.for_language(lang) for lang in settings.languages}
        self.mailers = {lang: mail.ConfirmationMailer(s, hours) for lang, s in self.editions.items()}

    def __call__(self, signup: SignUp) -> None:
        ctx = self.ctx
        lang = signup.lang if signup.lang in self.editions else ctx.settings.languages[0]
        # The form's language is the reader's locale: their edition from the next send on.
        record, pending = sign_up_for(ctx.suppression, signup, lang)
        metrics.public_event("signup", ctx.settings.list.id)
        if record.status == "confirmed" and not pending and signup.address not in ctx.suppression:
            return  # already getting it: nothing to confirm, and the answer was the same
        token = tokens.make_confirm_token(
            ctx.secret, ctx.settings.list.id, signup.address, signup.source, ctx.options.confirm_hours
        )
        url = ctx.base + ctx.with_lang(f"/confirm/{token}", lang)  # the page in the sign-up's language
        data = self.mailers[lang].message(signup.address, record.name or signup.name, url)
        outcome = mail.send_confirmation(self.editions[lang], signup.address, data)  # outbox: that edition's
        metrics.public_event("confirmation_email", ctx.settings.list.id, "sent" if outcome.sent else "failed")
        if not outcome.sent and outcome.status == "transient":
            raise RuntimeError(f"the relay did not take the confirmation email: {outcome.reply or outcome.status}")


routes = [
    Route("/subscribe", subscribe_form, methods=["GET", "HEAD"]),
    Route("/subscribe", subscribe, methods=["POST"]),
    Route("/subscribe/sent", subscribe_sent, methods=["GET", "HEAD"]),
    Route("/confirm/{token}", confirm, methods=["GET", "HEAD", "POST"]),
]
