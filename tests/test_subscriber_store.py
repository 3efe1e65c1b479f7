"""The subscriber store, its command-line face, and `send` reading it by default.

Every store test runs on both backends: the SQLite file (WAL) and a fresh database of a throw-away
PostgreSQL cluster (`database_url`, conftest), opened through the factory the product uses.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import SECRET_ENV, open_suppression, send_edition, subscriber_store
from newsletter.schedule.zones import subscriber_zones, zone_sender
from newsletter.storage import Consent, SqlSubscriberStore, SubscriberStore

SECRET = "store-test-secret"


@pytest.fixture
def root(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`tmp_path`, whose settings name PostgreSQL (through the environment, as in production) or not."""
    if database_url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)
    return tmp_path


@pytest.fixture
def store(root: Path, database_url: str) -> Iterator[SubscriberStore]:
    opened = subscriber_store(load_settings(root))
    assert isinstance(opened, SqlSubscriberStore) and opened.db.postgres == bool(database_url)
    yield opened
    opened.close()


def test_the_store_implements_the_interface(store: SubscriberStore) -> None:
    assert isinstance(store, SubscriberStore)
    assert store.add("Ann@Example.org", name="Ann", locale="fr") is True
    assert store.add("ann@example.ORG", name="Ann B", status="bounced") is False  # same address, any case
    record = store.get("ANN@example.org")
    assert record is not None
    # The locale was not given: it stays. A bounced reader is not made confirmed again by a status change.
    assert (record.email, record.name, record.locale, record.status) == ("Ann@Example.org", "Ann B", "fr", "bounced")
    assert store.set_status("ann@example.org", "confirmed") and not store.set_status("nobody@example.org", "bounced")
    assert store.get("ann@example.org").status == "bounced"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="status must be one of"):
        store.add("x@example.org", status="deleted")
    assert store.get("x@example.org") is None
    if isinstance(store, SqlSubscriberStore) and not store.db.postgres:
        assert sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_sign_up_is_pending_until_confirmed_and_keeps_its_consent(store: SubscriberStore) -> None:
    first = store.request("new@example.org", name="New")
    assert first.status == "pending" and first.confirmed_at is None
    store.add("old@example.org", status="confirmed", name="Old")
    again = store.request("old@example.org", name="Someone else")  # a confirmed row is left as it is
    assert again.status == "confirmed" and again.name == "Old"
    consent = Consent(at="2026-12-01T10:00:00+00:00", form="subscribe", ip_hash="ab" * 16)
    done = store.confirm("new@example.org", consent)
    assert done.status == "confirmed" and done.consent == consent and done.confirmed_at == consent.at
    assert store.counts() == {"pending": 0, "confirmed": 2, "unsubscribed": 0, "bounced": 0, "complained": 0}
    assert [r.email for r in store.records("confirmed")] == ["new@example.org", "old@example.org"]
    assert store.remove("new@example.org") and store.get("new@example.org") is None
    assert not store.remove("new@example.org")
    pending = store.request("late@example.org", name="Late")
    assert store.request("LATE@example.org", name="Later").name == "Later"  # still pending: updated
    assert store.get("late@example.org").created_at == pending.created_at  # type: ignore[union-attr]


def test_adding_again_keeps_the_first_confirmation_time(store: SubscriberStore) -> None:
    store.add("ann@example.org", status="pending")
    assert store.get("ann@example.org").confirmed_at is None  # type: ignore[union-attr]
    store.add("ann@example.org", status="confirmed")
    first = store.get("ann@example.org").confirmed_at  # type: ignore[union-attr]
    assert first is not None
    store.add("ann@example.org", status="unsubscribed")
    store.add("ann@example.org", status="confirmed")
    assert store.get("ann@example.org").confirmed_at == first  # type: ignore[union-attr]


