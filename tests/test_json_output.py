"""`--json` on `send`, `status`, `bounces` and `subscribers show`: one object a script can read, the same
exit status as the text (README's exit codes), and the numbers the ledger and the stores hold."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.cli.output import EXIT_INCOMPLETE, EXIT_NOT_STARTED, EXIT_OK
from newsletter.config import load_settings
from newsletter.delivery import ledger_report
from tests.test_bounces import make_maildir
from tests.test_bounces import make_root as bounce_root
from tests.test_observability import folder_text, value

DAY = "2016-12-30"
READERS = [f"reader{i}@example.org" for i in range(5)]


@pytest.fixture
def paper(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "json-output-secret-long-enough")
    (demo_root / "subscribers.csv").write_text("email,name\n" + "".join(f"{a},R\n" for a in READERS))
    return demo_root


def run(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, list(args))
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"not one JSON object on stdout (exit {result.exit_code}): {result.output}")


def test_status_send_status(paper: Path) -> None:
    root = ["--root", str(paper)]
    code, before = run("status", *root, "--date", DAY, "--json")
    assert code == EXIT_NOT_STARTED and before["status"] == "not started" and before["exit_code"] == code

    code, sent = run("send", *root, "--date", DAY, "--subscribers", "subscribers.csv", "--limit", "3", "--json")
    ledger = ledger_report(load_settings(paper, environ={}), date.fromisoformat(DAY))
    assert ledger is not None and sent["edition"] == DAY
    assert code == EXIT_OK and sent["sent_now"] == 3 == ledger.sent and sent["pending"] == 2 == ledger.pending
    assert sent["total"] == len(READERS) and sent["limited"] is True and sent["languages"]["en"]["sent"] == 3

    code, middle = run("status", *root, "--date", DAY, "--json")
    assert code == EXIT_INCOMPLETE and middle["status"] == "incomplete" and middle["exit_code"] == code
    assert (middle["sent"], middle["pending"], middle["failed"]) == (3, 2, 0)
    assert "failures" not in middle and "sent_now" not in middle  # a ledger's state, not a run's

    code, rest = run("send", *root, "--date", DAY, "--subscribers", "subscribers.csv", "--json")
    assert code == EXIT_OK and rest["sent_now"] == 2 and rest["ok"] is True
    code, after = run("status", *root, "--date", DAY, "--json", "--failed")
    assert code == EXIT_OK and after["status"] == "complete" and after["sent"] == len(READERS)
    assert after["failures"] == []


def test_bounces_json_counts_and_decisions(tmp_path: Path) -> None:
    root = bounce_root(tmp_path)
    box = make_maildir(tmp_path / "Maildir")
    code, report = run("bounces", "--root", str(root), "--maildir", str(box), "--json")
    assert code == 0 and report["exit_code"] == 0
    assert (report["read"], report["hard"], report["soft"], report["complaints"]) == (15, 7, 2, 2)
    assert report["suppressed"] == 7
    ghost = [d for d in report["decisions"] if d["address"] == "ghost@example.net"]
    assert ghost and ghost[0]["outcome"] == "suppressed" and ghost[0]["event"] == "hard"
    # The same counts went to the metrics folder, by kind.
    counted = folder_text(root / "data" / "metrics")
    list_id = load_settings(root, environ={}).list.id
    for kind, n in (("hard", 7), ("soft", 2), ("complaint", 2), ("autoreply", 2), ("malformed", 1)):
        assert value(counted, "newsletter_bounces_total", newsletter=list_id, kind=kind) == n, kind


def test_subscribers_show_json(paper: Path) -> None:
    root = ["--root", str(paper)]
    assert CliRunner().invoke(cli, ["subscribers", "add", "ann@example.org", "--name", "Ann", *root]).exit_code == 0
    assert CliRunner().invoke(cli, ["unsubscribe", "--add", "ann@example.org", *root]).exit_code == 0
    code, shown = run("subscribers", "show", "ANN@example.org", *root, "--json")
    assert code == 0 and shown["email"] == "ann@example.org" and shown["name"] == "Ann"
    # The record says what the suppression list says (one reader base), and the history says why.
    assert shown["status"] == "unsubscribed" and shown["suppressed"].startswith("manual")
    assert shown["suppression"]["reason"] == "manual" and shown["history"][-1]["via"] == "operator"
    assert [s["status"] for s in shown["subscriptions"]] == ["unsubscribed"]
    missing = CliRunner().invoke(cli, ["subscribers", "show", "nobody@example.org", *root, "--json"])
    assert missing.exit_code == 1 and "not in the subscriber store" in missing.output
