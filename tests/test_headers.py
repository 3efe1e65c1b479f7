"""The headers that help deliverability: Feedback-ID (no reader in it), Reply-To, Auto-Submitted."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.delivery.personalize import Personalizer
from newsletter.edition import build
from newsletter.errors import ConfigError

DAY = date(2016, 12, 30)


def personalizer(root: Path) -> Personalizer:
    settings = load_settings(root, environ={})
    built = build(settings, DAY, skip_invalid=True)
    return Personalizer(settings, built.edition, secret=b"s" * 32, date=datetime(2016, 12, 30, 5, tzinfo=UTC))


def test_feedback_id_reply_to_and_auto_submitted(demo_root: Path) -> None:
    (demo_root / "newsletter.toml").write_text(
        '[sender]\nreply_to = "letters@newsletter.example.org"\n[mailing]\nsender_id = "mb-news"\n', encoding="utf-8"
    )
    p = personalizer(demo_root)
    assert p.fast, p.mismatch  # the fast path builds what the stdlib builds, new headers included
    msg = message_from_bytes(p.message("ann@example.com", "Ann"), policy=policy.default)
    assert msg["Feedback-ID"] == "2016-12-30:morning-brief:mb-news"
    assert "ann" not in msg["Feedback-ID"]  # Gmail's feedback loop must not identify the reader
    assert msg["Reply-To"] == "letters@newsletter.example.org"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Precedence"] is None
    listcopy = message_from_bytes(build(p.settings, DAY, skip_invalid=True).eml, policy=policy.default)
    assert listcopy["Reply-To"] == "letters@newsletter.example.org" and listcopy["Auto-Submitted"] == "auto-generated"


def test_without_reply_to_there_is_none_and_the_sender_id_is_the_domain(demo_root: Path) -> None:
    msg = message_from_bytes(personalizer(demo_root).message("ann@example.com"), policy=policy.default)
    assert msg["Reply-To"] is None
    assert msg["Feedback-ID"] == "2016-12-30:morning-brief:newsletter.example.org"


def test_each_language_edition_has_its_own_feedback_id(languages_root: Path) -> None:
    settings = load_settings(languages_root, environ={}).for_language("fr")
    built = build(settings, DAY, skip_invalid=True)
    p = Personalizer(settings, built.edition, secret=b"s" * 32, date=datetime(2016, 12, 30, 5, tzinfo=UTC))
    msg = message_from_bytes(p.message("ann@example.com"), policy=policy.default)
    assert msg["Feedback-ID"].startswith("2016-12-30.fr:")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[sender]\nreply_to = "not an address"\n', "'sender.reply_to'"),
        ('[mailing]\nsender_id = "a:b"\n', "[mailing] sender_id"),
        ('[dkim]\nselector = "bad selector"\n', "[dkim] selector must be a DNS label"),
        ('[dkim]\nselector = "s1"\n', "dkim keygen --selector s1"),
        ('[dkim]\nselecter = "s1"\n', "[dkim]: unknown setting 'selecter'"),
    ],
)
def test_bad_settings_are_one_line(demo_root: Path, toml: str, message: str) -> None:
    from newsletter.delivery import MailingOptions, signer_for

    (demo_root / "newsletter.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        settings = load_settings(demo_root, environ={})
        MailingOptions.from_settings(settings)
        signer_for(settings)
    assert message in str(caught.value) and "\n" not in str(caught.value)
