"""Unsubscribe tokens and the one-click handler (RFC 8058 + RFC 2369).

A token is `<address>.<mac>`, both base64url without padding: the address it unsubscribes and an
HMAC-SHA256 over the list id and that address, keyed with `NEWSLETTER_UNSUBSCRIBE_SECRET`. Binding the
list id means a token for one list cannot unsubscribe anyone from another list signed with the same
secret; the server needs no per-subscriber state to check it. The address is readable by whoever holds
the link, which is the subscriber it was sent to.

`handle_request` is the framework-free handler the preview server mounts at `/u/<token>`:

- `POST` with the body `List-Unsubscribe=One-Click` (what Gmail and Yahoo send, cookieless, form
  encoded) and a valid token records the address in the suppression list.
- `GET` only shows a confirmation page whose button makes that same POST: link scanners and
  previewers follow URLs, so a GET must never unsubscribe anyone.
- A token that is not even shaped like one is a 400; a well-formed one whose MAC does not match is a
  403. Any other method is a 405.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import html
import os
import re
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs, urlsplit

from ..config import Settings
from ..errors import ConfigError, NewsletterError, TokenError
from .suppression import open_suppression

SECRET_ENV = "NEWSLETTER_UNSUBSCRIBE_SECRET"
ONE_CLICK = "List-Unsubscribe=One-Click"
_DOMAIN = b"newsletter-unsubscribe-v1"  # versions the MAC input, so a future format cannot be confused with this one
_MAX_TOKEN = 1024
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # no control character in an address
_MAX_BODY = 64 * 1024
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")  # 32-byte MAC → 43 base64url characters


class MissingSecretError(ConfigError):
    """No `NEWSLETTER_UNSUBSCRIBE_SECRET`: nothing can be signed or checked."""


class MalformedTokenError(TokenError):
    """Not shaped like a token at all (truncated link, junk): HTTP 400."""


class ForgedTokenError(TokenError):
    """Shaped like a token but its MAC does not match (forged or tampered): HTTP 403."""


def secret_from_env(environ: dict[str, str] | None = None) -> bytes:
    """The HMAC key from `NEWSLETTER_UNSUBSCRIBE_SECRET`; never logged, never part of the settings."""
    value = (os.environ if environ is None else environ).get(SECRET_ENV, "")
    if not value.strip():
        raise MissingSecretError(
            f"{SECRET_ENV} is not set: every message needs a signed unsubscribe link; set it to a long random "
            "value, e.g. `export NEWSLETTER_UNSUBSCRIBE_SECRET=$(python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')`, and keep it: changing it invalidates the links already sent"
        )
    return value.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:  # non-canonical trailing bits: one address, one token
        raise ValueError("non-canonical base64")
    return raw


@functools.lru_cache(maxsize=32)
def keyed(secret: bytes, prefix: bytes) -> hmac.HMAC:
    """HMAC-SHA256 keyed with `secret`, fed `prefix`: copied per message, the key is set up once.

    (`hmac.digest`, the one-shot form, lets go of the GIL for every call; with the ledger's writer
    thread running that costs a thread switch per message.)"""
    return hmac.new(secret, prefix, hashlib.sha256)


def _mac(secret: bytes, list_id: str, address: bytes) -> bytes:
    mac = keyed(secret, _DOMAIN + b"\0" + list_id.encode("utf-8") + b"\0").copy()
    mac.update(address)
    return mac.digest()


def make_token(secret: bytes, list_id: str, address: str) -> str:
    """A URL-safe token that unsubscribes `address` from list `list_id`, and nothing else."""
    if not secret:
        raise MissingSecretError(f"{SECRET_ENV} is empty")
    raw = address.encode("utf-8")
    return f"{_b64(raw)}.{_b64(_mac(secret, list_id, raw))}"


def manage_base(settings: Settings) -> str:
    """Where a reader's "manage my subscription" page is: `/manage/` on the public app that answers the
    unsubscribe links (`[list] unsubscribe_url`'s origin); the reader's unsubscribe token follows."""
    parts = urlsplit(settings.list.unsubscribe_url)
    return f"{parts.scheme}://{parts.netloc}/manage/"


def verify_token(secret: bytes, list_id: str, token: str) -> str:
    """The address `token` was made for; `TokenError` (Malformed… or Forged…) when it is not genuine."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN or not _SHAPE.fullmatch(token):
        raise MalformedTokenError("malformed unsubscribe token")
    encoded_address, encoded_mac = token.split(".")
    try:
        raw = _unb64(encoded_address)
        mac = _unb64(encoded_mac)
        address = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise MalformedTokenError("malformed unsubscribe token") from None
    if not address or "@" not in address or _CONTROL.search(address):
        raise MalformedTokenError("malformed unsubscribe token")
    if not hmac.compare_digest(mac, _mac(secret, list_id, raw)):
        raise ForgedTokenError("unsubscribe token does not verify (forged, tampered, or signed with another secret)")
    return address


def unsubscribe_url(settings: Settings, address: str, secret: bytes) -> str:
    """`list.unsubscribe_url` + the subscriber's token: the https URL of List-Unsubscribe and the footer."""
    return settings.list.unsubscribe_url + make_token(secret, settings.list.id, address)


# --- the HTTP handler ------------------------------------------------------------------------------


def _is_one_click(body: bytes, content_type: str | None) -> bool:
    """True when the POST body carries `List-Unsubscribe=One-Click` (urlencoded or multipart/form-data)."""
    if len(body) > _MAX_BODY:
        return False
    kind = (content_type or "application/x-www-form-urlencoded").split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        if not message.is_multipart():
            return False
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "List-Unsubscribe":
                payload = part.get_payload(decode=True) or b""
                return bytes(payload).strip() == b"One-Click"
        return False
    if kind not in ("application/x-www-form-urlencoded", "text/plain"):
        return False
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return fields.get("List-Unsubscribe") == ["One-Click"]


def _page(settings: Settings, title: str, message: str, form: bool = False) -> str:
    """A small self-contained page; every dynamic value is HTML-escaped."""
    esc = html.escape
    button = (
        '<form method="post" action="">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
        if form
        else ""
    )
    return (
        "<!doctype html>\n"
        f'<html lang="{esc(settings.locale.replace("_", "-"))}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{esc(title)} · {esc(settings.title)}</title>"
        "<style>body{font-family:Helvetica,Arial,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
        "color:#1d1d1f}button{font-size:1rem;padding:.6rem 1.2rem;background:#b0122b;color:#fff;border:0;"
        "border-radius:4px;cursor:pointer}</style></head><body>"
        f"<h1>{esc(title)}</h1><p>{message}</p>{button}"
        f"<p><small>{esc(settings.title)}</small></p></body></html>\n"
    )


def handle_request(
    settings: Settings, method: str, token: str, body: bytes, content_type: str | None
) -> tuple[int, str]:
    """(HTTP status, HTML page) for a request to the unsubscribe URL of `token`. See the module docstring."""
    method = method.upper()
    if method not in ("GET", "HEAD", "POST"):
        return 405, _page(settings, "Method not allowed", "Use the link in the email.")
    try:
        secret = secret_from_env()
    except MissingSecretError:
        # The server operator's problem, not the reader's: say little, change nothing.
        return 503, _page(settings, "Unavailable", "Unsubscribing is not available right now; please try later.")
    try:
        address = verify_token(secret, settings.list.id, token)
    except MalformedTokenError:
        return 400, _page(
            settings, "Link not recognised", "This unsubscribe link is incomplete. Please use the full link."
        )
    except TokenError:
        return 403, _page(settings, "Link not valid", "This unsubscribe link is not valid for this newsletter.")
    shown = f"<strong>{html.escape(address)}</strong>"
    try:
        with open_suppression(settings) as suppression:
            if method == "POST":
                if not _is_one_click(body, content_type):
                    return 400, _page(settings, "Bad request", f"Expected a form field {html.escape(ONE_CLICK)}.")
                suppression.add_many([address], "unsubscribed", f"one-click {settings.list.id}")
                return 200, _page(
                    settings, "Unsubscribed", f"{shown} will receive no more emails from {html.escape(settings.title)}."
                )
            if address in suppression:
                return 200, _page(settings, "Already unsubscribed", f"{shown} is not on the list any more.")
    except NewsletterError:
        return 503, _page(settings, "Unavailable", "Unsubscribing is not available right now; please try later.")
    return 200, _page(
        settings,
        "Unsubscribe?",
        f"Stop sending {html.escape(settings.title)} to {shown}? Press the button to confirm.",
        form=True,
    )
