"""ESP webhooks (Amazon SES via SNS, Mailgun) served by a real uvicorn subprocess.

The SNS signing certificate comes from a CA made here; `[webhooks] sns_cert_dir` holds it under the
name its SigningCertURL ends with, and `sns_ca_file` makes that CA the only trusted one, so nothing is
fetched from the network.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.web.webhooks import MAILGUN_KEY_ENV
from tests.helpers import free_port
from tests.test_bounces import entry, make_root

TOPIC = "arn:aws:sns:eu-west-1:123456789012:newsletter-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123abcd.pem"
ROGUE_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-rogue.pem"
MAILGUN_KEY = "mailgun-test-signing-key"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Server:
    url: str
    root: Path
    signer: rsa.RSAPrivateKey
    rogue: rsa.RSAPrivateKey

    def sns(self, message: dict[str, Any] | str, *, version: str = "1", **fields: Any) -> dict[str, Any]:
        """An SNS notification signed the way SNS signs: the listed fields, `name\\nvalue\\n` each."""
        body: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": fields.pop("MessageId", f"sns-{time.monotonic_ns()}"),
            "TopicArn": TOPIC,
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": "2016-11-30T06:01:12.000Z",
            "SignatureVersion": version,
            "SigningCertURL": CERT_URL,
            **fields,
        }
        order = (
            ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
            if body["Type"] == "Notification"
            else ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
        )
        text = "".join(f"{k}\n{body[k]}\n" for k in order if k in body)
        key = self.rogue if body["SigningCertURL"] == ROGUE_URL else self.signer
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        body["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), algorithm)).decode()
        return body

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(self.url + path, content=content, headers={"content-type": "application/json"}, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("webhooks")
    ca_key, signer, rogue, rogue_ca_key = _key(), _key(), _key(), _key()
    ca = _cert("Test SNS CA", ca_key, "Test SNS CA", ca_key, ca=True)
    root = make_root(
        tmp,
        f'\n[webhooks]\nsns_cert_dir = "sns-certs"\nsns_ca_file = "ca.pem"\nsns_topics = ["{TOPIC}"]\n',
    )
    (root / "ca.pem").write_bytes(_pem(ca))
    certs = root / "sns-certs"
    certs.mkdir()
    (certs / CERT_URL.rsplit("/", 1)[1]).write_bytes(
        _pem(_cert("sns.amazonaws.com", signer, "Test SNS CA", ca_key, False))
    )
    # A well-formed certificate from a CA nobody trusts, at an allowed URL: must still be refused.
    (certs / ROGUE_URL.rsplit("/", 1)[1]).write_bytes(
        _pem(_cert("sns.amazonaws.com", rogue, "Rogue", rogue_ca_key, False))
    )
    port = free_port()
    env = {**os.environ, "NEWSLETTER_TEST_ROOT": str(root), MAILGUN_KEY_ENV: MAILGUN_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "webhook_app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=Path(__file__).parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/webhooks"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/ses", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start: {proc.stdout.read() if proc.stdout else ''}") from None
                time.sleep(0.1)
        yield Server(url, root, signer, rogue)
    finally:
        proc.terminate()
        proc.wait(10)


def ses_bounce(address: str, kind: str = "Permanent", feedback: str | None = None) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2016-11-30T06:01:12.000Z",
            "feedbackId": feedback or f"0100015f-{address}-{kind}-000000",
        },
        "mail": {"messageId": "0100015f-mail", "source": "bounces@newsletter.example.org", "destination": [address]},
    }


def test_a_signed_ses_bounce_suppresses_once(server: Server) -> None:
    body = server.sns(ses_bounce("ghost@example.net"))
    answer = server.post("/ses", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decisions"] == [{"address": "ghost@example.net", "event": "hard", "outcome": "suppressed"}]
    record = entry(server.root, "ghost@example.net")
    assert record is not None and record.reason == "bounced" and record.source == "Amazon SES"
    assert record.diagnostic == "5.1.1 smtp; 550 5.1.1 user unknown"
    assert record.message_id == "ses:0100015f-ghost@example.net-Permanent-000000"
    again = server.post("/ses", body)  # SNS retries: the same event counts once
    assert again.status_code == 200 and again.json()["decisions"] == []


def test_signature_version_2_complaint(server: Server) -> None:
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "complainer@example.com"}],
            "complaintFeedbackType": "abuse",
            "feedbackId": "0100015f-complaint-1",
        },
        "mail": {"messageId": "0100015f-mail-2"},
    }
    answer = server.post("/ses", server.sns(complaint, version="2"))
    assert answer.status_code == 200, answer.text
    assert entry(server.root, "complainer@example.com").reason == "complained"  # type: ignore[union-attr]


def test_a_transient_bounce_is_counted_not_suppressed(server: Server) -> None:
    answer = server.post("/ses", server.sns(ses_bounce("full@gmail.example", "Transient")))
    assert answer.json()["decisions"][0]["outcome"] == "counted"
    assert entry(server.root, "full@gmail.example") is None


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ("tamper", 403, "SNS signature does not verify"),
        ("url", 403, "is not an Amazon SNS certificate URL"),
        ("http", 403, "is not an Amazon SNS certificate URL"),
        ("rogue", 403, "is not issued by a trusted CA"),
        ("topic", 403, "is not in [webhooks] sns_topics"),
        ("version", 403, "unknown SignatureVersion"),
        ("type", 400, "not an SNS message"),
    ],
)
def test_forged_or_foreign_sns_messages_are_refused(server: Server, change: str, status: int, reason: str) -> None:
    address = "gone@example.com"
    if change == "url":
        body = server.sns(
            ses_bounce(address),
            SigningCertURL="https://sns.eu-west-1.evil.example/SimpleNotificationService-0123abcd.pem",
        )
    elif change == "http":
        body = server.sns(ses_bounce(address), SigningCertURL=CERT_URL.replace("https:", "http:"))
    elif change == "rogue":
        body = server.sns(ses_bounce(address), SigningCertURL=ROGUE_URL)
    elif change == "topic":
        body = server.sns(ses_bounce(address), TopicArn="arn:aws:sns:eu-west-1:999999999999:other")
    elif change == "version":
        body = server.sns(ses_bounce(address))
        body["SignatureVersion"] = "3"
    elif change == "type":
        body = server.sns(ses_bounce(address), Type="Surprise")
    else:
        body = server.sns(ses_bounce("nouser@example.net"))
        body["Message"] = json.dumps(ses_bounce(address))  # the signature was for another address
    answer = server.post("/ses", body)
    assert answer.status_code == status and reason in answer.json()["status"]
    assert entry(server.root, address) is None


def test_a_subscription_confirmation_is_logged_not_followed(server: Server) -> None:
    body = server.sns(
        "You have chosen to subscribe to the topic.",
        Type="SubscriptionConfirmation",
        Token="2336412f37fb687f5d51e6e241d09c80",
        SubscribeURL="https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336",
    )
    answer = server.post("/ses", body)
    assert answer.status_code == 200 and "confirm it by hand" in answer.json()["status"]


def test_bad_bodies(server: Server) -> None:
    assert server.post("/ses", b"{not json").status_code == 400
    assert server.post("/ses", b"[1, 2]").status_code == 400
    assert server.post("/ses", b"x" * (300 * 1024)).status_code == 413
    assert httpx.get(server.url + "/ses").status_code == 405


def mailgun(event: dict[str, Any], *, key: str = MAILGUN_KEY, age: float = 0) -> dict[str, Any]:
    timestamp, token = str(int(time.time() - age)), f"token-{time.monotonic_ns()}"
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event}


def test_mailgun_permanent_failure_and_complaint(server: Server) -> None:
    failed = {
        "id": "mg-event-1",
        "event": "failed",
        "severity": "permanent",
        "recipient": "nobody@corp.example",
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist", "description": ""},
    }
    answer = server.post("/mailgun", mailgun(failed))
    assert answer.status_code == 200, answer.text
    record = entry(server.root, "nobody@corp.example")
    assert record is not None and record.reason == "bounced" and record.diagnostic.startswith("550 5.1.1")
    assert record.message_id == "mailgun:mg-event-1"
    complained = {"id": "mg-event-2", "event": "complained", "recipient": "ana@example.com"}
    assert server.post("/mailgun", mailgun(complained)).status_code == 200
    assert entry(server.root, "ana@example.com").reason == "complained"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("key", "age", "reason"), [("wrong-key", 0, "does not verify"), (MAILGUN_KEY, 3600, "too old")]
)
def test_mailgun_bad_signatures_are_refused(server: Server, key: str, age: float, reason: str) -> None:
    event = {"id": f"mg-bad-{age}", "event": "failed", "severity": "permanent", "recipient": "ben@example.org"}
    answer = server.post("/mailgun", mailgun(event, key=key, age=age))
    assert answer.status_code == 403 and reason in answer.json()["status"]
    assert entry(server.root, "ben@example.org") is None


def test_provider_events_count_against_the_edition_their_message_names(server: Server) -> None:
    """SES reports the original's Message-ID (commonHeaders), Mailgun its `message-id` header: a bounce
    or complaint about one of our messages counts against that message's edition."""
    from newsletter.bounces import open_bounce_state
    from newsletter.config import load_settings

    ours = "2016-12-29." + "b" * 24 + "@newsletter.example.org"
    bounce = ses_bounce("mueller@example.de", feedback="0100015f-edition-1")
    bounce["mail"]["commonHeaders"] = {"messageId": f"<{ours}>"}
    assert server.post("/ses", server.sns(bounce)).status_code == 200
    complained = {
        "id": "mg-edition-1",
        "event": "complained",
        "recipient": "carla@example.com",
        "message": {"headers": {"message-id": ours}},
    }
    assert server.post("/mailgun", mailgun(complained)).status_code == 200
    foreign = ses_bounce("slow@example.net", feedback="0100015f-edition-2")
    foreign["mail"]["commonHeaders"] = {"messageId": "<2016-12-29.x@elsewhere.example>"}
    assert server.post("/ses", server.sns(foreign)).status_code == 200
    with open_bounce_state(load_settings(server.root, environ={})) as state:
        assert state.edition_counts(dt.date(2016, 12, 29)) == {"hard": 1, "complaint": 1}
        assert state.db.scalar("SELECT count(*) FROM {events} WHERE edition = ''") >= 1
