"""How it landed: the figures gathered from real records (a ledger written by a real send, the
suppression list, the bounce records, the subscriber store) on both backends; the providers' alert
levels; the SVG charts (named, described, escaped) and `newsletter report`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.bounces import gather_landing, open_bounce_state
from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import open_suppression, send_edition, subscriber_store
from newsletter.delivery.sinks.base import Envelope, Outcome
from newsletter.delivery.sinks.memory import MemorySink
from newsletter.edition import edition_date_for
from newsletter.editorial import EditionFigures, alerts_for, stacked_bars, table
from newsletter.storage import Consent
from tests.helpers import write_story

SECRET = "landing-test-secret-long-enough-for-hmac"
READERS = 100
REFUSED = {"reader007@example.org", "reader042@example.org", "reader099@example.org"}


class Refusing(MemorySink):
    """A relay that says three of the addresses do not exist (a hard bounce at RCPT)."""

    def send(self, envelope: Envelope) -> Outcome:
        if envelope.recipient in REFUSED:
            return Outcome("permanent", 550, "550 5.1.1 no such user", stage="rcpt")
        return super().send(envelope)


def _paper(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    root = tmp_path / "paper"
    published = datetime.now(UTC) - timedelta(hours=30)  # an edition of yesterday or today: before the reports
    write_story(root, "story.md", f'title: "The story"\npublished: {published.isoformat()}')
    (root / "newsletter.toml").write_text('timezone = "UTC"\n', encoding="utf-8")
    lines = ["email"] + [f"reader{i:03d}@example.org" for i in range(READERS)]
    (root / "subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    environ = {"NEWSLETTER_DATABASE_URL": database_url} if database_url else {}
    settings = load_settings(root, environ=environ)
    day = edition_date_for(published, settings)
    report = send_edition(settings, day, subscribers="subscribers.csv", sink=Refusing(), progress=False)
    assert report.sent == READERS - 3 and report.failed == 3
    return settings, day


def test_the_figures_come_from_what_is_recorded(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, day = _paper(tmp_path, database_url, monkeypatch)
    now = datetime.now(UTC)
    with open_suppression(settings) as suppression:  # type: ignore[arg-type]
        suppression.add("reader001@example.org", "unsubscribed", "one-click")
        suppression.add("reader002@example.org", "unsubscribed", "one-click")
        suppression.add("reader003@example.org", "complained", "arf")
        suppression.add("reader004@example.org", "bounced", "dsn")
    with open_bounce_state(settings) as state:  # type: ignore[arg-type]
        state.add_soft("reader005@example.org", "<a@x>", now, "452 mailbox full")
        state.add_soft("reader006@example.org", "<b@x>", now, "452 mailbox full")
    store = subscriber_store(settings)  # type: ignore[arg-type]
    for i in range(4):
        store.request(f"new{i}@example.org")
        store.confirm(f"new{i}@example.org", Consent(now.isoformat(timespec="seconds"), "subscribe"))
    store.request("pending@example.org")
    store.close()
    today = now.date()
    figures = gather_landing(settings, today)  # type: ignore[arg-type]
    assert figures.start == today - timedelta(days=89) and figures.end == today
    assert [e.edition for e in figures.editions] == [day]
    e = figures.editions[0]
    assert (e.recipients, e.delivered, e.failed, e.pending) == (READERS, 97, 3, 0)
    assert (e.bounced_hard, e.bounced_soft, e.complaints, e.unsubscribes) == (3 + 1, 2, 1, 2)
    assert [a.level for a in figures.alerts] == ["critical"]  # 1 of 97 is past Gmail's 0.3 %; 4 % bounces is not
    assert "0.3 %" in figures.alerts[0].message
    last = figures.days[-1]
    assert (last.signups, last.requests, last.unsubscribes, last.list_size) == (4, 5, 2, 4)
    assert len(figures.days) == 90


def test_the_alert_levels_are_the_providers() -> None:
    day = datetime(2027, 1, 5).date()
    assert alerts_for(EditionFigures(day, delivered=1000, complaints=0, failed=0)) == []
    assert [a.level for a in alerts_for(EditionFigures(day, delivered=1000, complaints=1))] == ["warning"]
    assert [a.level for a in alerts_for(EditionFigures(day, delivered=1000, complaints=3))] == ["critical"]
    assert [a.level for a in alerts_for(EditionFigures(day, delivered=950, failed=50, bounced_hard=50))] == ["warning"]
    assert [a.level for a in alerts_for(EditionFigures(day, delivered=900, failed=100, bounced_hard=100))] == [
        "critical"
    ]


def test_a_chart_is_named_described_and_escaped() -> None:
    svg = stacked_bars("c1", "Sent <b>&</b>", ["12-30", "12-31"], [("delivered", [5, 7]), ("fail<ed>", [1, 0])])
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"')
    assert 'aria-labelledby="c1-title c1-desc"' in svg
    assert '<title id="c1-title">Sent &lt;b&gt;&amp;&lt;/b&gt;</title>' in svg
    assert "the largest total is 7" in svg and "fail&lt;ed&gt;" in svg and "<b>" not in svg
    assert "style=" not in svg and "<script" not in svg  # the app's CSP: no inline style or script
    html = table("Per edition", ("Edition", "Sent"), [("2016-12-30", "<5>")])
    assert '<th scope="row">2016-12-30</th><td>&lt;5&gt;</td>' in html and "<caption>Per edition</caption>" in html


def test_report_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, day = _paper(tmp_path, "", monkeypatch)
    root = str(settings.root)  # type: ignore[attr-defined]
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "--root", root, "--html", str(tmp_path / "landing.html")])
    assert result.exit_code == 0, result.output
    assert f"  {day}  delivered 97/100, deferred 0, failed 3, pending 0; bounced 3 hard, 0 soft" in result.output
    page = (tmp_path / "landing.html").read_text(encoding="utf-8")
    assert 'id="landing-sent"' in page and 'id="landing-back"' in page and "<table" in page
    assert "<script" not in page
    one = runner.invoke(cli, ["report", "--root", root, "--date", day.isoformat(), "--json"])
    assert one.exit_code == 0, one.output
    data = json.loads(one.output)
    assert [e["delivered"] for e in data["editions"]] == [97] and data["alerts"] == []
    wrong = runner.invoke(cli, ["report", "--root", root, "--newsletter", "other"])
    assert wrong.exit_code == 1 and "no newsletter 'other' (known: " in wrong.output
