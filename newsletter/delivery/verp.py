"""VERP: a return path per recipient, so a bounce names the subscriber even when its body does not.

With `[mailing] return_path = "bounces+{token}@example.org"` every message goes out with MAIL FROM
`bounces+<token>@example.org`, and the bounce comes back *to* that address. The token is signed like the
unsubscribe token (HMAC-SHA256 keyed with `NEWSLETTER_UNSUBSCRIBE_SECRET` over the list id and the
address) under its own domain tag, so a return path can never be replayed as an unsubscribe link or the
other way round, and nobody can forge a bounce that suppresses an address of their choosing.

The token differs from the unsubscribe token in its alphabet: base32 in lower case (`[a-z2-7]`), not
base64url. Mail systems may lower-case the local part on the way back (some write `Delivered-To` that
way), and base32 survives that; the MAC is cut to 80 bits to keep the local part short, which is
still far beyond guessing for an attacker who gets one try per forged bounce.

**The edition.** A token made for a mailing also carries which edition it was: `<address>.<edition>.<MAC>`,
the edition being 8 base32 characters — the day (days since 2000-01-01, two bytes) and three bytes of a
hash of the list id and the language edition (an opaque short id of the newsletter, nothing a reader
can read) — and the MAC (its own domain tag, v2) covers the address and the edition together. A bounce
or a complaint that comes back with it counts against the edition that caused it (`newsletter status`).
Tokens without an edition (made before, or for a test message) stay valid: they name the reader only.

`unsubscribe_mailbox` is the other way mail comes back: where a `mailto:` List-Unsubscribe points
when no address is configured — the mailbox the bounces come back to, which `newsletter bounces` reads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, timedelta

from ..config import Settings
from ..edition import feedback_id
from ..errors import ConfigError, TokenError

PLACEHOLDER = "{token}"
_DOMAIN = b"newsletter-verp-v1"
_DOMAIN_EDITION = b"newsletter-verp-v2"  # a token that carries its edition
_MAC_BYTES = 10  # 80 bits → exactly 16 base32 characters, no padding
_TOKEN = r"[a-z2-7]{2,400}(?:\.[a-z2-7]{8})?\.[a-z2-7]{16}"
_EPOCH = date(2000, 1, 1)


@dataclass(frozen=True)
class EditionMark:
    """The edition a return path was made for: its day and an opaque id of the list and language edition."""

    day: date
    newsletter: str  # 6 hex characters: `newsletter_mark(list_id, language)`

    def encode(self) -> str:
        days = (self.day - _EPOCH).days
        return _b32(days.to_bytes(2, "big") + bytes.fromhex(self.newsletter))

    @classmethod
    def decode(cls, text: str) -> EditionMark:
        raw = _unb32(text)
        return cls(_EPOCH + timedelta(days=int.from_bytes(raw[:2], "big")), raw[2:].hex())


def edition_mark(list_id: str, language: str, day: date) -> EditionMark | None:
    """The mark a mailing of edition `day` puts in its return paths (None for a day two bytes cannot hold)."""
    if not 0 <= (day - _EPOCH).days < 1 << 16:
        return None
    return EditionMark(day, newsletter_mark(list_id, language))


def feedback_newsletter(settings: Settings) -> str:
    """The newsletter field of the `Feedback-ID` our messages carry (`edition:newsletter:sender`): what
    tells a report's original message is one of this list's when no return path token says so."""
    return feedback_id(settings, "2000-01-01").split(":")[1]


def newsletter_mark(list_id: str, language: str) -> str:
    """The short opaque id of a list's language edition in a return path (not secret, not readable)."""
    return hashlib.sha256(f"{list_id}\0{language}".encode()).hexdigest()[:6]


@dataclass(frozen=True)
class Verified:
    """What a genuine return path token says: whose it is, and (when it carries one) which edition."""

    address: str
    edition: EditionMark | None = None


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes:
    upper = text.upper()
    raw = base64.b32decode(upper + "=" * (-len(upper) % 8))
    if _b32(raw) != text:  # non-canonical trailing bits: one address, one token
        raise ValueError("non-canonical base32")
    return raw


def _mac(secret: bytes, list_id: str, address: bytes, edition: str = "") -> bytes:
    domain, extra = (_DOMAIN_EDITION, b"\0" + edition.encode("ascii")) if edition else (_DOMAIN, b"")
    digest = hmac.new(secret, domain + b"\0" + list_id.encode("utf-8") + b"\0" + address + extra, hashlib.sha256)
    return digest.digest()[:_MAC_BYTES]


def make_token(secret: bytes, list_id: str, address: str, edition: EditionMark | None = None) -> str:
    """The VERP token for `address`: `<base32 address>[.<edition>].<base32 MAC>`, lower case."""
    raw = address.strip().lower().encode("utf-8")
    mark = edition.encode() if edition is not None else ""
    return f"{_b32(raw)}.{mark + '.' if mark else ''}{_b32(_mac(secret, list_id, raw, mark))}"


def verify_token(secret: bytes, list_id: str, token: str) -> str:
    """The (lower-cased) address `token` was made for, or `TokenError` when it is malformed or forged."""
    return read_token(secret, list_id, token).address


