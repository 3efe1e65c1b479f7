"""DKIM: every finished message signed just before the sink, with the keys `[dkim]` names (dkimpy).

    Personalizer ──message bytes──▶ Signer.sign ──▶ sink (outbox, SMTP)

    [dkim]
    domain = "newsletter.example.org"   # d=; default: the From domain (DMARC alignment wants them equal)
    selector = "mb2027a"                # signs RSA-SHA256: data/dkim/mb2027a.pem
    ed25519_selector = "mb2027e"        # optional second signature, Ed25519-SHA256 (RFC 8463)
    next_selector = "mb2027b"           # optional: published ahead of a rotation; `doctor` checks it
    key_dir = "data/dkim"               # where `newsletter dkim keygen` writes <selector>.pem

A key file may be encrypted; its passphrase comes from NEWSLETTER_DKIM_PASSPHRASE, never from a file.
The signed header set is fixed (`SIGNED`): the headers a reader sees and the ones bulk-sender rules
look at. From, Subject, Reply-To and the List-* headers are signed once more than they occur
(`OVERSIGNED`), so a copy with one of them added in transit no longer verifies.

Canonicalization is relaxed for headers (a relay that refolds one does not break the signature) and
simple for the body: both parts are quoted-printable with lines under 78 octets and no trailing space,
so there is nothing a relay would rewrap, and relaxed body canonicalization would cost more than the
signature itself on a 100 KB message (`bench/run.py dkim`).

dkimpy does everything DKIM: which headers, canonicalization, the tags, folding. Only its RSA
private-key operation is pure Python (~15 ms for 2048 bits, most of a message's cost); for the keys
loaded here that one step is done by OpenSSL (`cryptography`), which gives the same bytes — PKCS#1
v1.5 signatures are deterministic, and tests/test_dkim.py checks both agree.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, replace
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from ..config import Settings
from ..errors import ConfigError
from ..fsutil import write_atomic
from ..options import Options, Table
from .sinks.base import Envelope, Outcome, Sink

PASSPHRASE_ENV = "NEWSLETTER_DKIM_PASSPHRASE"
RSA_BITS = 2048
SIGNED = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "auto-submitted",
    "mime-version",
    "content-type",
    "content-language",
)
OVERSIGNED = ("from", "subject", "reply-to", "list-id", "list-unsubscribe", "list-unsubscribe-post")
_INCLUDE = [h.encode() for h in (*SIGNED, *OVERSIGNED)]
_CANON = (b"relaxed", b"simple")
_KNOWN = ("domain", "selector", "ed25519_selector", "next_selector", "key_dir")


@dataclass(frozen=True)
class DkimOptions:
    """`[dkim]`, checked once. `domain` is the From domain when the table names none."""

    domain: str
    selector: str  # "" when `[dkim]` names no selector: messages go out unsigned
    key_dir: Path
    ed25519_selector: str = ""
    next_selector: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimOptions | None:
        """The `[dkim]` options of `settings` (`settings.options(DKIM)`, read once); None when they name
        no selector (messages go out unsigned)."""
        options = settings.options(DKIM)
        if not options.selector:
            return None
        if options.domain:
            return options
        return replace(options, domain=settings.sender.address.rsplit("@", 1)[-1].lower())

    def key_path(self, selector: str) -> Path:
        return self.key_dir / f"{selector}.pem"

    def selectors(self) -> list[str]:
        """Every selector that must be published: the signing ones and the next one."""
        return [s for s in (self.selector, self.ed25519_selector, self.next_selector) if s]


def parse_dkim(table: Table) -> DkimOptions:
    table.only(_KNOWN)
    values = {}
    for key in _KNOWN:
        value = table.get(key, "")
        if not isinstance(value, str):
            table.fail(key, f"must be a string, got {value!r}")
        values[key] = value.strip()
    for key in ("selector", "ed25519_selector", "next_selector"):
        if values[key] and not _valid_label(values[key]):
            table.fail(key, f"must be a DNS label (letters, digits, '-'), got {values[key]!r}")
    if not values["selector"] and (values["ed25519_selector"] or values["next_selector"]):
        table.fail("selector", "is missing (the RSA key every receiver can check)")
    return DkimOptions(
        domain=values["domain"].lower(),
        selector=values["selector"],
        key_dir=table.root / (values["key_dir"] or "data/dkim"),
        ed25519_selector=values["ed25519_selector"],
        next_selector=values["next_selector"],
    )


DKIM = Options("dkim", parse_dkim)


def key_dir(settings: Settings) -> Path:
    """Where keys go: `[dkim] key_dir`, default `data/dkim`."""
    return settings.options(DKIM).key_dir


def _valid_label(text: str) -> bool:
    return 0 < len(text) <= 63 and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)


# --- keys ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """A private key as dkimpy takes it, and the public half as DNS publishes it."""

    selector: str
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    private: bytes  # PKCS#1 PEM (RSA) or the base64 seed (Ed25519)
    public: str  # the p= value

    @property
    def kind(self) -> str:
        return "rsa" if self.algorithm == "rsa-sha256" else "ed25519"


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV, "")
    return value.encode() if value else None


def load_key(path: Path, selector: str) -> Key:
    """Read `path` (PEM, encrypted or not); one clear line when it is missing, locked or too weak."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the DKIM key of selector {selector} ({exc.strerror}); "
            f"create it with `newsletter dkim keygen --selector {selector}`"
        ) from None
    secret = _passphrase()
    try:
        try:
            key = serialization.load_pem_private_key(data, password=secret)
        except TypeError:  # a passphrase given for a plain key, or none for an encrypted one
            if secret is None:
                raise ConfigError(f"{path}: the DKIM key is encrypted; set {PASSPHRASE_ENV}") from None
            key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        raise ConfigError(f"{path}: not a PEM private key, or {PASSPHRASE_ENV} is not its passphrase") from None
    return _key_from(key, selector, path)


