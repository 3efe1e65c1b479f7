"""Assemble the MIME message: multipart/alternative, text/plain first, then text/html. Pure.

Both parts are quoted-printable: MJML emits the HTML as one very long line, and RFC 5322 allows at
most 998 octets per line; quoted-printable keeps every line under 78 whatever the content.

Every message says it was sent by a program (`Auto-Submitted: auto-generated`, RFC 3834): vacation
responders and ticket systems then stay quiet instead of answering thousands of times, to the bounce
address. The older `Precedence: bulk` is left out: RFC 2076 calls it non-standard and discouraged,
Gmail's and Yahoo's sender guidelines do not ask for it, and List-Id/List-Unsubscribe already mark a
list message. `[sender] reply_to` adds a Reply-To, so readers' answers reach a person.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
from datetime import datetime
from email import policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime

from ..config import Settings
from ..textutil import one_line


class _Headers(HeaderRegistry):
    """The stdlib's header registry makes a new class for every header it parses; remember them."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = super().__getitem__(name)
        return made


# policy.SMTP (CRLF line ends, RFC 5322 folding) with the remembering registry.
POLICY = policy.SMTP.clone(header_factory=_Headers())


_FEEDBACK_FIELD = re.compile(r"[^A-Za-z0-9._-]+")
AUTO_SUBMITTED = "auto-generated"  # RFC 3834: made by a program; auto-responders must not answer


def feedback_id(settings: Settings, day: str) -> str:
    """Gmail's feedback-loop id, `edition:list:sender`: complaint rates per edition and list, no reader in it.

    The last field is the sender id Gmail groups by (`[mailing] sender_id`, default the From domain).
    Gmail reads the header only when the DKIM signature of the sending domain covers it (delivery/dkim.py signs it).
    """
    edition = f"{day}.{settings.language}" if settings.multilingual else day
    # `[mailing] sender_id` is checked by MailingOptions when the run starts; anything odd is still replaced here.
    sender = str(settings.section("mailing").get("sender_id") or "") or settings.sender.address.rsplit("@", 1)[-1]
    newsletter = settings.list.id.split(".", 1)[0]  # `morning-brief` of morning-brief.example.org: short, one line
    return ":".join(_FEEDBACK_FIELD.sub("-", f).strip("-") for f in (edition, newsletter, sender))


def list_id_header(settings: Settings) -> str:
    return f"{one_line(settings.title)} <{settings.list.id}>"


def make_message_id(settings: Settings, key: str, unique: str | None = None) -> str:
    """`<key.random@sender-domain>`: the key says what the message is, the random part makes it unique."""
    domain = settings.sender.address.rsplit("@", 1)[-1]
    return f"<{key}.{unique or secrets.token_hex(8)}@{domain}>"


def build_message(
    *,
    settings: Settings,
    subject: str,
    text: str,
    html: str,
    to: Address,
    date: datetime,
    message_id: str,
    extra_headers: dict[str, str] | None = None,
) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    msg["From"] = Address(one_line(settings.sender.name), addr_spec=settings.sender.address)
    msg["To"] = to
    msg["Subject"] = one_line(subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["List-Id"] = list_id_header(settings)
    if settings.sender.reply_to:
        msg["Reply-To"] = settings.sender.reply_to
    if "Auto-Submitted" not in (extra_headers or {}):  # a confirmation email says `auto-replied` itself
        msg["Auto-Submitted"] = AUTO_SUBMITTED
    for name, value in (extra_headers or {}).items():
        msg[name] = one_line(value)
    msg["MIME-Version"] = "1.0"
    msg.make_alternative()
    msg.attach(_qp_part("plain", text))
    msg.attach(_qp_part("html", html))
    msg["Content-Language"] = settings.locale.replace("_", "-")
    # A boundary derived from the content keeps rebuilds byte-identical (the stdlib picks a random one).
    digest = hashlib.sha256(text.encode() + b"\0" + html.encode()).hexdigest()[:32]
    msg.set_boundary(f"=_nl_{digest}")
    return msg


def _qp_part(subtype: str, body: str) -> EmailMessage:
    """A UTF-8 quoted-printable text part, encoded by binascii (C) rather than the email package's
    pure-Python encoder, which costs several milliseconds on a 60 KB HTML body."""
    part = EmailMessage(policy=POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    data = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    part.set_payload(binascii.b2a_qp(data, istext=True).decode("ascii"))
    return part


def serialize(msg: EmailMessage) -> bytes:
    """`msg.as_bytes()` for a message made by `build_message`, byte for byte, without the generator's
    line-by-line pass over the two bodies, which is half the cost of building an edition's message."""
    fold = POLICY.fold_binary
    boundary = msg.get_boundary()
    out = [b"".join(fold(k, v) for k, v in msg.raw_items()), b"\r\n"]
    for part in msg.iter_parts():
        payload = part.get_payload()
        assert isinstance(payload, str)
        out += [f"--{boundary}\r\n".encode(), b"".join(fold(k, v) for k, v in part.raw_items()), b"\r\n"]
        out += [payload.replace("\n", "\r\n").encode("ascii"), b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def list_copy(
    settings: Settings, subject: str, text: str, html: str, date: datetime, key: str, unique: str | None = None
) -> EmailMessage:
    """The edition as addressed to the list itself: what `build` writes to the outbox."""
    to = Address(one_line(settings.title), addr_spec=settings.list.address)
    return build_message(
        settings=settings,
        subject=subject,
        text=text,
        html=html,
        to=to,
        date=date,
        message_id=make_message_id(settings, key, unique),
    )
