"""The subscriber store (SQLite file, WAL), its command-line face, and `send` reading it by default."""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import SECRET_ENV, SuppressionList, send_edition, subscriber_store, suppression_path
from newsletter.storage import Consent, SqliteSubscriberStore, SubscriberStore

SECRET = "store-test-secret"


@pytest.fixture
def store(tmp_path: Path) -> SqliteSubscriberStore:
    return SqliteSubscriberStore(tmp_path / "data" / "subscribers.sqlite")


def test_the_sqlite_store_implements_the_interface(store: SqliteSubscriberStore) -> None:
    assert isinstance(store, SubscriberStore)
    assert store.add("Ann@Example.org", name="Ann", locale="fr") is True
    assert store.add("ann@example.ORG", name="Ann B", status="bounced") is False  # same address, any case
    record = store.get("ANN@example.org")
    assert record is not None
    assert (record.email, record.name, record.locale, record.status) == ("Ann@Example.org", "Ann B", "", "bounced")
    assert store.set_status("ann@example.org", "confirmed") and not store.set_status("nobody@example.org", "bounced")
    with pytest.raises(ValueError, match="status must be one of"):
        store.add("x@example.org", status="deleted")
    assert sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_sign_up_is_pending_until_confirmed_and_keeps_its_consent(store: SqliteSubscriberStore) -> None:
    first = store.request("new@example.org", name="New")
    assert first.status == "pending" and first.confirmed_at is None
    store.add("old@example.org", status="confirmed", name="Old")
    again = store.request("old@example.org", name="Someone else")  # a confirmed row is left as it is
    assert again.status == "confirmed" and again.name == "Old"
    consent = Consent(at="2026-12-01T10:00:00+00:00", form="subscribe", ip_hash="ab" * 16)
    done = store.confirm("new@example.org", consent)
    assert done.status == "confirmed" and done.consent == consent and done.confirmed_at == consent.at
    assert store.counts() == {"pending": 0, "confirmed": 2, "unsubscribed": 0, "bounced": 0}
    assert [r.email for r in store.records("confirmed")] == ["new@example.org", "old@example.org"]
    assert store.remove("new@example.org") and store.get("new@example.org") is None


def test_records_stream_in_order_and_threads_share_the_store(store: SqliteSubscriberStore) -> None:
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


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["subscribers", *args[:1], "--root", str(root), *args[1:]])
    return result.exit_code, result.stdout, result.stderr


def test_cli_add_list_count_remove(tmp_path: Path) -> None:
    assert run(tmp_path, "add", "ann@example.org", "--name", "Ann\u202e") == (
        0,
        "added ann@example.org (confirmed)\n",
        "",
    )
    assert run(tmp_path, "add", "bob@example.org", "--status", "pending")[0] == 0
    code, out, _ = run(tmp_path, "list")
    assert code == 0 and out.splitlines()[0].startswith("ann@example.org\tconfirmed\tAnn\t")  # bidi override gone
    assert run(tmp_path, "count")[1] == "pending 1  confirmed 1  unsubscribed 0  bounced 0  total 2\n"
    code, _, err = run(tmp_path, "add", "not an address")
    assert code == 1 and err.startswith("Error: invalid email address 'not an address'")
    assert run(tmp_path, "remove", "bob@example.org")[1] == "removed bob@example.org\n"
    code, _, err = run(tmp_path, "remove", "bob@example.org")
    assert (code, err) == (1, "Error: bob@example.org: not in the subscriber store\n")


def test_cli_import_reports_bad_rows_by_line_and_export_leaves_consent_out(tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text("email,name,locale\nann@example.org,Ann,fr\nnot-an-address,X,\nbob@example.org,Bob,\n")
    code, out, err = run(tmp_path, "import", str(people))
    assert code == 1
    assert out == f"imported 2 address(es) from {people}: 2 new, 0 updated, 1 bad row(s) skipped\n"
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


def test_send_mails_the_confirmed_subscribers_of_the_store_by_default(
    demo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    settings = load_settings(demo_root)
    store = subscriber_store(settings)
    store.add("confirmed@example.org", name="Cleo")
    store.add("suppressed@example.org")
    store.request("pending@example.org")
    store.add("gone@example.org", status="unsubscribed")
    store.add("bounced@example.org", status="bounced")
    with SuppressionList(suppression_path(settings)) as s:
        s.add("suppressed@example.org", "unsubscribed", "test")
    report = send_edition(settings, date(2016, 12, 30), progress=False)
    assert (report.sent, report.skipped) == (1, 1)
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
