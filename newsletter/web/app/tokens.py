"""Signed, expiring confirmation tokens for double opt-in, and the keyed hash of an IP address.

A token is `<payload>.<mac>`, both base64url without padding. The payload is `expires:issued\\naddress\\nform`
(expiry as Unix seconds, issue time in milliseconds — a link is void once its address unsubscribed after
it was issued —; the form the request came from, kept for the consent record; older tokens have no
`:issued`); the MAC is
HMAC-SHA256 over a version label, the list id and the payload, keyed with the newsletter's secret
(`NEWSLETTER_UNSUBSCRIBE_SECRET`). The label keeps a confirmation token from ever passing for an
unsubscribe token or a form token signed with the same secret. Nothing is stored server-side until the
address confirms; the address is readable by whoever holds the link, which is the mailbox it was sent to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

_LABEL = b"newsletter-confirm-v1"
_SHAPE = re.compile(r"[A-Za-z0-9_-]{8,1400}\.[A-Za-z0-9_-]{43}")


class ConfirmTokenError(Exception):
    """Base: the token cannot be used. `status` is the HTTP answer."""

    status = 400


class MalformedConfirmToken(ConfirmTokenError):
    status = 400


class ForgedConfirmToken(ConfirmTokenError):
    status = 403


class ExpiredConfirmToken(ConfirmTokenError):
    status = 410


@dataclass(frozen=True)
class Confirmation:
    address: str
    form: str
    expires: int
    issued: float | None = None  # Unix seconds; None in a token made before links carried it


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("non-canonical base64")
    return raw


def _mac(secret: bytes, list_id: str, payload: bytes) -> bytes:
    return hmac.new(secret, _LABEL + b"\0" + list_id.encode() + b"\0" + payload, hashlib.sha256).digest()


def make_confirm_token(
    secret: bytes, list_id: str, address: str, form: str, hours: float, now: float | None = None
) -> str:
    issued = now if now is not None else time.time()
    expires = int(issued + hours * 3600)
    payload = f"{expires}:{int(issued * 1000)}\n{address}\n{form[:200]}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, list_id, payload))}"


def read_confirm_token(secret: bytes, list_id: str, token: str, now: float | None = None) -> Confirmation:
    """The confirmation a genuine, unexpired token carries; else a `ConfirmTokenError` subclass."""
    if not _SHAPE.fullmatch(token):
        raise MalformedConfirmToken("malformed confirmation link")
    encoded, encoded_mac = token.split(".")
    try:
        payload, mac = _unb64(encoded), _unb64(encoded_mac)
        times, address, form = payload.decode("utf-8").split("\n", 2)
        expires_text, _, issued_text = times.partition(":")
        expires = int(expires_text)
        issued = int(issued_text) / 1000 if issued_text else None
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise MalformedConfirmToken("malformed confirmation link") from None
    if not hmac.compare_digest(mac, _mac(secret, list_id, payload)):
        raise ForgedConfirmToken("this confirmation link is not valid for this newsletter")
    if (now if now is not None else time.time()) > expires:
        raise ExpiredConfirmToken("this confirmation link has expired")
    return Confirmation(address, form, expires, issued)


def ip_hash(secret: bytes, ip: str) -> str:
    """A keyed hash of an IP address: enough to tell two consents came from one address, never the
    address itself (and, keyed, not reversible by hashing the whole IPv4 space)."""
    return hmac.new(secret, b"newsletter-ip-v1\0" + ip.encode(), hashlib.sha256).hexdigest()[:32]
