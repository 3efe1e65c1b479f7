"""Send a test: the edition to the seed list (`[desk] seeds`) or given addresses, through a real SMTP server
on 127.0.0.1, by the normal message path (headers, DKIM), never touching the edition's ledger."""

from __future__ import annotations

import subprocess
import sys
from email import message_from_bytes
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import ledger_exists, seed_list
from newsletter.errors import ConfigError
from tests.helpers import DEMO_DATE, check_eml_tool
from tests.helpers.smtp import SmtpServer

SECRET = "send-test-secret-long-enough-for-hmac"
SEEDS = ["editor@example.org", "desk@example.org"]


def _configure(root: Path, smtp: SmtpServer, extra: str = "") -> None:
    seeds = ", ".join(f'"{s}"' for s in SEEDS)
    (root / "newsletter.toml").write_text(
        f'[smtp]\nurl = "{smtp.url}"\n\n[desk]\nseeds = [{seeds}]\n\n[dkim]\nselector = "s1"\n{extra}',
        encoding="utf-8",
    )


def test_a_test_goes_to_the_seed_list_signed_and_outside_the_ledger(
    demo_root: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    _configure(demo_root, smtp_server)
    runner = CliRunner()
    keygen = runner.invoke(cli, ["dkim", "keygen", "--root", str(demo_root), "--selector", "s1"])
    assert keygen.exit_code == 0, keygen.output
    result = runner.invoke(cli, ["send-test", "--root", str(demo_root), "--date", DEMO_DATE.isoformat()])
    assert result.exit_code == 0, result.output
    assert [line.split(" via ")[0] for line in result.output.splitlines()] == [
        f"sent edition {DEMO_DATE} to {seed}" for seed in SEEDS
    ]
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == sorted(SEEDS)
    for record in smtp_server.received:
        message = record.message
        assert message["To"] == record.rcpt_tos[0]
        assert message["DKIM-Signature"] and "s=s1;" in message["DKIM-Signature"].replace(" ", "")
        assert message["List-Unsubscribe"] and message["Message-ID"]
        assert message["Subject"]
    ids = {r.message["Message-ID"] for r in smtp_server.received}
    assert len(ids) == 2  # each test its own Message-ID: the real send is never taken for a duplicate
    settings = load_settings(demo_root, environ={})
    assert not ledger_exists(settings, DEMO_DATE)  # no ledger: the seeds still get the real morning
    eml = tmp_path / "test.eml"
    eml.write_bytes(smtp_server.received[0].data)
    checked = subprocess.run(
        [sys.executable, str(check_eml_tool()), "--personalized", str(eml)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_test_to_a_given_address_and_bad_input(
    demo_root: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    (demo_root / "newsletter.toml").write_text(f'[smtp]\nurl = "{smtp_server.url}"\n', encoding="utf-8")
    runner = CliRunner()
    args = ["send-test", "--root", str(demo_root), "--date", DEMO_DATE.isoformat()]
    none = runner.invoke(cli, args)
    assert none.exit_code == 1 and "give --to ADDRESS or set [desk] seeds" in none.output
    bad = runner.invoke(cli, [*args, "--to", "not an address\r\nBcc: x@example.org"])
    assert bad.exit_code == 1 and bad.output.startswith("Error: --to:") and "Traceback" not in bad.output
    assert smtp_server.received == []
    one = runner.invoke(cli, [*args, "--to", "ada@example.org"])
    assert one.exit_code == 0, one.output
    assert [r.rcpt_tos for r in smtp_server.received] == [["ada@example.org"]]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("seeds = 3", r"newsletter.toml: \[desk\] seeds must be a list of addresses, got 3"),
        ('seeds = ["ok@example.org", "nope"]', r"newsletter.toml: \[desk\] seeds: "),
    ],
)
def test_a_bad_seed_list_is_one_line_naming_the_key(tmp_path: Path, value: str, message: str) -> None:
    (tmp_path / "newsletter.toml").write_text(f"[desk]\n{value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        seed_list(load_settings(tmp_path, environ={}))


def test_the_seed_list_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text("", encoding="utf-8")
    settings = load_settings(tmp_path, environ={"NEWSLETTER_DESK__SEEDS": "a@example.org, b@example.org"})
    assert seed_list(settings) == ["a@example.org", "b@example.org"]


def test_a_test_of_every_language_edition_into_the_outbox(
    languages_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without [smtp] the tests go to outbox/<date>/test/: one message per language edition of the day."""
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    result = CliRunner().invoke(
        cli, ["send-test", "--root", str(languages_root), "--date", DEMO_DATE.isoformat(), "--to", "ed@example.org"]
    )
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 3
    written = sorted((languages_root / "outbox").rglob("test/*.eml"))
    assert len(written) == 3
    langs = {message_from_bytes(p.read_bytes())["Content-Language"] for p in written}
    assert langs == {"en", "fr", "ar"}
