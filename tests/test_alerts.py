"""`newsletter alert`: one story, sent now through the edition ledger: exactly once, resumable, never twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import ledger_report, send_edition
from newsletter.edition import edition_date_for, read_story
from newsletter.letters import alert_settings, find_newsletter
from tests.helpers.smtp import SmtpServer

SECRET = "alert-test-secret-0123456789abcdef0123456789"
STORY = "stories/2016/12/30/syrian-regime-emboldened-ahead-of-russia-backed-peace-talks.md"
READERS = ["ada@example.org", "bo@example.org", "cy@example.org"]


@pytest.fixture
def alert_root(languages_root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    if database_url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    monkeypatch.chdir(languages_root)
    (languages_root / "readers.csv").write_text("email,name\n" + "\n".join(f"{a},R" for a in READERS) + "\n")
    return languages_root


def _alert(root: Path, smtp: SmtpServer, *more: str) -> tuple[int, str]:
    args = ["alert", "--root", str(root), "--newsletter", "breaking", STORY, "--subscribers", "readers.csv"]
    result = CliRunner().invoke(cli, [*args, "--smtp", smtp.url, *more])
    return result.exit_code, result.output


def test_an_alert_goes_out_once_and_its_rerun_sends_nothing(alert_root: Path, smtp_server: SmtpServer) -> None:
    code, out = _alert(alert_root, smtp_server)
    assert code == 0, out
    assert "sent 3" in out and sorted(r for m in smtp_server.received for r in m.rcpt_tos) == READERS
    msg = smtp_server.received[0].message
    assert msg["List-Id"] == "Breaking News <breaking.newsletter.example.org>"
    assert str(msg["Subject"]).strip() == "Breaking News: Syrian regime emboldened ahead of Russia-backed peace talks"
    body = msg.get_body(("plain",))
    assert body is not None and "Sample:" not in body.get_content()  # the one story, no other
    code, out = _alert(alert_root, smtp_server)
    assert code == 0 and "already alerted to 3 reader(s) of breaking; nothing sent" in out
    assert len(smtp_server.received) == 3


def test_a_stopped_alert_resumes_without_sending_anyone_twice(alert_root: Path, smtp_server: SmtpServer) -> None:
    settings = load_settings(alert_root)
    story, _errors, _warnings = read_story(alert_root / STORY, alert_root, settings.stories_dir, settings.base_url)
    assert story is not None
    letter = find_newsletter(settings, "breaking")
    template = Path(__file__).resolve().parent.parent / "templates" / "alert.mjml.j2"
    alerting = alert_settings(settings, letter, story.id, story.title, template)
    day = edition_date_for(story.published, alerting)
    first = send_edition(alerting, day, subscribers="readers.csv", smtp=smtp_server.url, limit=1, progress=False)
    assert first.sent == 1 and first.pending == 2  # as a run stopped after its first message leaves it
    code, out = _alert(alert_root, smtp_server)
    assert code == 0 and "sent 3" in out, out
    assert sorted(r for m in smtp_server.received for r in m.rcpt_tos) == READERS
    report = ledger_report(alerting, day)
    assert report is not None and report.sent == 3 and report.pending == 0


def test_another_story_is_another_alert_and_a_bad_story_is_one_line(alert_root: Path, smtp_server: SmtpServer) -> None:
    assert _alert(alert_root, smtp_server)[0] == 0
    other = "stories/samples/markets-head-into-the-final-session-of-the-year-in-thin-trading.md"
    args = ["alert", "--root", str(alert_root), "--newsletter", "breaking", other, "--subscribers", "readers.csv"]
    result = CliRunner().invoke(cli, [*args, "--smtp", smtp_server.url])
    assert result.exit_code == 0, result.output
    assert len(smtp_server.received) == 6
    missing = CliRunner().invoke(cli, [*args[:5], "stories/nope.md"])
    assert missing.exit_code == 1 and missing.output.startswith("Error: stories/nope.md: cannot read file")
    outside = CliRunner().invoke(cli, [*args[:5], "readers.csv"])
    assert outside.exit_code == 1 and "not a story under" in outside.output
