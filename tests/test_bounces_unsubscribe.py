"""`mailto:` unsubscribe requests in the bounce mailbox (RFC 2369, the fallback of providers without
one-click): the messages point their mailto at the mailbox `newsletter bounces` reads, and a request is
acted on only when the signed token in its subject verifies. Real outbox messages, a real Maildir."""

from __future__ import annotations

import os
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.delivery import SECRET_ENV, make_token
from tests.test_bounces import LIST_ID, SECRET, entry
from tests.test_bounces_facts import maildir

READERS = ["ann@example.com", "bob@example.org"]


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def paper(demo_root: Path, bounces: bool = True) -> Path:
    (demo_root / "subscribers.csv").write_text("email\n" + "\n".join(READERS) + "\n", encoding="utf-8")
    config = f'[list]\nid = "{LIST_ID}"\n\n[mailing]\nsubscribers = "subscribers.csv"\n'
    config += 'return_path = "bounces+{token}@newsletter.example.org"\n'
    if bounces:
        config += '\n[bounces]\nsource = "maildir"\npath = "Maildir"\n'
    (demo_root / "newsletter.toml").write_text(config, encoding="utf-8")
    return demo_root


def sent_message(root: Path, address: str) -> EmailMessage:
    result = CliRunner().invoke(cli, ["send", "--root", str(root), "--date", "2016-12-30"])
    assert result.exit_code == 0, result.output
    path = root / "outbox" / "2016-12-30" / "mail" / f"{address}.eml"
    return message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def request_from(mailto: str, sender: str) -> bytes:
    """What a mail client sends for a `mailto:` link: to its address, with its subject."""
    parts = urlsplit(mailto)
    subject = parse_qs(parts.query)["subject"][0]
    return (
        f"Return-Path: <{sender}>\nFrom: {sender}\nTo: {parts.path}\nSubject: {subject}\n"
        f"Message-ID: <unsubscribe-{sender}>\nContent-Type: text/plain\n\nThis message will unsubscribe me.\n"
    ).encode()


def mailto_of(message: EmailMessage) -> str:
    values = [v.strip(" <>") for v in str(message["List-Unsubscribe"]).split(",")]
    mailtos = [v for v in values if v.startswith("mailto:")]
    assert len(mailtos) == 1, values
    return mailtos[0]


def test_the_mailto_points_at_the_bounce_mailbox_and_unsubscribes_its_sender(demo_root: Path) -> None:
    root = paper(demo_root)
    message = sent_message(root, "ann@example.com")
    mailto = mailto_of(message)
    assert mailto.startswith("mailto:bounces@newsletter.example.org?subject=unsubscribe%20")
    assert str(message["List-Unsubscribe"]).startswith("<https://")  # one-click first, as RFC 8058 asks
    maildir(root / "Maildir", [request_from(mailto, "ann@example.com")])
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "ann@example.com: unsubscribe — suppressed: List-Unsubscribe mailto request" in result.output
    assert "1 unsubscribe request(s)" in result.output
    assert entry(root, "ann@example.com").reason == "unsubscribed"  # type: ignore[union-attr]
    assert entry(root, "bob@example.org") is None
    assert not os.listdir(root / "Maildir" / "new")  # handled: moved to .processed


def test_a_forged_request_unsubscribes_nobody(demo_root: Path) -> None:
    root = paper(demo_root)
    forged = make_token(b"not the newsroom's secret", LIST_ID, "bob@example.org")
    mailto = f"mailto:bounces@newsletter.example.org?subject=unsubscribe%20{forged}"
    maildir(root / "Maildir", [request_from(mailto, "bob@example.org")])
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert entry(root, "bob@example.org") is None
    assert "unsubscribe request: unsubscribe token does not verify" in result.output
    assert len(os.listdir(root / "Maildir" / "new")) == 1  # left for a person


def test_without_a_bounce_mailbox_the_messages_offer_one_click_only(demo_root: Path) -> None:
    root = paper(demo_root, bounces=False)
    header = str(sent_message(root, "bob@example.org")["List-Unsubscribe"])
    assert header.startswith("<https://") and "mailto:" not in header
