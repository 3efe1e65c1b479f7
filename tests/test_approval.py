"""Approval of an exact edition: the store (both backends), the hash, the scheduler waiting for it with an
injected clock (waits, a story edited voids it, `approve_by` with "send" and with "hold"), and the CLI."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import Settings, load_settings
from newsletter.edition import edition_digests
from newsletter.editorial import APPROVED, VOID, WAITING, edition_hash, open_approvals
from newsletter.errors import ConfigError
from newsletter.schedule import Morning, Outcome, State, read_config
from tests.helpers import DEMO_DATE
from tests.test_schedule import PARIS, Clock, Recorder, add_story, local, make_settings

DAY = date(2027, 3, 29)
MORNING = local(DAY, "06:00", PARIS)


# --- the store and the hash ------------------------------------------------------------------------


def test_the_newest_approval_decides_and_a_changed_hash_is_void(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "newsletter.toml").write_text("", encoding="utf-8")
    settings = load_settings(tmp_path, environ={"NEWSLETTER_DATABASE_URL": database_url} if database_url else {})
    with open_approvals(settings) as store:
        assert store.state("daily", DAY, "en", "a" * 64).state == WAITING
        store.approve("daily", DAY, "en", "a" * 64, "Ada  Lovelace", at=datetime(2027, 3, 29, 4, 0, tzinfo=UTC))
        first = store.state("daily", DAY, "en", "a" * 64)
        assert first.state == APPROVED and first.approval is not None and first.approval.by == "Ada Lovelace"
        assert first.describe() == "approved by Ada Lovelace at 2027-03-29T04:00 UTC"
        assert store.state("daily", DAY, "en", "b" * 64).state == VOID  # the edition changed since
        assert store.state("daily", DAY, "fr", "a" * 64).state == WAITING  # per language
        assert store.state("other", DAY, "en", "a" * 64).state == WAITING  # per newsletter
        store.approve("daily", DAY, "en", "b" * 64, "Grace Hopper")
        assert store.state("daily", DAY, "en", "b" * 64).state == APPROVED
        assert [a.by for a in store.history("daily", DAY, "en")] == ["Grace Hopper", "Ada Lovelace"]
        with pytest.raises(ValueError, match="name"):
            store.approve("daily", DAY, "en", "c" * 64, "   ")


def test_the_approvals_share_desk_sqlite_with_tables_made_before(tmp_path: Path) -> None:
    """Another desk store made data/desk.sqlite first (another process): the approvals add their table."""
    import sqlite3

    (tmp_path / "data").mkdir()
    (tmp_path / "newsletter.toml").write_text("", encoding="utf-8")
    with sqlite3.connect(tmp_path / "data" / "desk.sqlite") as db:
        db.execute("CREATE TABLE desk_users (name TEXT)")
    with open_approvals(load_settings(tmp_path, environ={})) as store:
        store.approve("daily", DAY, "en", "a" * 64, "Ada")
        assert store.state("daily", DAY, "en", "a" * 64).approved


def test_the_hash_changes_with_what_goes_out() -> None:
    stories = [("a", "1"), ("b", "2")]
    base = edition_hash(stories, subject="Morning", preheader="p")
    assert base == edition_hash(list(stories), subject="Morning", preheader="p")
    assert base != edition_hash([("a", "1"), ("b", "3")], subject="Morning", preheader="p")  # a story edited
    assert base != edition_hash([("b", "2"), ("a", "1")], subject="Morning", preheader="p")  # reordered
    assert base != edition_hash([("a", "1")], subject="Morning", preheader="p")  # one left out
    assert base != edition_hash(stories, subject="Evening", preheader="p")
    assert base != edition_hash(stories, subject="Morning", preheader="q")
    assert base != edition_hash(stories, subject="Morning", preheader="p", plan={"lead": "b"})


def test_a_story_edited_changes_the_built_editions_hash(demo_root: Path) -> None:
    settings = load_settings(demo_root, environ={})
    before = edition_digests(settings, DEMO_DATE)
    story = next((demo_root / "stories").rglob("*.md"))
    story.write_text(story.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    after = edition_digests(settings, DEMO_DATE)
    assert set(before) == set(after) == {settings.language}
    assert before[settings.language].content_hash != after[settings.language].content_hash


# --- the configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('approval = "maybe"', '\'approval\' must be "auto" or "required"'),
        ('on_unapproved = "panic"', '\'on_unapproved\' must be "send" or "hold"'),
        ('approve_by = "5:30"', "'approve_by' must be a 24-hour time HH:MM"),
        ('approve_by = "25:00"', "'approve_by' must be a 24-hour time HH:MM"),
    ],
)
def test_a_bad_approval_setting_is_one_line_naming_the_key(tmp_path: Path, line: str, message: str) -> None:
    settings = make_settings(tmp_path, line)
    with pytest.raises(ConfigError, match=message):
        read_config(settings)


# --- the scheduler waits ---------------------------------------------------------------------------


def _paper(tmp_path: Path, schedule: str) -> Settings:
    settings = make_settings(tmp_path, 'approval = "required"\n' + schedule)
    for i in range(-2, 2):
        add_story(settings, DAY + timedelta(days=i))
    return settings


def _approve(settings: Settings, by: str, at: datetime) -> None:
    digests = edition_digests(settings, DAY)
    with open_approvals(settings) as store:
        for lang, digest in digests.items():
            store.approve(settings.list.id, DAY, lang, digest.content_hash, by, at=at)


class Waiting:
    """The injected sleep: moves the clock by what the morning waits, and runs the test's events when
    their time comes (an editor approving, a reporter editing a story)."""

    def __init__(self, clock: Clock, events: list[tuple[timedelta, object]]) -> None:
        self.clock = clock
        self.events = sorted(events, key=lambda e: e[0])  # type: ignore[arg-type, return-value]
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))
        while self.events and MORNING + self.events[0][0] <= self.clock():
            _, event = self.events.pop(0)
            event()  # type: ignore[operator]
        return False


def test_the_morning_waits_for_approval_then_sends(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _paper(tmp_path, 'approve_by = "07:00"\non_unapproved = "hold"')
    clock = Clock(MORNING)
    send = Recorder(clock)
    wait = Waiting(clock, [(timedelta(minutes=12), lambda: _approve(settings, "Ada", clock()))])
    morning = Morning(settings, send=send, clock=clock, sleep=wait)
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    result = morning.run(MORNING)
    assert result.outcome == Outcome.COMPLETED
    assert len(send.calls) == 1
    sent_at = send.calls[0][1]
    assert MORNING + timedelta(minutes=12) <= sent_at <= MORNING + timedelta(minutes=13)  # at the next look
    assert all(0 < w <= 30 for w in wait.waits)
    assert any("waiting for approval" in r.getMessage() for r in caplog.records)


def test_a_story_edited_after_approval_voids_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _paper(tmp_path, 'approve_by = "07:00"\non_unapproved = "hold"')
    _approve(settings, "Ada", MORNING - timedelta(hours=1))
    add_story(settings, DAY, name=DAY.isoformat())  # rewritten as it was: still the approved edition
    path = settings.stories_dir / f"{DAY.isoformat()}.md"
    path.write_text(path.read_text(encoding="utf-8").replace("Body.", "Body, corrected."), encoding="utf-8")
    clock = Clock(MORNING)
    send = Recorder(clock)
    wait = Waiting(clock, [(timedelta(minutes=20), lambda: _approve(settings, "Grace", clock()))])
    morning = Morning(settings, send=send, clock=clock, sleep=wait)
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    assert morning.run(MORNING).outcome == Outcome.COMPLETED
    assert send.calls[0][1] >= MORNING + timedelta(minutes=20)  # not at 06:00 on Ada's void approval
    void = [r.getMessage() for r in caplog.records if "void" in r.getMessage()]
    assert void and "approval by Ada" in void[0] and "the edition changed since" in void[0]


def test_unapproved_by_approve_by_is_sent_anyway_with_send(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _paper(tmp_path, 'approve_by = "06:30"\non_unapproved = "send"')
    clock = Clock(MORNING)
    send = Recorder(clock)
    morning = Morning(settings, send=send, clock=clock, sleep=Waiting(clock, []))
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    assert morning.run(MORNING).outcome == Outcome.COMPLETED
    assert send.calls[0][1] == local(DAY, "06:30", PARIS).astimezone(UTC)  # waited until approve_by, not later
    assert any("sending anyway" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_unapproved_by_approve_by_is_held_and_alerts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """approve_by before the morning: at 06:00 it is already too late, so it is held at once."""
    settings = _paper(tmp_path, 'approve_by = "05:30"\non_unapproved = "hold"')
    clock = Clock(MORNING)
    send = Recorder(clock)
    wait = Waiting(clock, [])
    morning = Morning(settings, send=send, clock=clock, sleep=wait)
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    result = morning.run(MORNING)
    assert result.outcome == Outcome.HELD and send.calls == [] and wait.waits == []
    row = morning.store.get(DAY)
    assert row is not None and row.state == State.HELD and "not approved by 2027-03-29T05:30" in row.detail
    held = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert held and "HELD" in held[0].getMessage()
    from newsletter.cli.morning_check import CRITICAL, check_line

    code, line = check_line(settings, now=MORNING + timedelta(minutes=5))
    assert code == CRITICAL and line.startswith("CRITICAL: edition 2027-03-29 held")
    # Approved later, the operator sends it by hand: the approval is of the edition as it is.
    _approve(settings, "Ada", clock())
    assert morning.run(MORNING, manual=True).outcome == Outcome.COMPLETED
    assert len(send.calls) == 1


def test_auto_approval_sends_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "")
    add_story(settings, DAY)
    clock = Clock(MORNING)
    send = Recorder(clock)
    wait = Waiting(clock, [])
    assert Morning(settings, send=send, clock=clock, sleep=wait).run(MORNING).outcome == Outcome.COMPLETED
    assert send.calls == [(DAY, MORNING.astimezone(UTC))] and wait.waits == []


# --- the CLI ---------------------------------------------------------------------------------------


def test_approve_on_the_command_line_and_status_shows_it(demo_root: Path) -> None:
    (demo_root / "newsletter.toml").write_text('[schedule]\napproval = "required"\n', encoding="utf-8")
    runner = CliRunner()
    args = ["--root", str(demo_root), "--date", DEMO_DATE.isoformat()]
    waiting = runner.invoke(cli, ["status", *args])
    assert "waiting for approval" in waiting.output, waiting.output
    result = runner.invoke(cli, ["approve", *args, "--by", "Ada Lovelace"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Edition {DEMO_DATE}: approved by Ada Lovelace:")
    shown = runner.invoke(cli, ["status", *args])
    assert f"Edition {DEMO_DATE}: approved by Ada Lovelace at " in shown.output, shown.output
    from newsletter.editorial import open_audit

    with open_audit(load_settings(demo_root, environ={})) as audit:
        entries = audit.entries(limit=5)
    assert [(e.actor, e.action, e.target) for e in entries] == [("Ada Lovelace", "edition.approve", f"{DEMO_DATE}/en")]
    story = next((demo_root / "stories").rglob("*.md"))
    story.write_text(story.read_text(encoding="utf-8") + "\nA correction.\n", encoding="utf-8")
    void = runner.invoke(cli, ["status", *args])
    assert "approval by Ada Lovelace at " in void.output and "void" in void.output, void.output
    wrong = runner.invoke(cli, ["approve", *args, "--newsletter", "nope"])
    assert wrong.exit_code == 1 and "no newsletter 'nope' (known: " in wrong.output
    assert "Traceback" not in wrong.output


def test_status_of_a_day_without_stories_says_so(demo_root: Path) -> None:
    (demo_root / "newsletter.toml").write_text('[schedule]\napproval = "required"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["status", "--root", str(demo_root), "--date", "2016-01-01"])
    assert result.output.startswith("Approval: edition 2016-01-01: no stories"), result.output
    assert "not sent yet" in result.output and "Traceback" not in result.output


def test_db_migrate_from_sqlite_moves_the_approvals(tmp_path: Path, pg_cluster: object) -> None:
    (tmp_path / "newsletter.toml").write_text("", encoding="utf-8")
    local = load_settings(tmp_path, environ={})
    with open_approvals(local) as store:
        store.approve("daily", DAY, "en", "a" * 64, "Ada", at=datetime(2027, 3, 29, 4, 0, tzinfo=UTC))
        store.approve("daily", DAY, "en", "b" * 64, "Grace", at=datetime(2027, 3, 29, 5, 0, tzinfo=UTC))
    env = {"NEWSLETTER_DATABASE_URL": pg_cluster.new_database()}  # type: ignore[attr-defined]
    for _ in range(2):  # twice: the second run copies nothing again
        result = CliRunner().invoke(cli, ["db", "migrate-from-sqlite", "--root", str(tmp_path)], env=env)
        assert result.exit_code == 0, result.output
    assert "the database already has approvals" in result.output
    with open_approvals(load_settings(tmp_path, environ=env)) as store:
        assert [a.by for a in store.history("daily", DAY, "en")] == ["Grace", "Ada"]
        assert store.state("daily", DAY, "en", "b" * 64).approved
