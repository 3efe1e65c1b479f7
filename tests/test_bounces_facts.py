"""Bounces act on facts only and never lose a report: real Maildirs, real SQLite, the CLI.

A person's forwarded bounce is not a bounce; a report that cannot be matched stays in the mailbox for
the next run; a cut-off copy never hides the complete report with the same Message-ID; the subscriber
store is the list by default, as it is for `send`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.bounces.policy import BounceState, state_path
from newsletter.bounces.run import process
from newsletter.bounces.sources import MaildirSource
from newsletter.cli import cli
from newsletter.delivery import SECRET_ENV
from newsletter.storage import open_readers
from tests.test_bounces import FIXTURES, LIST_ID, MEMBERS, SECRET, entry, make_root, settings_of, verp_of


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


HARD = (FIXTURES / "postfix-hard.eml").read_bytes()
HARD_ID = "<20161130060112.4Jx2kQ0ZfJz9sQD@mail.newsletter.example.org>"


def forwarded(return_path: str | None, to: str = "letters@newsletter.example.org") -> bytes:
    """A reader forwards the bounce they got to the newsroom, the report attached as message/rfc822."""
    head = f"Return-Path: <{return_path}>\n" if return_path is not None else ""
    return (
        (
            f"{head}From: Carla Reader <carla@example.com>\nTo: {to}\n"
            "Subject: Fwd: Undelivered Mail Returned to Sender\nMessage-ID: <fwd-1@mail.example.com>\n"
            'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="FWD"\n\n--FWD\n'
            "Content-Type: text/plain; charset=utf-8\n\nMy friend's address bounced, can you look?\n\n--FWD\n"
            "Content-Type: message/rfc822\n\n"
        ).encode()
        + HARD.replace(b"\r\n", b"\n")
        + b"\n--FWD--\n"
    )


def cut_off(raw: bytes) -> bytes:
    """The copy a full disk or a broken relay leaves: the report stops in the recipient's block."""
    return raw[: raw.index(b"Action: failed")]


def maildir(path: Path, messages: list[bytes]) -> Path:
    """A Maildir whose new/ holds `messages` in this order (file names sort as given)."""
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(messages):
        (path / "new" / f"{n:04d}.test.localhost").write_bytes(raw)
    return path


def run(root: Path, box: Path, *extra: str) -> str:
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root), "--maildir", str(box), *extra])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def test_a_forwarded_bounce_is_a_persons_message_not_a_bounce(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    box = maildir(tmp_path / "Maildir", [forwarded("carla@example.com"), forwarded(None)])
    output = run(root, box)
    assert entry(root, "ghost@example.net") is None
    assert "0 bounce(s)" in output and "2 unrecognised" in output and "0 address(es) suppressed" in output
    assert "<fwd-1@mail.example.com>: carries a bounce but does not come from the mail system" in output
    assert len(os.listdir(box / "new")) == 2  # both wait for a person


def test_a_forwarded_bounce_sent_to_one_of_our_return_paths_counts_by_its_token(tmp_path: Path) -> None:
    root = make_root(tmp_path, '\nreturn_path = "bounces+{token}@newsletter.example.org"\n')
    box = maildir(tmp_path / "Maildir", [forwarded("carla@example.com", to=verp_of("reader@example.com"))])
    output = run(root, box)
    assert "reader@example.com: hard — suppressed" in output
    assert entry(root, "ghost@example.net") is None  # the report inside names someone else: not acted on


def test_a_cut_off_copy_never_hides_the_complete_report(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    box = maildir(tmp_path / "Maildir", [cut_off(HARD), HARD])
    output = run(root, box)
    assert "ghost@example.net: hard — suppressed" in output
    assert f"{HARD_ID}: ghost@example.net: no Action" in output
    assert "ends before its closing MIME boundary" in output
    assert "0 already handled" in output and "1 left in the mailbox" in output
    assert entry(root, "ghost@example.net").message_id == HARD_ID  # type: ignore[union-attr]
    assert os.listdir(box / "new") == ["0000.test.localhost"]  # the cut-off copy stays, the report moved on


def test_a_message_id_remembered_as_ignored_does_not_hide_a_bounce(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    with BounceState(state_path(settings_of(root))) as state:  # what an earlier version recorded
        state.remember(HARD_ID, "ignored", datetime.now(UTC))
    output = run(root, maildir(tmp_path / "Maildir", [HARD]))
    assert "ghost@example.net: hard — suppressed" in output and "0 already handled" in output
    again = run(root, maildir(tmp_path / "Maildir2", [HARD]))
    assert "1 already handled" in again


def test_every_recipient_without_a_usable_status_gets_its_line(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    second = (
        b"\n\nFinal-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: unknown\n"
        b"\n--4Jx2kQ0ZfJz9sQD.1480485672/mail.newsletter.example.org\nContent-Description: Undelivered"
    )
    raw = HARD.replace(
        b"\n\n--4Jx2kQ0ZfJz9sQD.1480485672/mail.newsletter.example.org\nContent-Description: Undelivered", second, 1
    )
    box = maildir(tmp_path / "Maildir", [raw])
    output = run(root, box)
    assert "ghost@example.net: hard — suppressed" in output
    assert "gone@example.com: no valid Status ('unknown'); left in the mailbox" in output
    assert len(os.listdir(box / "new")) == 1


def store_root(tmp_path: Path) -> Path:
    """A newsroom that mails its subscriber store: no [mailing] subscribers, as in README."""
    root = make_root(tmp_path)
    (root / "newsletter.toml").write_text(f'[list]\nid = "{LIST_ID}"\n', encoding="utf-8")
    return root


def test_the_subscriber_store_is_the_list_by_default(tmp_path: Path) -> None:
    root = store_root(tmp_path)
    added = CliRunner().invoke(
        cli, ["subscribers", "add", "--root", str(root), "ghost@example.net", "--status", "confirmed"]
    )
    assert added.exit_code == 0, added.output
    output = run(root, maildir(tmp_path / "Maildir", [HARD]))
    assert "ghost@example.net: hard — suppressed" in output
    assert entry(root, "ghost@example.net").reason == "bounced"  # type: ignore[union-attr]
    with open_readers(settings_of(root)) as base:  # one record: the reader says bounced too, and why
        shown = base.show("ghost@example.net")
    assert shown["record"]["status"] == "bounced" and shown["subscriptions"][0]["status"] == "unsubscribed"
    assert (shown["history"][-1]["kind"], shown["history"][-1]["via"]) == ("bounced", "bounce")


def test_an_unmatched_report_stays_for_the_next_run(tmp_path: Path) -> None:
    root = store_root(tmp_path)
    box = maildir(tmp_path / "Maildir", [HARD])
    first = run(root, box)
    assert "no subscriber list to match it against" in first and "left for the next run" in first
    assert "1 left in the mailbox" in first and len(os.listdir(box / "new")) == 1
    csv = tmp_path / "list.csv"
    csv.write_text("email\n" + "\n".join(MEMBERS) + "\n", encoding="utf-8")
    second = run(root, box, "--subscribers", str(csv))
    assert "ghost@example.net: hard — suppressed" in second and "0 already handled" in second
    assert not os.listdir(box / "new")


def test_the_library_leaves_unmatched_reports_unremembered(tmp_path: Path) -> None:
    root = store_root(tmp_path)
    report = process(settings_of(root), MaildirSource(maildir(tmp_path / "Maildir", [HARD])))
    assert (report.hard, report.suppressed, report.left) == (1, 0, 1)
    with BounceState(state_path(settings_of(root))) as state:
        assert state.kind_of(HARD_ID) is None