def read_token(secret: bytes, list_id: str, token: str) -> Verified:
    """The address `token` was made for and its edition (None in a token without one), or `TokenError`
    when it is malformed or forged."""
    token = token.lower()
    if not re.fullmatch(_TOKEN, token):
        raise TokenError("malformed VERP token")
    encoded_address, *mark, encoded_mac = token.split(".")
    try:
        raw = _unb32(encoded_address)
        mac = _unb32(encoded_mac)
        address = raw.decode("utf-8")
        edition = EditionMark.decode(mark[0]) if mark else None
    except (binascii.Error, ValueError):
        raise TokenError("malformed VERP token") from None
    if "@" not in address or any(ord(c) < 0x21 or c == "\x7f" for c in address):
        raise TokenError("malformed VERP token")
    if not hmac.compare_digest(mac, _mac(secret, list_id, raw, mark[0] if mark else "")):
        raise TokenError("VERP token does not verify (forged, or signed with another secret or list)")
    return Verified(address, edition)


@dataclass(frozen=True)
class ReturnPath:
    """A `return_path` setting with `{token}` in its local part, e.g. `bounces+{token}@example.org`."""

    prefix: str
    suffix: str
    domain: str

    @classmethod
    def parse(cls, template: str) -> ReturnPath | None:
        """None for a plain address (no VERP); ConfigError for a template that cannot work."""
        if PLACEHOLDER not in template:
            return None
        local, at, domain = template.strip().rpartition("@")
        if not at or template.count(PLACEHOLDER) != 1 or PLACEHOLDER not in local:
            raise ConfigError(
                f"[mailing] return_path {template!r}: {PLACEHOLDER} must appear once, in the part before the @"
            )
        prefix, _, suffix = local.partition(PLACEHOLDER)
        if not prefix or not domain or not re.fullmatch(r"[A-Za-z0-9.!#$%&'*+/=?^_`|~-]*", prefix + suffix):
            raise ConfigError(
                f"[mailing] return_path {template!r}: expected something like 'bounces+{PLACEHOLDER}@example.org'"
            )
        return cls(prefix, suffix, domain.lower())

    def address(self, secret: bytes, list_id: str, recipient: str, edition: EditionMark | None = None) -> str:
        """The MAIL FROM for one recipient (of `edition`, when it is a mailing's)."""
        return f"{self.prefix}{make_token(secret, list_id, recipient, edition)}{self.suffix}@{self.domain}"

    def mailbox(self) -> str | None:
        """The address without a token (`bounces+{token}@d` → `bounces@d`): the mailbox subaddresses
        deliver to. None when the token is not a `+`/`-` subaddress of a plain local part."""
        if self.suffix or len(self.prefix) < 2 or self.prefix[-1] not in "+-":
            return None
        return f"{self.prefix[:-1]}@{self.domain}"

    def sample(self) -> str:
        """A syntactically complete address, for validating the rest of the template."""
        return f"{self.prefix}{'a' * 8}.{'a' * 16}{self.suffix}@{self.domain}"

    def pattern(self) -> re.Pattern[str]:
        """Finds return paths of this shape in header text; group 1 is the token."""
        return re.compile(
            rf"(?<![A-Za-z0-9.+_-]){re.escape(self.prefix)}({_TOKEN}){re.escape(self.suffix)}@{re.escape(self.domain)}",
            re.IGNORECASE,
        )

    def find(self, text: str, secret: bytes, list_id: str) -> tuple[list[str], int]:
        """(addresses of the genuine tokens in `text`, number of tokens that did not verify)."""
        found, forged = self.read(text, secret, list_id)
        return list(dict.fromkeys(v.address for v in found)), forged

    def read(self, text: str, secret: bytes, list_id: str) -> tuple[list[Verified], int]:
        """(what each genuine token in `text` says, once each; number of tokens that did not verify)."""
        found: list[Verified] = []
        forged = 0
        for match in self.pattern().finditer(text):
            try:
                verified = read_token(secret, list_id, match.group(1))
            except TokenError:
                forged += 1
                continue
            if verified not in found:
                found.append(verified)
        return found, forged


def unsubscribe_mailbox(settings: Settings) -> str:
    """Where `mailto:` unsubscribe requests go: `[list] unsubscribe_mailto`, else — when `newsletter
    bounces` reads a mailbox (`[bounces]`) — the mailbox bounces come back to (the return path without
    its token, else the sender), which it reads: a provider without one-click (or a reader's mail client)
    sends the request there, and the signed token in its subject says whose it is. "" when there is
    neither."""
    configured = settings.list.unsubscribe_mailto.strip()
    bounces = settings.section("bounces")
    if configured or not (bounces.get("host") or bounces.get("path")):
        return configured
    # Bounces come back to the MAIL FROM: the return path, else the sender's own address.
    template = str(settings.section("mailing").get("return_path") or "").strip() or settings.sender.address
    verp = ReturnPath.parse(template)
    return (verp.mailbox() or "") if verp is not None else template
