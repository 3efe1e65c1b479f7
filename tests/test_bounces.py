"""Bounce handling end to end: real Maildirs and mbox files, real SQLite, the CLI, the send path's VERP."""

from __future__ import annotations

import mailbox
import os
import shutil
import sqlite3
import threading
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.bounces import sources
from newsletter.bounces.classify import classify
from newsletter.bounces.policy import BounceState, Decider, Policy, state_path
from newsletter.bounces.run import process, source_from_settings
from newsletter.bounces.sources import MaildirSource, MboxSource
from newsletter.cli import cli
from newsletter.config import Settings, load_settings
from newsletter.delivery import SECRET_ENV, SuppressionList, suppression_path
from newsletter.delivery.verp import ReturnPath, make_token, verify_token
from newsletter.errors import ConfigError, TokenError

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
SECRET = "bounce-test-secret"
LIST_ID = "daily.newsletter.example.org"
# The subscribers the fixture reports are about (stranger@example.org is deliberately not one of them).
MEMBERS = [
    "ghost@example.net", "gone@example.com", "nouser@example.net", "nobody@corp.example",
    "nosuchuser@gmail.example", "full@gmail.example", "slow@example.net", "complainer@example.com",
    "mueller@example.de", "ana@example.com", "ben@example.org", "carla@example.com", "reader@example.com",
]  # fmt: skip


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def make_root(tmp_path: Path, config: str = "") -> Path:
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True)
    (root / "subscribers.csv").write_text("email,name\n" + "".join(f"{a},\n" for a in MEMBERS), encoding="utf-8")
    toml = f'[list]\nid = "{LIST_ID}"\n\n[mailing]\nsubscribers = "subscribers.csv"\n{config}'
    (root / "newsletter.toml").write_text(toml, encoding="utf-8")
    return root


def settings_of(root: Path) -> Settings:
    return load_settings(root, environ={})


def make_maildir(path: Path, names: list[str] | None = None, extra: dict[str, bytes] | None = None) -> Path:
    box = mailbox.Maildir(path, create=True)  # the standard layout, written by the standard library
    for name in names if names is not None else sorted(p.name for p in FIXTURES.glob("*.eml")):
        box.add((FIXTURES / name).read_bytes())
    for data in (extra or {}).values():
        box.add(data)
    return path


def entry(root: Path, address: str):
    with SuppressionList(suppression_path(settings_of(root))) as s:
        return s.entry(address)


# --- classification -----------------------------------------------------------------------------

EXPECTED = {
    # fixture: (kind, [(address, hard, status)] or complained addresses)
    "postfix-hard.eml": ("bounce", [("ghost@example.net", True, "5.1.1")]),
    "postfix-delayed.eml": ("bounce", [("slow@example.net", False, "4.4.1")]),
    "gmail-hard.eml": ("bounce", [("nosuchuser@gmail.example", True, "5.1.1")]),
    "gmail-soft.eml": ("bounce", [("full@gmail.example", False, "4.2.2")]),
    "exim.eml": ("bounce", [("gone@example.com", True, "5.1.1")]),
    "exchange.eml": ("bounce", [("nobody@corp.example", True, "5.1.1")]),
    "qmail.eml": ("bounce", [("nouser@example.net", True, "5.1.1")]),
    "unknown-address.eml": ("bounce", [("stranger@example.org", True, "5.1.1")]),
    "wrong-encoding.eml": ("bounce", [("mueller@example.de", True, "5.1.1")]),
    "arf-abuse.eml": ("complaint", ["complainer@example.com"]),
    "arf-redacted.eml": ("complaint", []),
    "autoreply-ooo.eml": ("autoreply", []),
    "autoreply-vacation.eml": ("autoreply", []),
    "human-reply.eml": ("unrecognised", []),
    "malformed-no-boundary.eml": ("malformed", []),
}


