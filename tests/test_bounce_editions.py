"""Bounces and complaints counted against the edition that caused them.

A real mailing to aiosmtpd with VERP return paths, then reports built from what the relay received: a
DSN that only the return path token attributes, ARF complaints whose original message carries our
Feedback-ID or only our Message-ID, and a report that names no edition. `newsletter bounces` reads them
from a real Maildir, `newsletter status` shows the 2016 edition's rates with the three that named it —
on SQLite and on PostgreSQL (migration 0008).
"""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from newsletter.bounces import EditionRef
from newsletter.bounces.editions import EditionFinder
from newsletter.config import load_settings
from newsletter.delivery import send_edition
from newsletter.delivery.verp import (
    EditionMark,
    ReturnPath,
    edition_mark,
    make_token,
    newsletter_mark,
    read_token,
    verify_token,
)
from newsletter.errors import TokenError

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
SECRET = "edition-test-secret"
LIST_ID = "daily.newsletter.example.org"
DAY = date(2016, 12, 30)
RETURN_PATH = "bounces+{token}@newsletter.example.org"
READERS = [f"reader{i:02d}@example.com" for i in range(40)]


# --- the token ----------------------------------------------------------------------------------


def test_a_mailing_token_carries_its_edition_under_the_mac() -> None:
    mark = edition_mark(LIST_ID, "en", DAY)
    assert mark == EditionMark(DAY, newsletter_mark(LIST_ID, "en"))
    token = make_token(SECRET.encode(), LIST_ID, "Ann@Example.com", mark)
    address, edition, mac = token.split(".")
    assert len(edition) == 8 and len(mac) == 16 and "2016" not in edition and "daily" not in edition
    found = read_token(SECRET.encode(), LIST_ID, token.upper())  # a mail system may change the case
    assert found.address == "ann@example.com" and found.edition == mark
    # Another day under the same MAC, or the same token read for another list: forged.
    other = EditionMark(date(2016, 12, 29), mark.newsletter).encode()
    with pytest.raises(TokenError, match="does not verify"):
        read_token(SECRET.encode(), LIST_ID, f"{address}.{other}.{mac}")
    with pytest.raises(TokenError, match="does not verify"):
        read_token(SECRET.encode(), "other.example.org", token)
    # The tokens made before (no edition) stay valid, and say so.
    old = make_token(SECRET.encode(), LIST_ID, "ann@example.com")
    assert len(old.split(".")) == 2 and read_token(SECRET.encode(), LIST_ID, old).edition is None
    assert verify_token(SECRET.encode(), LIST_ID, old) == verify_token(SECRET.encode(), LIST_ID, token)


def test_the_original_headers_name_the_edition_only_when_they_are_ours(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    root.mkdir()
    (root / "newsletter.toml").write_text(f'[list]\nid = "{LIST_ID}"\nlanguages = ["en", "fr"]\n', encoding="utf-8")
    finder = EditionFinder(load_settings(root, environ={}))
    ours = f"<2016-12-30.{'a' * 24}@newsletter.example.org>"
    feedback = f"2016-12-30.fr:{LIST_ID.split('.')[0]}:newsletter.example.org"
    assert finder.from_original({"feedback-id": feedback}) == EditionRef(DAY, "fr", "Feedback-ID")
    assert finder.from_original({"message-id": ours}) == EditionRef(DAY, "", "Message-ID")
    assert finder.from_original({"message-id": ours, "list-id": f"Daily <{LIST_ID}>"}) is not None
    assert finder.from_original({"message-id": ours, "list-id": "Other <other.example.org>"}) is None
    assert finder.from_original({"feedback-id": "2016-12-30:someone-else:x.example"}) is None
    assert finder.from_original({"message-id": "<2016-12-30.abc123@newsletter.example.org>"}) is None
    assert finder.from_original({"message-id": ours.replace("newsletter.example.org", "evil.example")}) is None


# --- end to end ---------------------------------------------------------------------------------


def _root(demo_root: Path) -> Path:
    (demo_root / "list.csv").write_text("email\n" + "\n".join(READERS) + "\n", encoding="utf-8")
    (demo_root / "newsletter.toml").write_text(
        f'[list]\nid = "{LIST_ID}"\n\n[mailing]\nsubscribers = "list.csv"\nreturn_path = "{RETURN_PATH}"\n',
        encoding="utf-8",
    )
    return demo_root


def _dsn(to: str, failed: str, original_id: str, report_id: str) -> bytes:
    """Postfix's hard bounce, sent back to `to`, about `failed`, carrying an original with `original_id`."""
    raw = (FIXTURES / "postfix-hard.eml").read_bytes()
    raw = raw.replace(b"<20161130060112.4Jx2kQ0ZfJz9sQD@mail.newsletter.example.org>", report_id.encode())
    raw = raw.replace(b"Delivered-To: bounces@newsletter.example.org", f"Delivered-To: {to}".encode())
    raw = raw.replace(b"ghost@example.net", failed.encode())
    return raw.replace(b"<2016-11-30.abc123@newsletter.example.org>", original_id.encode())


def _arf(reader: str, original: bytes, keep: tuple[str, ...], report_id: str) -> bytes:
    """A feedback loop's abuse report about `reader`, carrying the headers `keep` of the message we sent."""
    sent = message_from_bytes(original, policy=policy.compat32)
    carried = "".join(f"{name}: {sent[name]}\n" for name in keep if sent[name])
    head, _, tail = (FIXTURES / "arf-abuse.eml").read_bytes().partition(b"Content-Type: message/rfc822")
    head = head.replace(b"complainer@example.com", reader.encode())
    head = head.replace(b"<20030712040037.46341.5F8J@mailbox.example>", report_id.encode())
    boundary = b"--part1_13d.2e68ed54_boundary"
    body = f"\nContent-Disposition: inline\n\nFrom: news@newsletter.example.org\nTo: {reader}\n{carried}\nHi.\n"
    assert tail  # the fixture carries an original: it is replaced by ours
    return head + b"Content-Type: message/rfc822" + body.encode() + boundary + b"--\n"


def _run(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args, "--root", str(root)], capture_output=True, text=True, env=env
    )


