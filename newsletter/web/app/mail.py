"""The double opt-in email: rendered from `templates/confirm.mjml.j2` and `confirm.txt.j2` (a newsletter
folder's own `templates/` overrides them, like the edition's), sent through the configured sink.

Without SMTP configured it lands in `outbox/<today>/confirm/<address>.eml`, like every other message, and
with `[dkim]` it is signed like every other message.
It carries no List-Unsubscribe: it is a one-off answer to a request, not list mail.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime
from email.headerregistry import Address
from html import escape
from typing import Any

from ...config import Settings
from ...delivery import Envelope, Outcome, make_sink, signing
from ...edition import (
    build_message,
    compile_mjml,
    make_environment,
    make_message_id,
    render_template,
    serialize,
    text_direction,
    translations,
)
from ...errors import ConfigError, DeliveryError

# Stand-ins rendered into the HTML once; each message gets the real (escaped) values spliced in.
_URL_MARK = "https://confirm.invalid/NLCONFIRMURL"
_NAME_MARK = "NLCONFIRMNAME"


class ConfirmationMailer:
    """Builds confirmation emails for one server run. Compiling MJML costs far more than the rest of a
    sign-up, so the HTML is compiled once per variant (with or without a name) and the address-specific
    parts are spliced in; the text part is rendered each time. A changed template needs a restart."""

    def __init__(self, settings: Settings, hours: int) -> None:
        self.settings = settings
        self.hours = hours
        self._html: dict[bool, str] = {}
        self._lock = threading.Lock()

    def message(self, address: str, name: str, confirm_url: str) -> bytes:
        with self._lock:
            if bool(name) not in self._html:
                env = make_environment(self.settings)
                context = _context(self.settings, _NAME_MARK if name else "", _URL_MARK, self.hours)
                source = render_template(env, "confirm.mjml.j2", context, self.settings.root)
                self._html[bool(name)] = compile_mjml(source, env, self.settings.root)
            template = self._html[bool(name)]
        html = template.replace(_URL_MARK, escape(confirm_url)).replace(_NAME_MARK, escape(name))
        return confirmation_message(self.settings, address, name, confirm_url, self.hours, html=html)


def _context(settings: Settings, name: str, confirm_url: str, hours: int) -> dict[str, Any]:
    lang = settings.locale.replace("_", "-")
    # In the language of the sign-up (settings.for_language): the templates' `_()` use the same catalogue.
    _ = translations(settings.locale).gettext
    subject = _("Confirm your subscription to %(title)s") % {"title": settings.title}
    return {
        "newsletter": {
            "title": settings.title,
            "tagline": _(settings.tagline) if settings.tagline else "",
            "site": settings.base_url.split("://", 1)[-1],
        },
        "lang": lang,
        "dir": text_direction(lang),
        "subject": subject,
        "preheader": _("One click to start receiving %(title)s.") % {"title": settings.title},
        "confirm_url": confirm_url,
        "hours": hours,
        "name": name,
    }


def confirmation_message(
    settings: Settings, address: str, name: str, confirm_url: str, hours: int, *, html: str | None = None
) -> bytes:
    """The whole message (CRLF line ends), ready for a sink. `html`: the HTML part, when already made."""
    env = make_environment(settings)
    context = _context(settings, name, confirm_url, hours)
    subject = context["subject"]
    if html is None:
        html = compile_mjml(render_template(env, "confirm.mjml.j2", context, settings.root), env, settings.root)
    text = render_template(env, "confirm.txt.j2", context, settings.root)
    # The display name is untrusted: Address quotes or encodes it; an empty one leaves the bare address.
    to = Address(display_name=name, addr_spec=address) if name else Address(addr_spec=address)
    msg = build_message(
        settings=settings,
        subject=subject,
        text=text,
        html=html,
        to=to,
        date=datetime.now(UTC).astimezone(settings.timezone),
        message_id=make_message_id(settings, "confirm", secrets.token_hex(8)),
        extra_headers={"Auto-Submitted": "auto-replied"},
    )
    return serialize(msg)


def send_confirmation(settings: Settings, address: str, data: bytes) -> Outcome:
    """Hand the message to the configured sink (SMTP, else the outbox); the outcome says what happened."""
    today = datetime.now(settings.timezone).date()
    try:  # signed like every message of the list's domain: with DMARC at p=reject an unsigned one is lost
        sink = signing(settings, make_sink(settings, today, connections=1, kind="confirm"))
    except ConfigError as exc:  # a missing or locked DKIM key
        return Outcome("transient", None, str(exc), reachable=False)
    try:
        sink.open()
        return sink.send(Envelope(settings.sender.address, address, data, key=address))
    except DeliveryError as exc:
        return Outcome("transient", None, str(exc), reachable=False)
    finally:
        sink.close()