def test_every_fixture_is_covered() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in FIXTURES.glob("*.eml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_classification(name: str) -> None:
    found = classify((FIXTURES / name).read_bytes())
    kind, expected = EXPECTED[name]
    assert found.kind == kind, found.detail
    if kind == "bounce":
        assert [(f.address, f.hard, f.status) for f in found.failures] == expected
        assert all(f.diagnostic and "\n" not in f.diagnostic for f in found.failures)
    if kind == "complaint":
        assert found.complaints == expected
    assert found.message_id.startswith("<") and found.has_message_id


def test_standard_and_heuristic_formats_are_told_apart() -> None:
    details = {n: classify((FIXTURES / n).read_bytes()).detail for n in ("postfix-hard.eml", "exim.eml", "qmail.eml")}
    assert details == {"postfix-hard.eml": "RFC 3464 DSN", "exim.eml": "Exim", "qmail.eml": "qmail"}
    exim = classify((FIXTURES / "exim.eml").read_bytes())
    assert exim.failures[0].diagnostic == "550 5.1.1 <gone@example.com>... No such user here"


def test_wrong_encodings_become_replacement_characters_not_errors() -> None:
    found = classify((FIXTURES / "wrong-encoding.eml").read_bytes())
    assert "Empf\ufffdnger unbekannt" in found.failures[0].diagnostic


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "empty message"),
        (b"\x00\xff\xfe binary junk with no header\n", "no header fields"),
        (b"Content-Type: multipart/report; report-type=delivery-status\n\nno boundary\n", "broken MIME structure"),
    ],
)
def test_malformed_messages_are_named_not_raised(raw: bytes, detail: str) -> None:
    found = classify(raw)
    assert found.kind == "malformed" and detail in found.detail
    assert found.message_id.startswith("sha256:") and not found.has_message_id


def test_a_dsn_without_status_names_nobody() -> None:
    raw = (FIXTURES / "postfix-hard.eml").read_bytes().replace(b"Status: 5.1.1\n", b"Status: soon\n")
    found = classify(raw)
    assert found.kind == "malformed" and "no valid Status" in found.detail and not found.failures


def test_a_delivered_dsn_is_not_a_bounce() -> None:
    raw = (FIXTURES / "postfix-hard.eml").read_bytes().replace(b"Action: failed", b"Action: delivered")
    assert classify(raw).kind == "ignored"


# --- VERP tokens ----------------------------------------------------------------------------------


def test_verp_token_round_trip_and_case_insensitivity() -> None:
    token = make_token(SECRET.encode(), LIST_ID, "Reader@Example.com")
    assert token == token.lower() and len("bounces+" + token) <= 64
    assert verify_token(SECRET.encode(), LIST_ID, token.upper()) == "reader@example.com"
    with pytest.raises(TokenError, match="does not verify"):
        verify_token(b"other secret", LIST_ID, token)
    with pytest.raises(TokenError, match="does not verify"):
        verify_token(SECRET.encode(), "other.list", token)
    with pytest.raises(TokenError, match="malformed"):
        verify_token(SECRET.encode(), LIST_ID, "not-a-token")


def test_verp_template_is_validated() -> None:
    path = ReturnPath.parse("bounces+{token}@Example.org")
    assert path is not None and path.domain == "example.org"
    assert ReturnPath.parse("bounces@example.org") is None
    for bad in ("{token}@", "bounces@{token}.org", "b+{token}{token}@example.org", "{token}@example.org"):
        with pytest.raises(ConfigError, match="return_path"):
            ReturnPath.parse(bad)


def test_send_puts_a_per_recipient_verp_address_in_mail_from(demo_root: Path, smtp_server) -> None:
    from newsletter.delivery import send_edition

    shutil.copy(Path(__file__).parent / "fixtures" / "subscribers.csv", demo_root / "subscribers.csv")
    (demo_root / "newsletter.toml").write_text(
        f'[list]\nid = "{LIST_ID}"\n\n[mailing]\nreturn_path = "bounces+{{token}}@newsletter.example.org"\n',
        encoding="utf-8",
    )
    settings = settings_of(demo_root)
    report = send_edition(settings, date(2016, 12, 30), subscribers="subscribers.csv", smtp=smtp_server.url)
    assert report.sent == len(smtp_server.received) > 1
    path = ReturnPath.parse("bounces+{token}@newsletter.example.org")
    assert path is not None
    for record in smtp_server.received:
        match = path.pattern().fullmatch(record.mail_from)
        assert match, record.mail_from
        assert verify_token(SECRET.encode(), LIST_ID, match.group(1)) == record.rcpt_tos[0].lower()


# --- a whole run over a Maildir -----------------------------------------------------------------


