"""One scheduler, several newsletters: each runs on its own rhythm and worker, so one newsletter's long or
failing morning never delays another's."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import Settings, load_settings
from newsletter.errors import DeliveryError
from newsletter.schedule import Daemon, Outcome, RunStore, State, store_path
from tests.helpers import write_story

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Sent:
    sent, failed, skipped, retried, pending, complete = 2, 0, 0, 0, 0, True


def _paper(tmp_path: Path, fired: datetime) -> Settings:
    root = tmp_path / "paper"
    at = f"{fired:%H:%M}"
    (root / "newsletter.toml").parent.mkdir(parents=True)
    (root / "newsletter.toml").write_text(
        '[schedule]\ngrace = "3h"\nretry_delay = "10m"\nretries = 0\n'
        f'[newsletters.daily]\nname = "Daily"\nat = "{at}"\n'
        f'[newsletters.weekly]\nname = "Weekly"\nrhythm = "weekly"\nday = "{WEEKDAYS[fired.weekday()]}"\nat = "{at}"\n'
        '[newsletters.breaking]\nname = "Breaking"\nrhythm = "on-demand"\n',
        encoding="utf-8",
    )
    published = (fired - timedelta(hours=2)).isoformat(timespec="seconds")
    write_story(root, "a.md", f'title: "A"\npublished: {published}')
    return load_settings(root, environ={})


def test_a_stuck_newsletter_does_not_delay_another(tmp_path: Path) -> None:
    fired = (datetime.now(PARIS) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    settings = _paper(tmp_path, fired)
    release, weekly_sent, daily_started = threading.Event(), threading.Event(), threading.Event()
    calls: list[tuple[str, date]] = []

    def send(one: Settings, day: date, *, stop: threading.Event | None = None) -> Sent:
        calls.append((one.newsletter, day))
        if one.newsletter == "daily":  # a morning that hangs on its relay, then fails
            daily_started.set()
            release.wait(20)
            raise DeliveryError("cannot connect to smtp://127.0.0.1:9: Connection refused")
        weekly_sent.set()
        return Sent()

    daemon = Daemon(settings, send=send, install_signals=False)  # type: ignore[arg-type]
    assert set(daemon.letters) == {"morning:weekly"} and daemon.default_scheduled  # on demand: no job
    exit_code: list[int] = []
    thread = threading.Thread(target=lambda: exit_code.append(daemon.run()), daemon=True)
    thread.start()
    try:
        assert weekly_sent.wait(20), f"the weekly waited for the daily: {calls}"
        # The daily runs (stuck until released) meanwhile; the two mornings may start in either order.
        assert daily_started.wait(20) and ("daily", fired.date()) in calls
    finally:
        release.set()
        daemon.request_stop("test")
        thread.join(20)
    assert exit_code == [0]
    assert sorted(r.outcome for r in daemon.results) == [Outcome.COMPLETED, Outcome.FAILED]
    weekly = next(iter(daemon.letters.values())).settings
    assert store_path(weekly).name == "weekly.sqlite" and store_path(settings).name == "schedule.sqlite"
    row = RunStore(store_path(weekly)).get(fired.date())
    assert row is not None and row.state == State.COMPLETED
    daily = RunStore(store_path(settings)).get(fired.date())
    assert daily is not None and daily.state == State.FAILED


def test_next_runs_of_every_newsletter_or_one(tmp_path: Path) -> None:
    settings = _paper(tmp_path, datetime(2027, 3, 26, 7, 0, tzinfo=PARIS))  # a Friday
    args = ["schedule", "--root", str(settings.root), "--from", "2027-03-24T12:00+01:00"]
    every = CliRunner().invoke(cli, [*args, "--next", "4"])
    assert every.exit_code == 0, every.output
    assert every.output.splitlines() == [
        "2027-03-25T07:00:00+01:00  daily",
        "2027-03-26T07:00:00+01:00  daily",
        "2027-03-26T07:00:00+01:00  weekly",
        "2027-03-27T07:00:00+01:00  daily",
    ]
    weekly = CliRunner().invoke(cli, [*args, "--next", "2", "--newsletter", "weekly"])
    assert weekly.output.splitlines() == ["2027-03-26T07:00:00+01:00", "2027-04-02T07:00:00+02:00"]
    daemon_of_one = CliRunner().invoke(cli, ["schedule", "--root", str(settings.root), "--newsletter", "weekly"])
    assert daemon_of_one.exit_code == 2 and "--newsletter goes with --next N or --run-now" in daemon_of_one.output
