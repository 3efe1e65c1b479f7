"""The operator's moves after a bad morning: a real aiosmtpd relay, real SQLite ledgers, the CLI.

A relay that refused everything is fixed, and `send --retry-failed` mails the recipients it refused; a
rerun with nothing to send says why instead of printing a bare "sent 0".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.delivery.unsubscribe import SECRET_ENV
from tests.test_smtp_server import SmtpTestServer, StoreHandler, serve

READERS = ["ann@example.com", "bob@example.org", "carol@example.net", "dave@example.com"]


class SwitchableRelay(StoreHandler):
    """Refuses every message with a 500 until the operator fixes it (`broken = False`)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.broken:
            return "500 5.3.0 relay misconfigured"
        self.store(envelope)
        return "250 2.0.0 OK queued"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "operator-test-secret")


@pytest.fixture
def relay() -> Iterator[tuple[SmtpTestServer, SwitchableRelay]]:
    handler = SwitchableRelay()
    with serve(handler) as server:
        yield server, handler


@pytest.fixture
def paper(demo_root: Path) -> Path:
    (demo_root / "subscribers.csv").write_text("email,name\n" + "".join(f"{a},\n" for a in READERS), encoding="utf-8")
    return demo_root


def send(root: Path, *extra: str) -> Result:
    args = ["send", "--root", str(root), "--date", "2016-12-30", "--subscribers", "subscribers.csv", *extra]
    result = CliRunner().invoke(cli, args)
    assert "Traceback" not in result.output
    return result


def test_retry_failed_mails_the_recipients_a_broken_relay_refused(
    paper: Path, relay: tuple[SmtpTestServer, SwitchableRelay]
) -> None:
    server, handler = relay
    url = f"smtp://127.0.0.1:{server.port}"
    first = send(paper, "--smtp", url)
    assert first.exit_code == 3 and "sent 0, failed 4" in first.output, first.output
    again = send(paper, "--smtp", url)
    assert "failed 4" in again.output
    assert "4 failed earlier" in again.output and "relay misconfigured" in again.output
    assert "`--retry-failed` puts them back in the queue" in again.output
    handler.broken = False
    fixed = send(paper, "--smtp", url, "--retry-failed")
    assert fixed.exit_code == 0, fixed.output
    assert "sent 4 (4 failed put back in the queue), failed 0" in fixed.output
    assert sorted(r.rcpt_tos[0] for r in handler.received) == READERS
    once_more = send(paper, "--smtp", url, "--retry-failed")  # nothing failed now: nobody twice
    assert once_more.exit_code == 0 and len(handler.received) == 4
    assert "nothing to send: all 4 already sent" in once_more.output


def test_a_rerun_that_has_nothing_to_send_says_why(paper: Path, relay: tuple[SmtpTestServer, SwitchableRelay]) -> None:
    server, handler = relay
    handler.broken = False
    outbox = send(paper)  # README's first example: the outbox
    assert outbox.exit_code == 0 and "sent 4" in outbox.output and "nothing to send" not in outbox.output
    smtp = send(paper, "--smtp", f"smtp://127.0.0.1:{server.port}")  # its next one: the relay
    assert smtp.exit_code == 0
    assert not handler.received
    line = next(li for li in smtp.output.splitlines() if li.startswith("nothing to send"))
    assert "all 4 already sent on 20" in line and "via outbox" in line
    assert "`--to ADDR` sends a test copy" in line


def test_retry_failed_in_a_dry_run_counts_and_changes_nothing(
    paper: Path, relay: tuple[SmtpTestServer, SwitchableRelay]
) -> None:
    server, _handler = relay
    url = f"smtp://127.0.0.1:{server.port}"
    send(paper, "--smtp", url)
    dry = send(paper, "--smtp", url, "--retry-failed", "--dry-run")
    assert "would send 4" in dry.output, dry.output
    after = CliRunner().invoke(cli, ["status", "--root", str(paper), "--date", "2016-12-30"])
    assert "failed 4" in after.output