def test_maildir_run_suppresses_counts_and_remembers(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    box = make_maildir(tmp_path / "Maildir")
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root), "--maildir", str(box)])
    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    assert "read 15 message(s)" in summary and "9 bounce(s) (6 RFC 3464 DSN)" in summary
    assert "7 hard, 2 soft, 2 complaint(s), 2 auto-reply(ies), 1 unrecognised, 1 malformed" in summary
    assert summary.endswith("7 address(es) suppressed; 4 left in the mailbox")
    # The hard bounces and the complaint are suppressed with the reason, the diagnostic and the report.
    ghost = entry(root, "ghost@example.net")
    assert ghost is not None and ghost.reason == "bounced"
    assert ghost.diagnostic.startswith("550 5.1.1 <ghost@example.net>: Recipient address rejected: User unknown")
    assert ghost.message_id == "<20161130060112.4Jx2kQ0ZfJz9sQD@mail.newsletter.example.org>"
    complainer = entry(root, "complainer@example.com")
    assert complainer is not None and complainer.reason == "complained"
    for address in ("gone@example.com", "nobody@corp.example", "nouser@example.net", "nosuchuser@gmail.example"):
        assert entry(root, address).reason == "bounced"  # type: ignore[union-attr]
    # A single soft bounce, an address not on the list, an auto-reply suppress nobody.
    for address in ("full@gmail.example", "slow@example.net", "stranger@example.org", "ana@example.com"):
        assert entry(root, address) is None
    assert "stranger@example.org: not on the subscriber list; nothing suppressed" in result.output
    assert "complaint names no address and carries no return path token" in result.output
    assert "malformed: broken MIME structure" in result.output
    assert "<CAB4x=human-reply-1@mail.example.com>" in result.output  # unrecognised, listed by Message-ID
    assert "Traceback" not in result.output
    # `unsubscribe --check` says why.
    check = CliRunner().invoke(cli, ["unsubscribe", "--root", str(root), "--check", "ghost@example.net"])
    assert check.exit_code == 0
    assert "suppressed (bounced, bounce report, since" in check.output
    assert "diagnostic: 550 5.1.1 <ghost@example.net>" in check.output
    assert "report <20161130060112.4Jx2kQ0ZfJz9sQD@mail.newsletter.example.org>" in check.output
    # Handled messages moved to .processed; nothing deleted. Four stay in new/: the two a person must read,
    # the bounce for an address on no list and the complaint that names nobody (a later run may match them).
    assert len(os.listdir(box / "new")) == 4
    assert len(os.listdir(box / ".processed" / "new")) == 11
    # A rerun reads only those four again and decides nothing twice.
    again = CliRunner().invoke(cli, ["bounces", "--root", str(root), "--maildir", str(box)])
    assert "read 4 message(s)" in again.output
    assert "0 already handled; 0 address(es) suppressed; 4 left in the mailbox" in again.output


def test_dry_run_shows_and_changes_nothing(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    box = make_maildir(tmp_path / "Maildir")
    before = sorted(os.listdir(box / "new"))
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root), "--maildir", str(box), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "ghost@example.net: hard — would suppress: 550 5.1.1" in result.output
    assert "7 address(es) would be suppressed (dry run)" in result.output
    assert sorted(os.listdir(box / "new")) == before and not (box / ".processed").exists()
    assert entry(root, "ghost@example.net") is None
    with BounceState(state_path(settings_of(root))) as state:
        assert not state.seen("<20161130060112.4Jx2kQ0ZfJz9sQD@mail.newsletter.example.org>")


def test_flag_mode_marks_seen_and_keeps_the_message_in_place(tmp_path: Path) -> None:
    root = make_root(tmp_path, '\n[bounces]\nprocessed = "flag"\n')
    box = make_maildir(tmp_path / "Maildir", ["postfix-hard.eml", "human-reply.eml"])
    report = process(settings_of(root), source_from_settings(settings_of(root), maildir=box))
    assert report.suppressed == 1 and report.unrecognised == 1
    flagged = os.listdir(box / "cur")
    assert len(flagged) == 1 and flagged[0].endswith(":2,S")
    assert len(os.listdir(box / "new")) == 1 and not (box / ".processed").exists()
    again = process(settings_of(root), source_from_settings(settings_of(root), maildir=box))
    # The flagged one is not even read again; the reply waits for a person, listed again.
    assert (again.read, again.already, again.unrecognised, again.left) == (1, 0, 1, 1)


