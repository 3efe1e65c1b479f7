"""`newsletter status` for monitoring: the last scheduled mornings, and `--check` for on-time, late and
failed mornings (exit 0 / 1, one line)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.cli.morning_check import check_line
from newsletter.config import load_settings
from newsletter.schedule import RunStore, State, store_path

PARIS = ZoneInfo("Europe/Paris")
DAY = date(2026, 3, 10)
SCHEDULED = datetime(2026, 3, 10, 6, 0, tzinfo=PARIS)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "stories").mkdir()
    (tmp_path / "newsletter.toml").write_text(
        '[schedule]\nat = "06:00"\ntimezone = "Europe/Paris"\ngrace = "3h"\n', encoding="utf-8"
    )
    return tmp_path


def record(root: Path, state: State, detail: str) -> None:
    store = RunStore(store_path(load_settings(root, environ={})))
    store.claim(DAY, SCHEDULED, "host:1", SCHEDULED)
    store.finish(DAY, state, SCHEDULED.replace(hour=6, minute=5), detail)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 10, hour, minute, tzinfo=PARIS)


def scheduler_ran(root: Path) -> None:
    """The scheduler has started here before: it accounted for the mornings up to yesterday's."""
    RunStore(store_path(load_settings(root, environ={}))).advance(SCHEDULED - timedelta(days=1))


def test_on_time_morning(root: Path) -> None:
    settings = load_settings(root, environ={})
    scheduler_ran(root)
    ok, line = check_line(settings, at(7))
    assert ok == 0 and line == "OK: edition 2026-03-10 not started; due by 2026-03-10T09:00+01:00"  # not late yet
    record(root, State.COMPLETED, "sent 8, failed 0, skipped 0, retried 0, pending 0")
    assert check_line(settings, at(12)) == (
        0,
        "OK: edition 2026-03-10 completed: sent 8, failed 0, skipped 0, retried 0, pending 0",
    )


def test_a_fresh_install_is_unknown_not_late(root: Path) -> None:
    code, line = check_line(load_settings(root, environ={}), at(9, 1))
    assert code == 3 and line.startswith("UNKNOWN: the scheduler has never run here (")
    result = CliRunner().invoke(cli, ["status", "--root", str(root), "--check"])
    assert result.exit_code == 3 and result.stdout.startswith("UNKNOWN: "), result.output


def test_late_morning(root: Path) -> None:
    scheduler_ran(root)
    ok, line = check_line(load_settings(root, environ={}), at(9, 1))
    assert (
        ok == 1 and line == "CRITICAL: edition 2026-03-10 is late (never started); it was due by 2026-03-10T09:00+01:00"
    )


def test_failed_morning(root: Path) -> None:
    record(root, State.FAILED, "cannot reach SMTP server smtp://127.0.0.1:2525: Connection refused")
    ok, line = check_line(load_settings(root, environ={}), at(7))
    assert ok == 1
    assert (
        line
        == "CRITICAL: edition 2026-03-10 failed: cannot reach SMTP server smtp://127.0.0.1:2525: Connection refused"
    )


def test_the_command_exits_by_the_check_and_lists_recent_runs(root: Path) -> None:
    record(root, State.FAILED, "every story file is invalid")
    result = CliRunner().invoke(cli, ["status", "--root", str(root), "--check"])
    assert result.exit_code == 1 and len(result.stdout.strip().splitlines()) == 1
    assert result.stdout.startswith("CRITICAL: edition ")  # today's or this morning's, by the real clock
    (root / "stories" / "s.md").write_text("---\ntitle: S\npublished: 2026-03-10T05:00:00+01:00\n---\nBody.\n")
    listed = CliRunner().invoke(cli, ["status", "--root", str(root)])
    assert listed.exit_code == 5, listed.output  # the newest edition: nobody enrolled yet
    assert listed.stdout.splitlines()[:2] == [
        "Scheduled mornings (last 1):",
        "  2026-03-10  failed       attempts 1  every story file is invalid",
    ]