def _key_from(key: object, selector: str, path: Path) -> Key:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < RSA_BITS:
            raise ConfigError(f"{path}: an RSA key of {key.key_size} bits; DKIM keys need {RSA_BITS} or more")
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        _register(pem, key)
        return Key(selector, "rsa-sha256", pem, base64.b64encode(der).decode("ascii"))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return Key(selector, "ed25519-sha256", base64.b64encode(seed), base64.b64encode(raw).decode("ascii"))
    raise ConfigError(f"{path}: a DKIM key must be RSA or Ed25519")


def generate_key(path: Path, selector: str, *, ed25519_key: bool = False) -> Key:
    """Write a new key to `path` (mode 0600, encrypted when NEWSLETTER_DKIM_PASSPHRASE is set); never overwrite."""
    if path.exists():
        raise ConfigError(f"{path}: a key for selector {selector} exists already; pick a new selector to rotate")
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = (
        ed25519.Ed25519PrivateKey.generate()
        if ed25519_key
        else rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    )
    secret = _passphrase()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    write_atomic(path, pem, mode=0o600)
    return _key_from(key, selector, path)


def txt_record(key: Key, domain: str) -> tuple[str, str]:
    """(name, value) of the DNS TXT record that publishes `key`."""
    return f"{key.selector}._domainkey.{domain}", f"v=DKIM1; k={key.kind}; p={key.public}"


def zone_line(key: Key, domain: str) -> str:
    """The record as a zone-file line, the value cut into strings of at most 255 octets (RFC 1035)."""
    name, value = txt_record(key, domain)
    chunks = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{name}. 3600 IN TXT ( {chunks} )"


# --- signing ---------------------------------------------------------------------------------------


class _OpenSSLKey(dict[str, int]):
    """dkimpy's parsed RSA key (a dict of numbers), carrying the OpenSSL key that signs in its place."""

    openssl: rsa.RSAPrivateKey


_PARSED: dict[bytes, _OpenSSLKey] = {}  # PKCS#1 PEM → parsed once (dkimpy parses the PEM on every signature)
_pure_parse = dkim.parse_pem_private_key
_pure_sign = dkim.RSASSA_PKCS1_v1_5_sign


def _parse_pem(data: bytes) -> dict[str, int]:
    parsed = _PARSED.get(data)
    return parsed if parsed is not None else dict(_pure_parse(data))


def _rsa_sign(hashed: object, key: dict[str, int]) -> bytes:
    digest = hashed.digest()  # type: ignore[attr-defined]
    if isinstance(key, _OpenSSLKey) and len(digest) == 32:  # rsa-sha256, the only one signed here
        return key.openssl.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    return bytes(_pure_sign(hashed, key))