def test_without_a_subscriber_list_reported_addresses_are_not_suppressed(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "newsletter.toml").write_text(f'[list]\nid = "{LIST_ID}"\n', encoding="utf-8")
    report = process(settings_of(root), MaildirSource(make_maildir(tmp_path / "Maildir", ["postfix-hard.eml"])))
    assert report.hard == 1 and report.suppressed == 0
    assert "ghost@example.net: no subscriber list to match it against" in report.problems[0]


# --- VERP attribution ---------------------------------------------------------------------------

VERP_CONFIG = '\nreturn_path = "bounces+{token}@newsletter.example.org"\n'


def verp_of(address: str) -> str:
    return f"bounces+{make_token(SECRET.encode(), LIST_ID, address)}@newsletter.example.org"


def test_verp_attributes_a_bounce_that_names_an_alias(tmp_path: Path) -> None:
    root = make_root(tmp_path, VERP_CONFIG)
    # The report names the mailbox the alias forwarded to, which is on no list; the return path knows.
    raw = (FIXTURES / "postfix-hard.eml").read_bytes().replace(b"ghost@example.net", b"old-mailbox@hosting.example")
    raw = raw.replace(b"bounces@newsletter.example.org", verp_of("reader@example.com").encode())
    report = process(settings_of(root), MaildirSource(make_maildir(tmp_path / "Maildir", [], {"a": raw})))
    assert [(d.address, d.outcome) for d in report.decisions] == [("reader@example.com", "suppressed")]
    assert entry(root, "reader@example.com").diagnostic.startswith("550 5.1.1 <old-mailbox@hosting.example>")  # type: ignore[union-attr]


def test_verp_attributes_a_redacted_complaint(tmp_path: Path) -> None:
    root = make_root(tmp_path, VERP_CONFIG)
    raw = (FIXTURES / "arf-redacted.eml").read_bytes()
    verp = f"Return-Path: <{verp_of('ana@example.com')}>".encode()
    raw = raw.replace(b"Return-Path: <bounces@newsletter.example.org>", verp)
    report = process(settings_of(root), MaildirSource(make_maildir(tmp_path / "Maildir", [], {"a": raw})))
    decisions = [(d.address, d.event, d.outcome) for d in report.decisions]
    assert decisions == [("ana@example.com", "complaint", "suppressed")]
    assert entry(root, "ana@example.com").reason == "complained"  # type: ignore[union-attr]


def test_a_forged_verp_token_is_not_used(tmp_path: Path) -> None:
    root = make_root(tmp_path, VERP_CONFIG)
    token = make_token(b"someone else's secret", LIST_ID, "reader@example.com")
    raw = (FIXTURES / "unknown-address.eml").read_bytes()
    raw = raw.replace(b"Delivered-To: bounces@", f"Delivered-To: bounces+{token}@".encode())
    report = process(settings_of(root), MaildirSource(make_maildir(tmp_path / "Maildir", [], {"a": raw})))
    assert report.suppressed == 0 and entry(root, "reader@example.com") is None
    assert any("do not verify; not used" in p for p in report.problems)
    assert any("stranger@example.org: not on the subscriber list" in p for p in report.problems)


def test_without_the_secret_tokens_are_not_trusted_and_the_list_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_root(tmp_path, VERP_CONFIG)
    raw = (FIXTURES / "postfix-hard.eml").read_bytes()
    verp = f"Delivered-To: {verp_of('reader@example.com')}".encode()
    raw = raw.replace(b"Delivered-To: bounces@newsletter.example.org", verp)
    monkeypatch.delenv(SECRET_ENV)
    report = process(settings_of(root), MaildirSource(make_maildir(tmp_path / "Maildir", [], {"a": raw})))
    assert any("NEWSLETTER_UNSUBSCRIBE_SECRET is not set" in p for p in report.problems)
    assert [(d.address, d.outcome) for d in report.decisions] == [("ghost@example.net", "suppressed")]


# --- policy -------------------------------------------------------------------------------------


def soft_bounce(n: int, address: str = "full@gmail.example") -> bytes:
    raw = (FIXTURES / "gmail-soft.eml").read_bytes().replace(b"full@gmail.example", address.encode())
    return raw.replace(b"FULL.GMR", f"FULL{n}.GMR".encode())


