"""Each reader's morning (`[schedule] per_timezone`): batches per zone, across DST changes, sent once.

The zone batches run against an injected clock (as tests/test_schedule.py does for the list's morning),
through the real mailing pipeline into the outbox, so whole mornings in four zones pass without waiting.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import SECRET_ENV
from newsletter.schedule import (
    Daemon,
    Outcome,
    ZoneMorning,
    batch_time,
    next_batches,
    read_config,
    reader_zone,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK, TOKYO, KATHMANDU = ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo"), ZoneInfo("Asia/Kathmandu")
READERS = {
    "ny@example.org": ("en-US", "America/New_York"),
    "paris@example.org": ("fr-FR", "Europe/Paris"),
    "tokyo@example.org": ("en", "Asia/Tokyo"),
    "kathmandu@example.org": ("en", "Asia/Kathmandu"),
    "nowhere@example.org": ("ar", "Not/A_Zone"),  # invalid: the list's zone
    "blank@example.org": ("ar", ""),
}


@pytest.fixture
def paper(languages_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(SECRET_ENV, "zones-test-secret-0123456789abcdef")
    rows = ["email,name,locale,timezone"] + [f"{a},,{loc},{tz}" for a, (loc, tz) in READERS.items()]
    (languages_root / "subscribers.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    toml = languages_root / "newsletter.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8")
        + '\n[schedule]\nat = "06:00"\nper_timezone = true\n\n[mailing]\nsubscribers = "subscribers.csv"\n',
        encoding="utf-8",
    )
    return languages_root


def test_a_reader_without_a_valid_zone_gets_the_lists():
    assert reader_zone("Asia/Kathmandu", PARIS).key == "Asia/Kathmandu"
    assert reader_zone("", PARIS) is PARIS and reader_zone("Not/A_Zone", PARIS) is PARIS
    assert reader_zone("../../etc/passwd", PARIS) is PARIS


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # US clocks go forward on 14 March 2027, European ones on 28 March: 06:00 stays 06:00 everywhere.
        (
            "2027-03-13T12:00+01:00",
            [
                ("2027-03-13T06:00:00-05:00", "America/New_York", "2027-03-13"),
                ("2027-03-14T06:00:00+09:00", "Asia/Tokyo", "2027-03-13"),
                ("2027-03-14T06:00:00+05:45", "Asia/Kathmandu", "2027-03-13"),
                ("2027-03-14T06:00:00+01:00", "Europe/Paris", "2027-03-14"),
                ("2027-03-14T06:00:00-04:00", "America/New_York", "2027-03-14"),
            ],
        ),
        (
            "2027-03-27T11:00+01:00",
            [
                ("2027-03-27T06:00:00-04:00", "America/New_York", "2027-03-27"),
                ("2027-03-28T06:00:00+09:00", "Asia/Tokyo", "2027-03-27"),
                ("2027-03-28T06:00:00+05:45", "Asia/Kathmandu", "2027-03-27"),
                ("2027-03-28T06:00:00+02:00", "Europe/Paris", "2027-03-28"),
                ("2027-03-28T06:00:00-04:00", "America/New_York", "2027-03-28"),
            ],
        ),
        # Europe goes back on 31 October 2027, the US on 7 November.
        (
            "2027-10-30T12:00+02:00",
            [
                ("2027-10-30T06:00:00-04:00", "America/New_York", "2027-10-30"),
                ("2027-10-31T06:00:00+09:00", "Asia/Tokyo", "2027-10-30"),
                ("2027-10-31T06:00:00+05:45", "Asia/Kathmandu", "2027-10-30"),
                ("2027-10-31T06:00:00+01:00", "Europe/Paris", "2027-10-31"),
                ("2027-10-31T06:00:00-04:00", "America/New_York", "2027-10-31"),
            ],
        ),
        (
            "2027-11-06T11:00+01:00",
            [
                ("2027-11-06T06:00:00-04:00", "America/New_York", "2027-11-06"),
                ("2027-11-07T06:00:00+09:00", "Asia/Tokyo", "2027-11-06"),
                ("2027-11-07T06:00:00+05:45", "Asia/Kathmandu", "2027-11-06"),
                ("2027-11-07T06:00:00+01:00", "Europe/Paris", "2027-11-07"),
                ("2027-11-07T06:00:00-05:00", "America/New_York", "2027-11-07"),
            ],
        ),
    ],
)
def test_batches_across_dst_changes(paper, start, expected):
    result = CliRunner().invoke(cli, ["schedule", "--root", str(paper), "--next", "5", "--from", start])
    assert result.exit_code == 0, result.output
    shown = [(*line.split()[:2], line.split()[3]) for line in result.output.splitlines()]
    assert shown == expected
    assert "(3 readers)" in result.output  # Paris, plus the two without a valid zone


def test_batch_times_honour_each_zones_gaps_and_repeats():
    list_fire = datetime(2027, 3, 14, 2, 30, tzinfo=PARIS)  # a list morning at 02:30 Paris
    # 02:30 does not exist in New York that night: sent an hour later on the new offset
    ny = batch_time(list_fire, NEW_YORK, time(2, 30)).astimezone(NEW_YORK)
    assert ny.isoformat() == "2027-03-14T03:30:00-04:00"
    # 01:30 happens twice in New York on 7 November: the batch is the first one, and only one
    fall = batch_time(datetime(2027, 11, 7, 1, 0, tzinfo=PARIS), NEW_YORK, time(1, 30))
    assert fall.astimezone(NEW_YORK).isoformat() == "2027-11-07T01:30:00-04:00"
    # Kathmandu's quarter-hour offset is kept to the minute
    ktm = batch_time(datetime(2027, 1, 4, 6, 0, tzinfo=PARIS), KATHMANDU, time(6, 0))
    assert ktm == datetime(2027, 1, 5, 0, 15, tzinfo=UTC)


def _outbox_mail(root: Path) -> set[str]:
    return {p.stem for p in (root / "outbox").rglob("mail/*.eml")}


@pytest.mark.slow
def test_each_zone_gets_the_edition_at_its_own_morning_once(paper):
    settings = load_settings(paper, environ={})
    config = read_config(settings)
    batches = [b for b in next_batches(settings, config, datetime(2016, 12, 30, 0, 30, tzinfo=PARIS), 8)]
    due = [b for b in batches if b.edition == date(2016, 12, 30)]
    assert [(b.zone, b.at.isoformat()) for b in due] == [
        ("Europe/Paris", "2016-12-30T06:00:00+01:00"),
        ("America/New_York", "2016-12-30T06:00:00-05:00"),
        ("Asia/Tokyo", "2016-12-31T06:00:00+09:00"),
        ("Asia/Kathmandu", "2016-12-31T06:00:00+05:45"),
    ]
    by_zone = {
        "Europe/Paris": {"paris@example.org", "nowhere@example.org", "blank@example.org"},
        "America/New_York": {"ny@example.org"},
        "Asia/Tokyo": {"tokyo@example.org"},
        "Asia/Kathmandu": {"kathmandu@example.org"},
    }
    sent: set[str] = set()
    for batch in due:
        zone = ZoneInfo(batch.zone)
        now = batch.at + timedelta(minutes=1)
        morning = ZoneMorning(settings, config, zone, clock=lambda now=now: now.astimezone(UTC))
        assert morning.edition_for(batch.at.astimezone(UTC)) == date(2016, 12, 30)
        result = morning.fire()
        assert result.outcome == Outcome.COMPLETED, result.detail
        assert result.edition == date(2016, 12, 30)
        new = _outbox_mail(paper) - sent
        assert new == by_zone[batch.zone], batch.zone  # that zone's readers, at that zone's morning
        sent |= new
        # a second fire (a restart, a double fire) sends nothing again
        assert morning.fire().outcome == Outcome.ALREADY_DONE
        assert _outbox_mail(paper) == sent
    assert sent == set(READERS)
    # every reader got their language
    assert (paper / "outbox/2016-12-30/fr/mail/paris@example.org.eml").is_file()
    assert (paper / "outbox/2016-12-30/ar/mail/nowhere@example.org.eml").is_file()
    assert (paper / "outbox/2016-12-30/en/mail/tokyo@example.org.eml").is_file()


def test_a_zone_batch_is_caught_up_within_grace_and_skipped_after(paper, caplog):
    settings = load_settings(paper, environ={})
    config = read_config(settings)
    tokyo_batch = datetime(2016, 12, 31, 6, 0, tzinfo=TOKYO).astimezone(UTC)
    late = ZoneMorning(settings, config, TOKYO, clock=lambda: tokyo_batch + timedelta(hours=1))
    assert late.due_at_start() == tokyo_batch  # down for an hour: caught up once
    kathmandu_batch = datetime(2016, 12, 31, 6, 0, tzinfo=KATHMANDU).astimezone(UTC)
    stale = ZoneMorning(settings, config, KATHMANDU, clock=lambda: kathmandu_batch + timedelta(hours=5))
    assert stale.due_at_start() is None  # past the 3 h grace: never sent
    result = stale.run(kathmandu_batch)
    assert result.outcome == Outcome.SKIPPED and "grace" in result.detail
    assert not _outbox_mail(paper)


def test_the_daemon_makes_one_job_per_zone(paper):
    daemon = Daemon(load_settings(paper, environ={}), install_signals=False)
    mornings = daemon._zone_mornings()
    assert sorted(mornings) == [
        "morning",
        "morning@America/New_York",
        "morning@Asia/Kathmandu",
        "morning@Asia/Tokyo",
    ]
    assert isinstance(mornings["morning"], ZoneMorning) and mornings["morning"].zone.key == "Europe/Paris"
    fire = mornings["morning@Asia/Tokyo"].trigger.get_next_fire_time(None, datetime(2016, 12, 30, 12, tzinfo=UTC))
    assert fire.isoformat() == "2016-12-31T06:00:00+09:00"


def test_per_timezone_must_be_a_boolean(paper):
    toml = paper / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("per_timezone = true", 'per_timezone = "often"'))
    result = CliRunner().invoke(cli, ["schedule", "--root", str(paper), "--next", "1"])
    assert result.exit_code == 1 and "'per_timezone' must be true or false" in result.output


def test_the_zones_runs_follow_database_url(paper, database_url):
    """Each zone's runs live where the other stores do: a file per zone with SQLite, that zone's rows of
    the zones' tables with PostgreSQL. Zones sharing a database never take each other's morning."""
    settings = load_settings(paper, environ={"NEWSLETTER_DATABASE_URL": database_url} if database_url else {})
    config = read_config(settings)
    fired = []
    for zone, at in (
        (PARIS, datetime(2016, 12, 30, 6, 1, tzinfo=PARIS)),
        (TOKYO, datetime(2016, 12, 31, 6, 1, tzinfo=TOKYO)),
    ):
        morning = ZoneMorning(settings, config, zone, clock=lambda at=at: at.astimezone(UTC))
        assert morning.fire().outcome == Outcome.COMPLETED
        assert morning.fire().outcome == Outcome.ALREADY_DONE  # a double fire or a restart: never twice
        fired.append((zone.key, [(r.edition, r.state.value) for r in morning.store.rows()]))
        morning.store.close()
    assert fired == [
        ("Europe/Paris", [(date(2016, 12, 30), "completed")]),
        ("Asia/Tokyo", [(date(2016, 12, 30), "completed")]),
    ]
    assert _outbox_mail(paper) == {"paris@example.org", "nowhere@example.org", "blank@example.org", "tokyo@example.org"}
    zone_files = sorted(p.name for p in (paper / "data" / "schedule-zones").glob("*.sqlite"))
    if not database_url:
        assert zone_files == ["Asia_Tokyo.sqlite", "Europe_Paris.sqlite"]
        return
    assert zone_files == []  # nothing of the scheduler's left in SQLite
    import psycopg

    with psycopg.connect(database_url) as db:
        rows = db.execute("SELECT zone, edition, state FROM schedule_zone_runs ORDER BY zone").fetchall()
        meta = db.execute("SELECT zone, key FROM schedule_zone_meta ORDER BY zone").fetchall()
        own = db.execute("SELECT count(*) FROM schedule_runs").fetchone()
    assert rows == [("Asia/Tokyo", "2016-12-30", "completed"), ("Europe/Paris", "2016-12-30", "completed")]
    assert {zone for zone, _key in meta} <= {"Asia/Tokyo", "Europe/Paris"} and own == (0,)
