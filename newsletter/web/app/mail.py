"""The double opt-in email: rendered from `templates/confirm.mjml.j2` and `confirm.txt.j2` (a newsletter
folder's own `templates/` overrides them, like the edition's), sent through the configured sink.

Without SMTP configured it lands in `outbox/<today>/confirm/<address>.eml`, like every other message.
It carries no List-Unsubscribe: it is a one-off answer to a request, not list mail.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.headerregistry import Address

from ...config import Settings
from ...delivery import Envelope, Outcome, make_sink
from ...edition import build_message, compile_mjml, make_environment, make_message_id, render_template, serialize
from ...errors import DeliveryError

_RTL = {"ar", "he", "fa", "ur", "ps", "yi", "dv", "ckb", "sd", "ug"}


def confirmation_message(settings: Settings, address: str, name: str, confirm_url: str, hours: int) -> bytes:
    """The whole message (CRLF line ends), ready for a sink."""
    env = make_environment(settings)
    lang = settings.locale.replace("_", "-")
    subject = f"Confirm your subscription to {settings.title}"
    context = {
        "newsletter": {
            "title": settings.title,
            "tagline": settings.tagline,
            "site": settings.base_url.split("://", 1)[-1],
        },
        "lang": lang,
        "dir": "rtl" if lang.split("-")[0].lower() in _RTL else "ltr",
        "subject": subject,
        "preheader": f"One click to start receiving {settings.title}.",
        "confirm_url": confirm_url,
        "hours": hours,
        "name": name,
    }
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
    sink = make_sink(settings, today, connections=1, kind="confirm")
    try:
        sink.open()
        return sink.send(Envelope(settings.sender.address, address, data, key=address))
    except DeliveryError as exc:
        return Outcome("transient", None, str(exc), reachable=False)
    finally:
        sink.close()