def test_soft_bounces_suppress_on_the_third_within_the_window(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    settings = settings_of(root)
    box = make_maildir(tmp_path / "Maildir", [], {"1": soft_bounce(1), "2": soft_bounce(2)})
    first = process(settings, MaildirSource(box))
    assert [d.outcome for d in first.decisions] == ["counted", "counted"]
    assert first.decisions[1].detail == "2 of 3 soft bounces in 15 days"
    mailbox.Maildir(box).add(soft_bounce(3))
    dry = process(settings, MaildirSource(box), dry_run=True)
    assert [d.outcome for d in dry.decisions] == ["would suppress"] and entry(root, "full@gmail.example") is None
    third = process(settings, MaildirSource(box))
    assert [d.outcome for d in third.decisions] == ["suppressed"]
    suppressed = entry(root, "full@gmail.example")
    assert suppressed is not None and suppressed.reason == "bounced" and "4.2.2" in suppressed.diagnostic


def test_soft_bounces_outside_the_window_do_not_add_up(tmp_path: Path) -> None:
    root = make_root(tmp_path, "\n[bounces]\nsoft_limit = 2\nsoft_days = 7\n")
    settings = settings_of(root)
    now = datetime(2016, 11, 30, tzinfo=UTC)
    with BounceState(state_path(settings)) as state, SuppressionList(suppression_path(settings)) as suppression:
        decider = Decider(Policy.from_settings(settings), state, suppression)
        assert decider.decide("slow@example.net", "soft", "4.4.1", "<a>", now - timedelta(days=8)).outcome == "counted"
        assert decider.decide("slow@example.net", "soft", "4.4.1", "<b>", now).outcome == "counted"
        assert decider.decide("slow@example.net", "soft", "4.4.1", "<b>", now).outcome == "counted"  # same report
        assert decider.decide("slow@example.net", "soft", "4.4.1", "<c>", now).outcome == "suppressed"


def test_bad_policy_values_are_one_line(tmp_path: Path) -> None:
    root = make_root(tmp_path, '\n[bounces]\nsoft_limit = 0\npath = "x"\n')
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root)])
    assert result.exit_code == 1 and "[bounces] soft_limit must be a whole number from 1 to 1000" in result.output
    root2 = make_root(tmp_path / "two", '\n[bounces]\nhots = "typo"\n')
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root2)])
    assert result.exit_code == 1 and "[bounces]: unknown setting 'hots'" in result.output


def test_old_suppression_files_gain_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE suppression (key TEXT PRIMARY KEY, address TEXT NOT NULL, reason TEXT NOT NULL,"
            " source TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID"
        )
        db.execute("INSERT INTO suppression VALUES ('a@example.com', 'a@example.com', 'manual', 'cli', '2016')")
    db.close()
    with SuppressionList(path) as s:
        assert s.entry("a@example.com").describe() == "manual, cli, since 2016"  # type: ignore[union-attr]
        s.add("b@example.com", "bounced", "bounce report", diagnostic="550 5.1.1 gone", message_id="<m@x>")
        assert s.entry("B@example.com").describe().endswith("diagnostic: 550 5.1.1 gone; report <m@x>")  # type: ignore[union-attr]


# --- mbox ---------------------------------------------------------------------------------------


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    with path.open("wb") as fh:
        for raw in messages:
            fh.write(b"From MAILER-DAEMON Wed Nov 30 06:01:12 2016\n")
            for line in raw.splitlines(keepends=True):
                fh.write(b">" + line if line.lstrip(b">").startswith(b"From ") else line)
            fh.write(b"\n")
    return path


def test_mbox_is_read_as_the_standard_library_reads_it(tmp_path: Path) -> None:
    raws = [(FIXTURES / n).read_bytes() for n in sorted(EXPECTED)]
    raws[0] = raws[0] + b"\nFrom the desk of the editor: a body line that needs quoting\n"
    path = write_mbox(tmp_path / "bounces.mbox", raws)
    ours = [item.data for item in MboxSource(path).items()]
    assert len(ours) == len(mailbox.mbox(path)) == len(raws)
    for mine, raw in zip(ours, raws, strict=True):
        assert mine is not None and mine.rstrip(b"\n") == raw.rstrip(b"\n")


