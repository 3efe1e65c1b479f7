"""Bounce and complaint events from email service providers, over HTTP, into the same policy.

    webhook_routes(settings) → Router     mount it, e.g. `Mount("/webhooks", app=webhook_routes(settings))`
        POST /ses       Amazon SES notifications delivered by SNS (signature verified, see below)
        POST /mailgun   Mailgun webhooks (HMAC-SHA256 with NEWSLETTER_MAILGUN_SIGNING_KEY)
    create_app(settings) → Starlette      just those routes under /webhooks, for a standalone server

Amazon SNS signs each message with a certificate it publishes at `SigningCertURL`. The URL is checked
against `SNS_CERT_URL` *before* anything is fetched — otherwise anyone could point it at a certificate of
their own — then the certificate is read from the configured source: by default over HTTPS from
amazonaws.com (whose TLS certificate vouches for it); with `[webhooks] sns_cert_dir`, from a folder of
PEM files named like the URL's last segment. With `[webhooks] sns_ca_file` the certificate must also
be issued by one of the CAs in that file and be within its validity. `sns_topics` limits the topics
accepted. A subscription confirmation is not followed automatically (this server makes no outgoing
requests on a stranger's say-so): its URL is logged for the operator to open once.

Answers: 200 handled (or nothing to do), 400 not a notification, 403 signature or origin refused,
413 too large, 503 not configured. Each event counts once (its provider id is remembered with the
Message-IDs of the mailbox reports); the decisions are the mailbox's: hard and complaint at once,
soft after the configured count.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

from ..bounces import Decider, Decision, Event, Policy, edition_of, open_bounce_state
from ..config import Settings
from ..delivery import open_suppression
from ..errors import ConfigError

log = logging.getLogger("newsletter.webhooks")

MAILGUN_KEY_ENV = "NEWSLETTER_MAILGUN_SIGNING_KEY"
SNS_CERT_URL = re.compile(r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/SimpleNotificationService-[A-Za-z0-9]+\.pem")
MAX_BODY = 256 * 1024  # SNS messages are at most 256 KB
MAX_CERT = 64 * 1024
MAILGUN_MAX_AGE = 15 * 60  # seconds a signed Mailgun request stays acceptable (replays are also deduplicated)
_SIGNED_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SIGNED_SUBSCRIPTION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


class Refused(Exception):
    """A request this server will not act on; `status` is the HTTP answer, the message one line for the log."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- SNS signatures --------------------------------------------------------------------------------

CertSource = Callable[[str], bytes]


def https_cert_source(timeout: float = 10.0) -> CertSource:
    """Fetch signing certificates from amazonaws.com over verified HTTPS, each URL once per process."""
    cache: dict[str, bytes] = {}

    def get(url: str) -> bytes:
        if url not in cache:
            import httpx

            response = httpx.get(url, timeout=timeout, follow_redirects=False)
            response.raise_for_status()
            if len(response.content) > MAX_CERT:
                raise ValueError("certificate too large")
            cache[url] = response.content
        return cache[url]

    return get


def directory_cert_source(folder: Path) -> CertSource:
    """Certificates kept on disk: `<folder>/<last segment of SigningCertURL>`."""

    def get(url: str) -> bytes:
        path = folder / url.rsplit("/", 1)[-1]
        if path.stat().st_size > MAX_CERT:
            raise ValueError("certificate too large")
        return path.read_bytes()

    return get