def _register(pem: bytes, key: rsa.RSAPrivateKey) -> None:
    parsed = _OpenSSLKey(_pure_parse(pem))
    parsed.openssl = key
    _PARSED[pem] = parsed


# Installed once, for every caller of dkimpy in this process; keys not registered above go the pure way.
dkim.parse_pem_private_key = _parse_pem
dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign


class Signer:
    """Adds one DKIM-Signature per key to finished message bytes (CRLF line ends)."""

    def __init__(self, domain: str, keys: list[Key]) -> None:
        self.domain = domain
        self.keys = keys
        self._domain = domain.encode("ascii")

    @classmethod
    def from_options(cls, options: DkimOptions) -> Signer:
        keys = [load_key(options.key_path(options.selector), options.selector)]
        if keys[0].kind != "rsa":
            raise ConfigError(f"{options.key_path(options.selector)}: [dkim] selector needs an RSA key")
        if options.ed25519_selector:
            second = load_key(options.key_path(options.ed25519_selector), options.ed25519_selector)
            if second.kind != "ed25519":
                raise ConfigError(f"{options.key_path(options.ed25519_selector)}: not an Ed25519 key")
            keys.append(second)
        return cls(options.domain, keys)

    def sign(self, data: bytes) -> bytes:
        """`data` with the signature headers in front (the RSA one first)."""
        parsed = _parse(data)
        out = []
        for key in self.keys:
            # A DKIM object per call: dkimpy keeps the parsed message on it, and workers sign in parallel.
            signer = dkim.DKIM(signature_algorithm=key.algorithm.encode("ascii"))
            signer.headers, signer.body = [[name, value] for name, value in parsed[0]], parsed[1]
            selector = key.selector.encode("ascii")
            out.append(signer.sign(selector, self._domain, key.private, canonicalize=_CANON, include_headers=_INCLUDE))
        return b"".join(out) + data

    def describe(self) -> str:
        return f"DKIM d={self.domain} s=" + ",".join(f"{k.selector} ({k.kind})" for k in self.keys)


def _parse(data: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's (headers, body) of a message. The finished messages here have CRLF line ends only, and
    then the body is the bytes after the blank line as they are: only the header block goes through
    dkimpy's line-by-line parser, not the 100 KB behind it."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or data.count(b"\n") != data.count(b"\r\n"):
        headers, body = dkim.rfc822_parse(data)
        return headers, body
    headers, _ = dkim.rfc822_parse(data[: end + 2])
    return headers, data[end + 4 :]


class SigningSink(Sink):
    """Signs each message, then hands it to `inner`: the sink's contract is unchanged."""

    def __init__(self, inner: Sink, signer: Signer) -> None:
        self.inner = inner
        self.signer = signer
        self.concurrency = inner.concurrency
        self.inline = inner.inline

    def open(self) -> None:
        self.inner.open()

    def send(self, envelope: Envelope) -> Outcome:
        return self.inner.send(replace(envelope, data=self.signer.sign(envelope.data)))

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return f"{self.inner.describe()}, {self.signer.describe()}"


_SIGNERS: dict[tuple[object, ...], Signer] = {}


def signer_for(settings: Settings) -> Signer | None:
    """The signer `[dkim]` configures (keys loaded and checked now), or None.

    Kept per options and key-file versions: the public app signs each confirmation email, and decrypting
    a key costs more than signing with it; a new key file (or passphrase) is read again."""
    options = DkimOptions.from_settings(settings)
    if options is None:
        return None
    paths = [options.key_path(s) for s in (options.selector, options.ed25519_selector) if s]
    try:
        versions = tuple(p.stat().st_mtime_ns for p in paths)
    except OSError:  # missing: load_key says so in one line
        return Signer.from_options(options)
    key = (options, versions, os.environ.get(PASSPHRASE_ENV, ""))
    signer = _SIGNERS.get(key)
    if signer is None:
        signer = _SIGNERS[key] = Signer.from_options(options)
    return signer


def signing(settings: Settings, sink: Sink, signer: Signer | None = None) -> Sink:
    """`sink` behind a signer when `[dkim]` is configured; `sink` itself otherwise."""
    signer = signer or signer_for(settings)
    return SigningSink(sink, signer) if signer else sink