def test_a_huge_mbox_is_streamed_and_an_oversized_message_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_root(tmp_path)
    path = tmp_path / "big.mbox"
    line = b"x" * 1023 + b"\n"
    with path.open("wb") as fh:  # a bounce, a 30 MB message, a bounce: the file is 30 MB, RAM must not be
        fh.write(b"From MAILER-DAEMON Wed Nov 30 06:01:12 2016\n")
        fh.write((FIXTURES / "postfix-hard.eml").read_bytes() + b"\n")
        fh.write(b"From someone Wed Nov 30 06:01:13 2016\nSubject: huge\nMessage-ID: <huge@x>\n\n")
        for _ in range(30 * 1024):
            fh.write(line)
        fh.write(b"\nFrom MAILER-DAEMON Wed Nov 30 06:01:14 2016\n" + (FIXTURES / "exim.eml").read_bytes())
    monkeypatch.setattr(sources, "MAX_MESSAGE", 1024 * 1024)
    tracemalloc.start()
    try:
        report = process(settings_of(root), MboxSource(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.read == 3 and report.suppressed == 2 and report.malformed == 1
    assert any("offset" in p and "message over 1 MB, skipped" in p for p in report.problems)
    assert peak < 8 * 1024 * 1024, peak
    assert path.stat().st_size > 30 * 1024 * 1024  # the file itself was never rewritten
    again = process(settings_of(root), MboxSource(path))
    assert again.already == 2 and again.suppressed == 0


def test_a_file_that_is_not_an_mbox_is_one_line(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    bad = tmp_path / "notes.txt"
    bad.write_text("just some notes\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root), "--mbox", str(bad)])
    assert result.exit_code == 1 and "not an mbox file (it does not start with a 'From ' line)" in result.output
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root), "--mbox", str(tmp_path / "missing.mbox")])
    assert result.exit_code == 1 and "missing.mbox: mbox file not found" in result.output
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root), "--maildir", str(tmp_path)])
    assert result.exit_code == 1 and "not a Maildir" in result.output
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root)])
    assert result.exit_code == 1 and "no bounce mailbox" in result.output
    assert "Traceback" not in result.output


# --- the scheduler hook -------------------------------------------------------------------------


def test_the_morning_reads_bounces_before_it_sends(tmp_path: Path) -> None:
    from newsletter.schedule import Morning, read_config

    root = make_root(tmp_path, '\n[bounces]\npath = "Maildir"\nsource = "maildir"\n')
    make_maildir(root / "Maildir", ["postfix-hard.eml"])
    (root / "stories" / "a.md").write_text(
        '---\ntitle: "A story"\npublished: 2016-11-30T02:00:00+00:00\n---\nBody.\n', encoding="utf-8"
    )
    settings = settings_of(root)
    seen: list[bool] = []

    class Sent:
        sent, failed, skipped, retried, pending, complete = 1, 0, 0, 0, 0, True

    def send(settings: Settings, day: date, *, stop: threading.Event | None = None) -> Sent:
        seen.append(entry(root, "ghost@example.net") is not None)
        return Sent()

    clock = datetime(2016, 11, 30, 6, 0, tzinfo=UTC)
    morning = Morning(settings, read_config(settings), send=send, clock=lambda: clock)
    result = morning.run(clock, manual=True)
    assert seen == [True], result


def test_the_daemon_reads_bounces_every_hour(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from newsletter.schedule import Daemon, bounces_job

    root = make_root(tmp_path, '\n[bounces]\npath = "Maildir"\nsource = "maildir"\n\n[schedule]\nat = "06:00"\n')
    make_maildir(root / "Maildir", ["exim.eml"])
    daemon = Daemon(settings_of(root), send=lambda *a, **k: None, install_signals=False)  # type: ignore[arg-type]
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        assert daemon.started.wait(20)
        job = daemon.scheduler.get_job("bounces")
        assert job is not None and job.trigger.interval == timedelta(hours=1)
        caplog.set_level(logging.INFO, logger="newsletter.schedule")
        job.func(*job.args)  # what the hourly fire runs, now rather than in an hour
        assert job.func is bounces_job
    finally:
        daemon.request_stop()
        thread.join(20)
    assert entry(root, "gone@example.com").reason == "bounced"  # type: ignore[union-attr]
    assert any(
        "bounces: Maildir" in r.getMessage() and "1 address(es) suppressed" in r.getMessage() for r in caplog.records
    )