class SnsVerifier:
    """Checks an SNS message's signature (versions 1 and 2), its certificate's origin, and its topic."""

    def __init__(
        self, cert_source: CertSource, trusted_cas: list[Any] | None = None, topics: tuple[str, ...] = ()
    ) -> None:
        self.cert_source = cert_source
        self.trusted_cas = trusted_cas
        self.topics = topics

    def _certificate(self, url: str) -> Any:
        from cryptography import x509

        if not SNS_CERT_URL.fullmatch(url):
            raise Refused(403, f"SigningCertURL {url[:200]!r} is not an Amazon SNS certificate URL")
        try:
            cert = x509.load_pem_x509_certificate(self.cert_source(url))
        except Exception as exc:  # unreachable, missing, not PEM: the message cannot be checked
            raise Refused(403, f"cannot read the signing certificate {url} ({type(exc).__name__})") from None
        if self.trusted_cas is not None:
            now = datetime.now(UTC)
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                raise Refused(403, f"signing certificate {url} is outside its validity")
            for ca in self.trusted_cas:
                try:
                    cert.verify_directly_issued_by(ca)
                    break
                except Exception:  # a different issuer, or a bad signature: try the next CA
                    continue
            else:
                raise Refused(403, f"signing certificate {url} is not issued by a trusted CA")
        return cert

    def verify(self, body: dict[str, Any]) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        kind = body.get("Type")
        names = _SIGNED_NOTIFICATION if kind == "Notification" else _SIGNED_SUBSCRIPTION
        if kind not in ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"):
            raise Refused(400, f"not an SNS message (Type {str(kind)[:40]!r})")
        if self.topics and body.get("TopicArn") not in self.topics:
            raise Refused(403, f"topic {str(body.get('TopicArn'))[:200]!r} is not in [webhooks] sns_topics")
        version = str(body.get("SignatureVersion", ""))
        algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)
        if algorithm is None:
            raise Refused(403, f"unknown SignatureVersion {version[:10]!r}")
        try:
            signature = base64.b64decode(str(body.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise Refused(403, "Signature is not base64") from None
        text = "".join(f"{name}\n{body[name]}\n" for name in names if body.get(name) is not None)
        cert = self._certificate(str(body.get("SigningCertURL", "")))
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused(403, "signing certificate does not hold an RSA key")
        try:
            key.verify(signature, text.encode("utf-8"), padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            raise Refused(403, "SNS signature does not verify") from None


# --- events → decisions ----------------------------------------------------------------------------


def _apply(
    settings: Settings, event_id: str, events: list[tuple[str, Event, str]], source: str, about: Original
) -> list[Decision]:
    """Run the policy over one provider event, once per `event_id`, each bounce or complaint counted
    against the edition the message it is `about` names (blocking: call in a thread)."""
    edition = edition_of(settings, *about)
    with open_bounce_state(settings) as state, open_suppression(settings) as suppression:
        if state.seen(event_id):
            return []
        decider = Decider(Policy.from_settings(settings), state, suppression, source=source)
        decisions = [
            decider.decide(address, kind, diagnostic, event_id, edition=edition) for address, kind, diagnostic in events
        ]
        state.remember(event_id, "webhook", datetime.now(UTC))
    for decision in decisions:  # the address only at debug level: info lines go to shared log pipelines
        log.info("%s: %s, %s", source, decision.event, decision.outcome)
        log.debug("%s: %s", source, decision)
    return decisions


def _address(value: object) -> str:
    text = str(value or "").strip()
    match = re.search(r"<([^<>@\s]+@[^<>\s]+)>", text)  # SES may give `Name <addr>`
    text = match.group(1) if match else text
    return text if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text) and len(text) <= 320 else ""


def ses_events(notification: dict[str, Any]) -> tuple[str, list[tuple[str, Event, str]]]:
    """(event id, [(address, event, diagnostic)]) of one SES notification (or event-publishing record)."""
    kind = str(notification.get("notificationType") or notification.get("eventType") or "")
    events: list[tuple[str, Event, str]] = []
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        severity = {"Permanent": "hard", "Transient": "soft"}.get(str(bounce.get("bounceType")))
        if severity is None:  # Undetermined: SES itself could not tell; no guess
            return str(bounce.get("feedbackId", "")), []
        for recipient in bounce.get("bouncedRecipients") or []:
            address = _address(recipient.get("emailAddress"))
            diagnostic = " ".join(str(recipient.get(k) or "") for k in ("status", "diagnosticCode")).strip()
            if address:
                events.append((address, severity, diagnostic[:500] or str(bounce.get("bounceSubType", ""))))  # type: ignore[arg-type]
        return str(bounce.get("feedbackId", "")), events
    if kind == "Complaint":
        complaint = notification.get("complaint") or {}
        if str(complaint.get("complaintFeedbackType", "")).lower() == "not-spam":
            return str(complaint.get("feedbackId", "")), []
        for recipient in complaint.get("complainedRecipients") or []:
            address = _address(recipient.get("emailAddress"))
            if address:
                events.append((address, "complaint", f"SES complaint {complaint.get('complaintFeedbackType') or ''}"))
        return str(complaint.get("feedbackId", "")), events
    return "", []


Original = tuple[dict[str, str], str]  # the headers that may name an edition; the envelope sender
_NAMING = ("message-id", "list-id", "feedback-id")


def ses_original(notification: dict[str, Any]) -> Original:
    """What an SES notification tells of the message it is about: its Message-ID (and List-Id and
    Feedback-ID when SES keeps the original headers), and its envelope sender — our return path."""
    mail = notification.get("mail")
    if not isinstance(mail, dict):
        return {}, ""
    found: dict[str, str] = {}
    for header in mail.get("headers") or []:
        name = str(header.get("name", "")).lower() if isinstance(header, dict) else ""
        if name in _NAMING:
            found.setdefault(name, str(header.get("value", ""))[:500])
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and common.get("messageId"):
        found.setdefault("message-id", str(common["messageId"])[:500])
    return found, str(mail.get("source") or "")[:1000]


def mailgun_original(data: dict[str, Any]) -> Original:
    """The same of a Mailgun event: `message.headers.message-id` (without its brackets), the envelope sender."""
    message, envelope = data.get("message"), data.get("envelope")
    headers = message.get("headers") if isinstance(message, dict) else None
    found: dict[str, str] = {}
    if isinstance(headers, dict) and headers.get("message-id"):
        found["message-id"] = f"<{str(headers['message-id']).strip('<> ')[:500]}>"
    sender = envelope.get("sender") if isinstance(envelope, dict) else ""
    return found, str(sender or "")[:1000]


def mailgun_events(data: dict[str, Any]) -> tuple[str, list[tuple[str, Event, str]]]:
    """(event id, [(address, event, diagnostic)]) of one Mailgun `event-data` object."""
    kind = data.get("event")
    address = _address(data.get("recipient"))
    event_id = str(data.get("id") or "")
    if not address:
        return event_id, []
    if kind == "failed":
        severity = {"permanent": "hard", "temporary": "soft"}.get(str(data.get("severity")))
        if severity is None:
            return event_id, []
        status = data.get("delivery-status") or {}
        words = " ".join(str(status.get(k) or "") for k in ("code", "message", "description")).strip()
        return event_id, [(address, severity, " ".join(words.split())[:500])]  # type: ignore[list-item]
    if kind == "complained":
        return event_id, [(address, "complaint", "Mailgun complaint")]
    return event_id, []


# --- the routes ------------------------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise Refused(413, "request body too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Refused(413, "request body too large")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "body is not a JSON object")
    return data


def _answer(status: int, message: str, decisions: list[Decision] | None = None) -> JSONResponse:
    payload: dict[str, Any] = {"status": message}
    if decisions is not None:
        payload["decisions"] = [{"address": d.address, "event": d.event, "outcome": d.outcome} for d in decisions]
    return JSONResponse(payload, status_code=status)


def _sns_verifier(settings: Settings, cert_source: CertSource | None) -> SnsVerifier:
    table = settings.section("webhooks")
    folder = table.get("sns_cert_dir")
    source = cert_source or (directory_cert_source(settings.root / str(folder)) if folder else https_cert_source())
    cas: list[Any] | None = None
    ca_file = table.get("sns_ca_file")
    if ca_file:
        from cryptography import x509

        try:
            cas = x509.load_pem_x509_certificates((settings.root / str(ca_file)).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"[webhooks] sns_ca_file {ca_file}: cannot read CA certificates ({exc})") from None
    topics = table.get("sns_topics", [])
    if isinstance(topics, str):
        topics = [topics]
    return SnsVerifier(source, cas, tuple(str(t) for t in topics))


def webhook_routes(settings: Settings, *, cert_source: CertSource | None = None) -> Router:
    """The provider endpoints as one mountable Router (see the module docstring)."""
    verifier = _sns_verifier(settings, cert_source)

    async def ses(request: Request) -> JSONResponse:
        try:
            body = await _json_body(request)
            verifier.verify(body)
        except Refused as exc:
            log.warning("SES webhook refused (%d): %s", exc.status, exc)
            return _answer(exc.status, str(exc))
        if body["Type"] != "Notification":
            log.warning(
                "SNS %s for %s: open %s once to confirm it",
                body["Type"],
                str(body.get("TopicArn"))[:200],
                str(body.get("SubscribeURL"))[:500],
            )
            return _answer(200, "subscription message logged; confirm it by hand")
        try:
            notification = json.loads(str(body.get("Message", "")))
        except ValueError:
            return _answer(400, "SNS Message is not JSON")
        if not isinstance(notification, dict):
            return _answer(400, "SNS Message is not a JSON object")
        event_id, events = ses_events(notification)
        event_id = f"ses:{event_id or body.get('MessageId', '')}"
        about = ses_original(notification)
        decisions = await run_in_threadpool(_apply, settings, event_id, events, "Amazon SES", about) if events else []
        return _answer(200, "ok", decisions)

    async def mailgun(request: Request) -> JSONResponse:
        key = os.environ.get(MAILGUN_KEY_ENV, "").encode("utf-8")
        if not key:
            return _answer(503, f"{MAILGUN_KEY_ENV} is not set")
        try:
            body = await _json_body(request)
            signed = body.get("signature") or {}
            timestamp, token = str(signed.get("timestamp", "")), str(signed.get("token", ""))
            expected = hmac.new(key, (timestamp + token).encode("utf-8"), hashlib.sha256).hexdigest()
            if not timestamp.isdigit() or not hmac.compare_digest(expected, str(signed.get("signature", ""))):
                raise Refused(403, "Mailgun signature does not verify")
            if abs(time.time() - int(timestamp)) > MAILGUN_MAX_AGE:
                raise Refused(403, "Mailgun signature is too old (or the clock is wrong)")
            data = body.get("event-data")
            if not isinstance(data, dict):
                raise Refused(400, "no event-data object")
        except Refused as exc:
            log.warning("Mailgun webhook refused (%d): %s", exc.status, exc)
            return _answer(exc.status, str(exc))
        event_id, events = mailgun_events(data)
        event_id = f"mailgun:{event_id or token}"
        about = mailgun_original(data)
        decisions = await run_in_threadpool(_apply, settings, event_id, events, "Mailgun", about) if events else []
        return _answer(200, "ok", decisions)

    return Router(routes=[Route("/ses", ses, methods=["POST"]), Route("/mailgun", mailgun, methods=["POST"])])


def create_app(settings: Settings, *, cert_source: CertSource | None = None) -> Starlette:
    """A server holding only the webhooks, under /webhooks (what `newsletter serve` mounts too)."""
    return Starlette(routes=[Mount("/webhooks", app=webhook_routes(settings, cert_source=cert_source))])