def test_a_reader_may_have_a_time_zone_and_a_wrong_one_is_none(store: SubscriberStore) -> None:
    assert store.add("ny@example.org", timezone=" America/New_York ")
    store.add("bad@example.org", timezone="Not/A_Zone")
    store.add("path@example.org", timezone="../../etc/passwd")
    store.add("plain@example.org")
    zones = {r.email: r.timezone for r in store.records()}
    assert zones == {
        "ny@example.org": "America/New_York",
        "bad@example.org": "",
        "path@example.org": "",
        "plain@example.org": "",
    }
    store.add("ny@example.org", timezone="Asia/Tokyo")  # an update replaces it, like the name and locale
    assert store.get("NY@example.org").timezone == "Asia/Tokyo"  # type: ignore[union-attr]


def test_records_stream_in_order_and_threads_share_the_store(store: SubscriberStore) -> None:
    def add(start: int) -> None:
        for n in range(start, start + 600):
            store.add(f"r{n}@example.org")

    threads = [threading.Thread(target=add, args=(k * 600,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r.id for r in store.records()]
    assert len(ids) == 2400 and ids == sorted(ids)  # more than one page of 1000


def test_an_older_sqlite_store_gains_the_time_zone_column(tmp_path: Path) -> None:
    path = tmp_path / "subscribers.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE subscribers (key TEXT NOT NULL UNIQUE, email TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', "
        "locale TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, created_at TEXT NOT NULL, confirmed_at TEXT, "
        "updated_at TEXT NOT NULL, consent TEXT)"
    )
    old.execute(
        "INSERT INTO subscribers VALUES ('a@example.org', 'a@example.org', 'A', '', 'confirmed', 't', 't', 't', NULL)"
    )
    old.commit()
    old.close()
    with SqlSubscriberStore(path) as store:
        assert store.get("a@example.org").timezone == ""  # type: ignore[union-attr]
        store.add("a@example.org", name="A", timezone="Europe/Paris")
        assert [(r.email, r.timezone) for r in store.records()] == [("a@example.org", "Europe/Paris")]


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["subscribers", *args[:1], "--root", str(root), *args[1:]])
    return result.exit_code, result.stdout, result.stderr


def test_cli_add_list_count_remove(root: Path) -> None:
    tmp_path = root
    assert run(tmp_path, "add", "ann@example.org", "--name", "Ann\u202e") == (
        0,
        "added ann@example.org (confirmed)\n",
        "",
    )
    assert run(tmp_path, "add", "bob@example.org", "--status", "pending")[0] == 0
    code, out, _ = run(tmp_path, "list")
    assert code == 0 and out.splitlines()[0].startswith("ann@example.org\tconfirmed\tAnn\t")  # bidi override gone
    assert run(tmp_path, "count")[1] == "pending 1  confirmed 1  unsubscribed 0  bounced 0  complained 0  total 2\n"
    code, _, err = run(tmp_path, "add", "not an address")
    assert code == 1 and err.startswith("Error: invalid email address 'not an address'")
    assert run(tmp_path, "remove", "bob@example.org")[1] == "removed bob@example.org\n"
    code, _, err = run(tmp_path, "remove", "bob@example.org")
    assert (code, err) == (1, "Error: bob@example.org: not in the subscriber store\n")


def test_cli_import_reports_bad_rows_by_line_and_export_leaves_consent_out(root: Path) -> None:
    tmp_path = root
    people = tmp_path / "people.csv"
    people.write_text("email,name,locale\nann@example.org,Ann,fr\nnot-an-address,X,\nbob@example.org,Bob,\n")
    code, out, err = run(tmp_path, "import", str(people))
    assert code == 1
    assert out == (
        f"imported 2 address(es) from {people}: 2 new, 0 updated, 0 unchanged, 0 kept unsubscribed, "
        "0 refused (forgotten), 1 bad row(s) skipped\n"
    )
    assert err.startswith(f"{people}:3: invalid email address 'not-an-address'")
    settings = load_settings(tmp_path)
    subscriber_store(settings).confirm("bob@example.org", Consent("2026-12-01T10:00:00+00:00", "subscribe", "ff" * 16))
    code, out, _ = run(tmp_path, "export")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["email"] for r in rows] == ["ann@example.org", "bob@example.org"]
    assert "consent_ip_hash" not in rows[0] and "ff" * 16 not in out
    code, out, _ = run(tmp_path, "export", "--with-consent", "--status", "confirmed")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[1]["consent_ip_hash"] == "ff" * 16 and rows[1]["consent_form"] == "subscribe"


