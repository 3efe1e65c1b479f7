"""The send pipeline end to end: a real aiosmtpd server, real SQLite ledgers, the outbox, the CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery.ledger import EditionLock, Ledger, ledger_path
from newsletter.delivery.personalize import header_display_name
from newsletter.delivery.send import ledger_report, send_edition, send_test
from newsletter.delivery.sinks.memory import MemorySink
from newsletter.delivery.suppression import SuppressionList, suppression_path
from newsletter.delivery.unsubscribe import SECRET_ENV, MissingSecretError, verify_token
from newsletter.edition.plain import personal_line
from newsletter.errors import ConfigError, DeliveryError, LockedError, SubscriberError
from tests.helpers import check_eml_tool
from tests.test_smtp_server import SmtpTestServer, StoreHandler, serve

DAY = date(2016, 12, 30)
SECRET = "mailing-test-secret"
FIXTURES = Path(__file__).parent / "fixtures"
# The fixture list: eight valid, distinct recipients (see tests/fixtures/subscribers.csv).
VALID = {
    "ann@example.com": "Ann Smith",
    "bob@example.org": 'Bob "The Builder" <bob@evil.example>',
    "carol@xn--bcher-kva.de": "Carol Müller",
    "dave@example.net": "=?utf-8?q?Dave=0D=0ABcc:_eve@evil.example?=",
    "erin@example.com": "Erin Two Lines",
    "jos@xn--r8jz45g.jp": "Jos 用户 😀",
    "frank@example.com": "",
    "grace@example.com": "Grace, Hopper; <admin@evil.example>",
}


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    with serve(StoreHandler()) as server:
        yield server


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
def paper(demo_root: Path) -> Path:
    shutil.copy(FIXTURES / "subscribers.csv", demo_root / "subscribers.csv")
    return demo_root


def settings_for(root: Path, **overrides: object):
    return load_settings(root, overrides, environ={})


def write_list(root: Path, n: int, name: str = "list.csv") -> Path:
    path = root / name
    lines = ["email,name,locale"] + [f"reader{i:04d}@example.com,Reader {i},en" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_send_to_a_real_smtp_server(paper: Path, smtp_server) -> None:
    settings = settings_for(paper)
    report = send_edition(settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, progress=False)
    assert (report.sent, report.failed, report.pending) == (8, 0, 0)
    assert (report.invalid, report.duplicates, report.skipped) == (3, 1, 4)
    assert report.ok and report.complete
    assert any("subscribers.csv:4:" in p and "not-an-address" in p for p in report.problems)
    assert any("subscribers.csv:5: duplicate of line 2" in p for p in report.problems)
    assert any("subscribers.csv:13:" in p and "non-ASCII" in p for p in report.problems)

    by_rcpt = {}
    for record in smtp_server.received:
        assert record.mail_from == settings.sender.address
        assert len(record.rcpt_tos) == 1
        assert record.rcpt_tos[0] not in by_rcpt, "a recipient got two messages"
        by_rcpt[record.rcpt_tos[0]] = record
    assert set(by_rcpt) == set(VALID)

    message_ids = set()
    for address, name in VALID.items():
        raw = by_rcpt[address].data
        msg = message_from_bytes(raw, policy=policy.default)
        # Exactly one recipient, the right one, whatever the name tried.
        assert [a.addr_spec for a in msg["To"].addresses] == [address]
        assert msg.get_all("Bcc") is None and msg.get_all("Cc") is None
        # Decodes back exactly; an encoded-word look-alike is shown literally (broken by invisible U+2060).
        assert msg["To"].addresses[0].display_name == header_display_name(name)
        if "=?" not in name:
            assert msg["To"].addresses[0].display_name == name
        # Personal parts: greeting, unsubscribe link with a token that verifies to this address.
        text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = msg.get_body(("html",)).get_content()
        assert (personal_line(f"Good morning, {name}.") if name else "Good morning.\n") in text
        unsub = msg["List-Unsubscribe"]
        url = unsub.split("<", 1)[1].split(">", 1)[0]
        assert url.startswith(settings.list.unsubscribe_url)
        assert verify_token(SECRET.encode(), settings.list.id, url.rsplit("/", 1)[1]) == address
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"] == "The Morning Brief <morning-brief.newsletter.example.org>"
        assert re.search(rf"Unsubscribe:\s+{re.escape(url)}\n", text)  # the visible link, in both parts
        assert f'href="{url}"' in html
        assert "https://newsletter.example.org/editions/2016-12-30/" in text  # view in browser, no tracking
        message_ids.add(msg["Message-ID"])
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert len(message_ids) == len(VALID)

    # The ledger agrees, and so does status.
    again = ledger_report(settings, DAY)
    assert again is not None
    assert (again.sent, again.failed, again.pending, again.total) == (8, 0, 0, 8)


def test_names_are_escaped_in_html(paper: Path) -> None:
    sink = MemorySink()
    send_edition(settings_for(paper), DAY, subscribers="subscribers.csv", sink=sink, progress=False)
    by_rcpt = {e.recipient: message_from_bytes(e.data, policy=policy.default) for e in sink.sent}
    html = by_rcpt["bob@example.org"].get_body(("html",)).get_content()
    assert "Good morning, Bob &quot;The Builder&quot; &lt;bob@evil.example&gt;" in html.replace('"', "&quot;")
    assert "<bob@evil.example>" not in html
    html = by_rcpt["grace@example.com"].get_body(("html",)).get_content()
    assert "&lt;admin@evil.example&gt;" in html and "<admin@evil.example>" not in html


def test_default_sink_is_the_outbox_and_passes_check_eml(paper: Path) -> None:
    settings = settings_for(paper)
    report = send_edition(settings, DAY, subscribers="subscribers.csv", progress=False)
    assert report.sent == 8 and report.ok
    folder = paper / "outbox" / "2016-12-30" / "mail"
    files = sorted(folder.glob("*.eml"))
    assert [f.name for f in files] == sorted(f"{a}.eml" for a in VALID)
    assert not list(folder.glob(".*.tmp"))
    unsubscribe_urls = set()
    for path in files:
        data = path.read_bytes()
        msg = message_from_bytes(data, policy=policy.default)
        assert not msg.defects and msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert [a.addr_spec for a in msg["To"].addresses] == [path.name.removesuffix(".eml")]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe_urls.add(msg["List-Unsubscribe"])
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert len(unsubscribe_urls) == 8
    # The shared quality checker beside the checkout (skipped where absent, required under CI=true).
    check_eml = check_eml_tool()
    result = subprocess.run(
        [sys.executable, str(check_eml), "--personalized", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.strip().splitlines()[-1].startswith("RESULT: PASS files=8 fail=0")


def test_rerun_never_resends(paper: Path, smtp_server) -> None:
    settings = settings_for(paper)
    first = send_edition(settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, progress=False)
    assert first.sent_now == 8
    second = send_edition(settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, progress=False)
    assert (second.sent, second.sent_now, second.pending) == (8, 0, 0)
    assert len(smtp_server.received) == 8
    # A subscriber added to the list later gets it on the next run, alone.
    with (paper / "subscribers.csv").open("a", encoding="utf-8") as fh:
        fh.write("late@example.com,Late Comer,en,free\n")
    third = send_edition(settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, progress=False)
    assert (third.sent, third.sent_now) == (9, 1)
    assert smtp_server.received[-1].rcpt_tos == ["late@example.com"]


def test_suppressed_addresses_are_skipped(paper: Path) -> None:
    settings = settings_for(paper)
    with SuppressionList(suppression_path(settings)) as s:
        s.add("ANN@example.com", "unsubscribed", "test")
        s.add("bob@example.org", "bounced", "test")
    sink = MemorySink()
    report = send_edition(settings, DAY, subscribers="subscribers.csv", sink=sink, progress=False)
    assert {e.recipient for e in sink.sent} == set(VALID) - {"ann@example.com", "bob@example.org"}
    assert report.suppressed == 2 and report.sent == 6 and report.pending == 0 and report.ok
    with Ledger(ledger_path(settings, DAY)) as ledger:
        assert ledger.state_of("ann@example.com") == "skipped"


def test_dry_run_sends_nothing_and_leaves_no_ledger(paper: Path, smtp_server) -> None:
    settings = settings_for(paper)
    report = send_edition(
        settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, dry_run=True, progress=False
    )
    assert report.dry_run and report.sent_now == 8 and report.invalid == 3
    assert smtp_server.received == []
    assert not ledger_path(settings, DAY).exists()
    assert not (paper / "outbox" / "2016-12-30" / "mail").exists()
    # After a partial real run, a dry run counts only what is left.
    send_edition(settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, limit=3, progress=False)
    report = send_edition(settings, DAY, subscribers="subscribers.csv", dry_run=True, progress=False)
    assert report.sent_now == 5
    assert ledger_report(settings, DAY).sent == 3  # type: ignore[union-attr]


def test_limit_then_the_rest(paper: Path, smtp_server) -> None:
    settings = settings_for(paper)
    first = send_edition(settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, limit=2, progress=False)
    assert (first.sent, first.pending, first.limited) == (2, 6, True)
    assert not first.complete
    rest = send_edition(settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, progress=False)
    assert (rest.sent, rest.sent_now, rest.pending) == (8, 6, 0)
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == sorted(VALID)


def test_to_sends_one_test_copy_outside_the_ledger(paper: Path, smtp_server) -> None:
    settings = settings_for(paper)
    report = send_edition(settings, DAY, to="editor@example.com", smtp=smtp_server.url, progress=False)
    assert report.test
    assert [r.rcpt_tos for r in smtp_server.received] == [["editor@example.com"]]
    assert not ledger_path(settings, DAY).exists()
    line = send_test(load_settings(paper, {"smtp.url": smtp_server.url}, environ={}), DAY, "chief@example.com")
    assert "chief@example.com" in line and smtp_server.url.split("//")[1] in line
    assert smtp_server.received[-1].rcpt_tos == ["chief@example.com"]
    test_ids = {r.message["Message-ID"] for r in smtp_server.received}
    assert len(test_ids) == 2  # a fresh Message-ID each time: the real send is not taken for a duplicate
    # Without SMTP configured, a test send goes to the outbox's test folder.
    line = send_test(settings, DAY, "chief@example.com")
    assert (paper / "outbox" / "2016-12-30" / "test" / "chief@example.com.eml").is_file()
    with pytest.raises(SubscriberError, match="--to"):
        send_test(settings, DAY, "not an address")


def test_no_secret_means_nothing_is_sent(paper: Path, smtp_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV)
    settings = settings_for(paper)
    with pytest.raises(MissingSecretError, match=SECRET_ENV):
        send_edition(settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, progress=False)
    with pytest.raises(MissingSecretError):
        send_test(settings, DAY, "a@example.com")
    assert smtp_server.received == []
    assert not ledger_path(settings, DAY).exists()


def test_unreachable_server_is_a_clear_error_and_the_ledger_stays_intact(paper: Path, smtp_server) -> None:
    settings = settings_for(paper)
    send_edition(settings, DAY, subscribers="subscribers.csv", smtp=smtp_server.url, limit=3, progress=False)
    with pytest.raises(DeliveryError, match=r"cannot reach SMTP server smtp://127\.0\.0\.1:1"):
        send_edition(settings, DAY, subscribers="subscribers.csv", smtp="smtp://127.0.0.1:1", progress=False)
    report = ledger_report(settings, DAY)
    assert report is not None and (report.sent, report.pending) == (3, 5)


def test_second_run_of_the_same_edition_is_refused(paper: Path) -> None:
    settings = settings_for(paper)
    lock = EditionLock(ledger_path(settings, DAY).with_suffix(".lock"), "edition 2016-12-30")
    lock.acquire()
    try:
        with pytest.raises(LockedError, match="being sent by another run"):
            send_edition(settings, DAY, subscribers="subscribers.csv", progress=False)
    finally:
        lock.release()
    assert send_edition(settings, DAY, subscribers="subscribers.csv", progress=False).ok


def test_concurrent_runs_one_refused(paper: Path, smtp_server) -> None:
    """Two real `newsletter send` processes: while one is sending, the other says the edition is locked."""
    # 40 messages at 5 a second hold the lock for 8 s: long enough for the second process to start, load
    # the edition and reach the lock on a loaded machine.
    write_list(paper, 40)
    cmd = [
        sys.executable, "-m", "newsletter", "send", "--root", str(paper), "--date", "2016-12-30",
        "--subscribers", "list.csv", "--smtp", smtp_server.url, "--rate", "5",
    ]  # fmt: skip
    env = {**os.environ, SECRET_ENV: SECRET}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not smtp_server.received and time.monotonic() < deadline:  # it holds the lock once it sends
        time.sleep(0.02)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 1
    assert "edition 2016-12-30 is being sent by another run (pid" in second.stderr
    assert len(smtp_server.received) == 40


def test_stop_event_finishes_in_flight_and_resumes(paper: Path) -> None:
    settings = settings_for(paper)
    write_list(paper, 40)
    stop = threading.Event()

    class StoppingSink(MemorySink):
        def send(self, envelope):
            if len(self.sent) == 9:
                stop.set()
            return super().send(envelope)

    sink = StoppingSink()
    report = send_edition(settings, DAY, subscribers="list.csv", sink=sink, stop=stop, progress=False)
    assert report.stopped and report.sent == 10 and report.pending == 30
    report = send_edition(settings, DAY, subscribers="list.csv", sink=sink, progress=False)
    assert report.sent == 40 and report.ok
    assert len(sink.sent) == len({e.recipient for e in sink.sent}) == 40


def test_sqlite_subscriber_list(paper: Path, smtp_server) -> None:
    import sqlite3

    db = sqlite3.connect(paper / "people.sqlite")
    db.execute("CREATE TABLE members (email TEXT, name TEXT)")
    db.executemany("INSERT INTO members VALUES (?, ?)", [("x@example.com", "X"), ("bad", "B"), ("X@EXAMPLE.com", "")])
    db.commit()
    db.close()
    report = send_edition(
        settings_for(paper), DAY, subscribers="people.sqlite#members", smtp=smtp_server.url, progress=False
    )
    assert (report.sent, report.invalid, report.duplicates) == (1, 1, 1)
    assert any(p.startswith("people.sqlite:2:") for p in report.problems)


def test_subscribers_from_config(paper: Path, smtp_server) -> None:
    (paper / "newsletter.toml").write_text(
        f'[mailing]\nsubscribers = "subscribers.csv"\n\n[smtp]\nurl = "{smtp_server.url}"\nconnections = 2\n',
        encoding="utf-8",
    )
    report = send_edition(settings_for(paper), DAY, progress=False)
    assert report.sent == 8 and "2 connections" in report.sink


# --- the CLI -------------------------------------------------------------------------------------------


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={SECRET_ENV: SECRET})
    return result.exit_code, result.stdout, result.stderr


def test_cli_send_status_and_exit_codes(paper: Path, smtp_server) -> None:
    root = str(paper)
    code, out, err = run_cli("status", "--root", root, "--date", "2016-12-30")
    assert code == 5 and "not sent yet" in out and "Status: not started" in out
    code, out, err = run_cli(
        "send", "--root", root, "--date", "2016-12-30", "--subscribers", "subscribers.csv", "--smtp", smtp_server.url,
        "--limit", "3",
    )  # fmt: skip
    assert code == 0, err
    assert "Edition 2016-12-30: sent 3" in out and "pending 5" in out
    assert "sending 2016-12-30: 3/3 (100%)" in err  # not a terminal: plain progress lines
    assert "subscribers.csv:4:" in err  # the skipped entries are listed with file and line
    code, out, err = run_cli("status", "--root", root, "--date", "2016-12-30")
    assert code == 4  # incomplete
    assert "sent 3, failed 0, skipped 4, pending 5" in out and "Status: incomplete" in out
    code, out, err = run_cli(
        "send", "--root", root, "--date", "2016-12-30", "--subscribers", "subscribers.csv", "--smtp", smtp_server.url
    )
    assert code == 0 and "sent 8 (5 this run)" in out
    code, out, err = run_cli("status", "--root", root, "--date", "2016-12-30")
    assert code == 0 and "Status: complete" in out


def test_cli_errors_are_one_line(paper: Path) -> None:
    root = str(paper)
    result = CliRunner().invoke(
        cli, ["send", "--root", root, "--date", "2016-12-30", "--subscribers", "subscribers.csv"], env={SECRET_ENV: ""}
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and SECRET_ENV in result.stderr
    code, _, err = run_cli("send", "--root", root, "--date", "2016-12-30", "--subscribers", "missing.csv")
    assert code == 1 and "missing.csv: subscriber list not found" in err
    code, _, err = run_cli(
        "send", "--root", root, "--date", "2016-12-30", "--subscribers", "subscribers.csv", "--smtp", "ftp://x"
    )
    assert code == 1 and "scheme must be" in err


def test_cli_unsubscribe(paper: Path) -> None:
    settings = settings_for(paper)
    from newsletter.delivery.unsubscribe import unsubscribe_url

    url = unsubscribe_url(settings, "ann@example.com", SECRET.encode())
    code, out, err = run_cli("unsubscribe", "--root", str(paper), "--verify", url)
    assert code == 0 and "valid: unsubscribes ann@example.com" in out
    code, out, err = run_cli("unsubscribe", "--root", str(paper), "--verify", url.rsplit("/", 1)[1])
    assert code == 0 and "ann@example.com" in out
    tampered = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    code, out, err = run_cli("unsubscribe", "--root", str(paper), "--verify", tampered)
    assert code == 1 and "does not verify" in err
    code, out, err = run_cli("unsubscribe", "--root", str(paper), "--verify", "garbage")
    assert code == 1 and "malformed" in err
    code, out, err = run_cli("unsubscribe", "--root", str(paper), "--add", "Zed@Example.com", "--reason", "complained")
    assert code == 0 and "added to the suppression list" in out
    code, out, err = run_cli("unsubscribe", "--root", str(paper), "--check", "zed@example.com")
    assert code == 0 and "suppressed (complained" in out
    code, out, err = run_cli("unsubscribe", "--root", str(paper), "--check", "ann@example.com")
    assert "not suppressed" in out


def test_progress_bar(paper: Path, capsys: pytest.CaptureFixture[str]) -> None:
    send_edition(settings_for(paper), DAY, subscribers="subscribers.csv", sink=MemorySink(), progress=True)
    err = capsys.readouterr().err
    assert "sending 2016-12-30" in err and "8/8" in err and "msg/s" in err and "ETA" in err
    send_edition(settings_for(paper), DAY, subscribers="subscribers.csv", sink=MemorySink(), progress=False)
    assert capsys.readouterr().err == ""


def test_help_has_examples() -> None:
    for command in ("send", "status", "unsubscribe"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output


def test_mailing_options(paper: Path, smtp_server) -> None:
    (paper / "newsletter.toml").write_text(
        '[mailing]\nreturn_path = "bounces@newsletter.example.org"\nmax_attempts = 2\n', encoding="utf-8"
    )
    send_edition(settings_for(paper), DAY, subscribers="subscribers.csv", smtp=smtp_server.url, progress=False)
    assert {r.mail_from for r in smtp_server.received} == {"bounces@newsletter.example.org"}
    for bad, message in [
        ("[mailing]\nreturn_path = 'nope'\n", "return_path"),
        (
            "[mailing]\nmax_attempts = 0\n",
            r"^newsletter.toml: \[mailing\] max_attempts must be a whole number from 1 to 100",
        ),
        ("[mailing]\nretry_base = 'soon'\n", "retry_base"),
        ("[mailing]\nsubscriber = 'x.csv'\n", "unknown setting 'subscriber'"),
    ]:
        (paper / "newsletter.toml").write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            send_edition(settings_for(paper), DAY, subscribers="subscribers.csv", progress=False)