def test_status_shows_the_rates_of_the_edition_that_caused_them(
    demo_root: Path, smtp_server, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = _root(demo_root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_UNSUBSCRIBE_SECRET"] = SECRET
    if database_url:
        env["NEWSLETTER_DATABASE_URL"] = database_url
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    settings = load_settings(root, environ={k: v for k, v in env.items() if k.startswith("NEWSLETTER_")})
    report = send_edition(settings, DAY, subscribers="list.csv", smtp=smtp_server.url, progress=False)
    assert report.sent == 40
    sent = {r.rcpt_tos[0]: r for r in smtp_server.received}
    path = ReturnPath.parse(RETURN_PATH)
    assert path is not None
    for reader, record in sent.items():  # every return path names its reader and this edition
        token = path.pattern().fullmatch(record.mail_from)
        assert token is not None
        found = read_token(SECRET.encode(), LIST_ID, token.group(1))
        assert found.address == reader and found.edition == edition_mark(LIST_ID, "en", DAY)

    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    # 1. A DSN that came back to reader03's return path; its original's Message-ID is not ours.
    box.add(
        _dsn(sent["reader03@example.com"].mail_from, "old-alias@hosting.example", "<x1@elsewhere.example>", "<d1@mx>")
    )
    # 2. A complaint with no token anywhere; the original's Feedback-ID names the edition.
    box.add(_arf("reader05@example.com", sent["reader05@example.com"].data, ("Message-ID", "Feedback-ID"), "<a1@isp>"))
    # 3. A complaint whose original kept only our Message-ID (and List-Id).
    box.add(_arf("reader07@example.com", sent["reader07@example.com"].data, ("Message-ID", "List-Id"), "<a2@isp>"))
    # 4. A bounce that names no edition (no token, a foreign Message-ID): counted by the day it arrived.
    box.add(_dsn("bounces@newsletter.example.org", "reader09@example.com", "<x2@elsewhere.example>", "<d2@mx>"))

    read = _run(root, "bounces", "--maildir", str(tmp_path / "Maildir"), "--dry-run", "--json", env=env)
    editions = {d["address"]: d["edition"] for d in json.loads(read.stdout)["decisions"]}
    assert editions["reader05@example.com"] == {"date": "2016-12-30", "language": "en", "by": "Feedback-ID"}
    assert editions["reader09@example.com"] is None
    read = _run(root, "bounces", "--maildir", str(tmp_path / "Maildir"), env=env)
    assert read.returncode == 0, read.stderr
    assert "reader03@example.com: hard — suppressed [edition 2016-12-30 (en), by its return path]" in read.stdout
    assert "reader05@example.com: complaint — suppressed [edition 2016-12-30 (en), by its Feedback-ID]" in read.stdout
    assert "reader07@example.com: complaint — suppressed [edition 2016-12-30 (en), by its Message-ID]" in read.stdout
    line09 = next(line for line in read.stdout.splitlines() if "reader09@example.com" in line)
    assert "[edition" not in line09
    again = _run(root, "bounces", "--maildir", str(tmp_path / "Maildir"), "--json", env=env)  # nothing twice
    assert again.returncode == 0 and json.loads(again.stdout)["decisions"] == [], again.stderr

    status = _run(root, "status", "--date", str(DAY), env=env)
    assert "Rates: hard bounces 1/40 = 2.50% ok" in status.stdout, status.stdout
    assert "complaints 2/40 = 5.000% OVER THE LIMIT" in status.stdout
    assert "Came back later: 1 hard bounce(s), 2 complaint(s) naming this edition" in status.stdout
    assert "naming none" not in status.stdout  # reader09's arrived today, not in 2016