def test_cli_add_and_import_take_a_time_zone(root: Path) -> None:
    code, out, err = run(root, "add", "ann@example.org", "--timezone", "Asia/Kathmandu")
    assert (code, out, err) == (0, "added ann@example.org (confirmed)\n", "")
    code, out, err = run(root, "add", "bob@example.org", "--timezone", "Mars/Olympus")
    assert code == 0 and "unknown time zone 'Mars/Olympus'" in err
    people = root / "people.csv"
    people.write_text("email,timezone,name\ncy@example.org,America/New_York,Cy\ndi@example.org,Nope,Di\n")
    assert run(root, "import", str(people))[0] == 0
    code, out, _ = run(root, "export")
    zones = {r["email"]: r["timezone"] for r in csv.DictReader(io.StringIO(out))}
    assert zones == {
        "ann@example.org": "Asia/Kathmandu",
        "bob@example.org": "",
        "cy@example.org": "America/New_York",
        "di@example.org": "",
    }


def test_send_mails_the_confirmed_subscribers_of_the_store_by_default(
    demo_root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    if database_url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    settings = load_settings(demo_root)
    store = subscriber_store(settings)
    store.add("confirmed@example.org", name="Cleo")
    store.add("suppressed@example.org")
    store.request("pending@example.org")
    store.add("gone@example.org", status="unsubscribed")
    store.add("bounced@example.org", status="bounced")
    with open_suppression(settings) as s:
        s.add("suppressed@example.org", "unsubscribed", "test")
    report = send_edition(settings, date(2016, 12, 30), progress=False)
    # The suppressed reader is unsubscribed in the store too (one reader base): not enrolled at all.
    assert (report.sent, report.skipped) == (1, 0)
    assert store.get("suppressed@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    mail = sorted(p.name for p in (demo_root / "outbox/2016-12-30/mail").glob("*.eml"))
    assert mail == ["confirmed@example.org.eml"]


def test_without_a_list_or_a_store_send_says_how_to_get_one(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    result = CliRunner().invoke(cli, ["send", "--root", str(demo_root), "--date", "2016-12-30"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no subscriber list: pass --subscribers FILE, set [mailing] subscribers, or add subscribers to the "
        "store (newsletter subscribers add|import)\n"
    )
    assert not (demo_root / "data" / "subscribers.sqlite").exists()  # nothing created by asking


def test_per_timezone_reads_the_readers_zones_from_the_store(
    languages_root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    if database_url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    toml = languages_root / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + '\n[schedule]\nat = "06:00"\nper_timezone = true\n')
    people = languages_root / "people.csv"
    people.write_text(
        "email,locale,timezone\nny@example.org,en,America/New_York\nny2@example.org,fr,America/New_York\n"
        "paris@example.org,fr,Europe/Paris\nnowhere@example.org,en,Not/A_Zone\n"
    )
    assert run(languages_root, "import", str(people))[0] == 0
    run(languages_root, "add", "tokyo@example.org", "--timezone", "Asia/Tokyo", "--status", "pending")
    settings = load_settings(languages_root)
    paris = ZoneInfo("Europe/Paris")
    # confirmed readers only, as send reads them; a zone that is not one counts as the schedule's
    assert subscriber_zones(settings, paris) == {"America/New_York": 2, "Europe/Paris": 2}
    report = zone_sender("America/New_York", paris)(settings, date(2016, 12, 30))
    assert report.sent == 2
    mail = {p.stem for p in (languages_root / "outbox").rglob("mail/*.eml")}
    assert mail == {"ny@example.org", "ny2@example.org"}
