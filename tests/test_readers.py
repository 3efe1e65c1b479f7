"""The reader base: one record per reader, its subscriptions, history and the suppression list in one
database, every state change in one transaction. Both backends (the SQLite file and PostgreSQL).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.storage import Consent, Fields, ReaderBase, hashed_key, now_iso, open_readers


@pytest.fixture
def root(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if database_url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)
    return tmp_path


@pytest.fixture
def base(root: Path) -> Iterator[ReaderBase]:
    opened = open_readers(load_settings(root))
    yield opened
    opened.close()


def agree(base: ReaderBase) -> None:
    """The store and the suppression list say the same thing about every reader."""
    for record in base.subscribers.records():
        listed = record.email in base
        assert listed == (record.status in ("unsubscribed", "bounced", "complained")), record


def consent() -> Consent:
    return Consent(at=now_iso(), form="subscribe")


def test_every_way_of_leaving_writes_the_record_the_list_and_the_history(base: ReaderBase) -> None:
    for who in ("one", "bounce", "complaint", "operator", "page"):
        base.put(f"{who}@example.org", Fields(name=who.title()))
    assert base.add_many(["one@example.org"]) == 1
    assert base.suppress("bounce@example.org", "bounced", "bounce run", diagnostic="550 5.1.1 no such user")
    assert base.suppress("complaint@example.org", "complained", "ARF", message_id="<arf@isp>")
    assert base.suppress("operator@example.org", "manual", "command line")
    base.unsubscribe(["page@example.org"], via="page")
    agree(base)
    assert base.get("bounce@example.org").status == "bounced"  # type: ignore[union-attr]
    assert base.get("complaint@example.org").status == "complained"  # type: ignore[union-attr]
    assert base.get("operator@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    shown = base.show("bounce@example.org")
    assert shown["history"][-1]["kind"] == "bounced" and "550 5.1.1" in shown["history"][-1]["detail"]
    assert shown["suppression"]["diagnostic"] == "550 5.1.1 no such user"
    assert [s["status"] for s in shown["subscriptions"]] == ["unsubscribed"]
    assert base.show("page@example.org")["history"][-1]["via"] == "page"
    assert list(base.enrolled()) == []


def test_a_failed_change_leaves_nothing_half_written(base: ReaderBase) -> None:
    base.put("ann@example.org", Fields())
    with pytest.raises(ValueError):
        base.add_many(["ann@example.org", "   "])  # the second address fails after the first was written
    assert "ann@example.org" not in base
    assert base.get("ann@example.org").status == "confirmed"  # type: ignore[union-attr]
    assert [e["kind"] for e in base.show("ann@example.org")["history"]] == ["confirmed"]


def test_nothing_resurrects_a_reader_but_a_new_consent(base: ReaderBase) -> None:
    base.put("zoe@example.org", Fields(name="Zoé", locale="fr", timezone="Asia/Tokyo"))
    base.add_many(["zoe@example.org"])
    assert base.put("zoe@example.org", Fields(status="confirmed")) == "kept"
    assert base.put("zoe@example.org", Fields(status="pending", name="Zoe")) == "kept"
    record = base.get("zoe@example.org")
    assert record is not None and record.status == "unsubscribed" and record.name == "Zoe"
    assert (record.locale, record.timezone) == ("fr", "Asia/Tokyo")  # not given: unchanged
    agree(base)
    with pytest.raises(ValueError, match="consent note"):
        base.resubscribe("zoe@example.org", "  ")
    back = base.resubscribe("zoe@example.org", "asked again by letter of 2026-12-01")
    assert back.status == "confirmed" and "zoe@example.org" not in base
    assert base.show("zoe@example.org")["history"][-1]["kind"] == "resubscribed"
    assert [r.email for r in base.enrolled()] == ["zoe@example.org"]
    agree(base)


def test_add_changes_only_what_it_is_given_and_replace_replaces(base: ReaderBase) -> None:
    assert base.put("zoe@example.org", Fields(name="Zoé", locale="fr", timezone="Asia/Tokyo")) == "added"
    assert base.put("zoe@example.org", Fields(status="confirmed")) == "unchanged"
    assert base.put("zoe@example.org", Fields(name="", locale="", timezone="")) == "unchanged"  # empty cells
    record = base.get("zoe@example.org")
    assert record is not None and (record.name, record.locale, record.timezone) == ("Zoé", "fr", "Asia/Tokyo")
    assert base.put("zoe@example.org", Fields(name="Zoe"), replace=True) == "updated"
    record = base.get("zoe@example.org")
    assert record is not None and (record.name, record.locale, record.timezone) == ("Zoe", "", "")


def test_a_confirmation_link_is_void_once_the_address_left_after_it_was_issued(base: ReaderBase) -> None:
    issued = time.time()
    base.sign_up("fred@example.org", name="Fred", locale="fr")
    base.add_many(["fred@example.org"])  # one-click, after the link was sent
    assert base.confirm("fred@example.org", consent(), issued=issued) is None
    assert base.get("fred@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    time.sleep(0.01)
    later = base.confirm("fred@example.org", consent(), issued=time.time())  # a new sign-up's link
    assert later is not None and later.status == "confirmed" and later.locale == "fr"
    assert base.show("fred@example.org")["history"][-1]["kind"] == "resubscribed"
    agree(base)


def test_forget_erases_the_reader_and_keeps_a_hashed_entry(base: ReaderBase) -> None:
    base.put("Eve@Example.org", Fields(name="Eve", locale="fr"))
    base.suppress("eve@example.org", "bounced", "bounce run", diagnostic="550 gone")
    assert base.forget("eve@example.org") is True
    shown = base.show("eve@example.org")
    assert shown["record"] is None and shown["forgotten"] and shown["history"] == []
    assert shown["suppression"]["address"] == "" and shown["suppression"]["reason"] == "bounced"
    rows = base.db.query("SELECT key, address FROM suppression")
    assert rows == [(hashed_key("eve@example.org"), "")]
    assert not base.db.query("SELECT 1 FROM subscribers") and not base.db.query("SELECT 1 FROM subscriptions")
    assert "EVE@example.org" in base and base.which(["x@example.org", "eve@EXAMPLE.org"]) == {"eve@EXAMPLE.org"}
    assert base.put("eve@example.org", Fields(status="confirmed")) == "refused"
    assert base.get("eve@example.org") is None


def test_the_send_enrols_confirmed_subscribed_unpaused_readers_only(base: ReaderBase) -> None:
    for name in ("a", "b", "c", "d"):
        base.put(f"{name}@example.org", Fields())
    base.put("p@example.org", Fields(status="pending"))
    base.pause("b@example.org", 3, today=date(2026, 1, 1))
    base.unsubscribe(["c@example.org"], via="page")
    base.db.execute("UPDATE subscriptions SET status = 'pending' WHERE reader_key = 'd@example.org'")
    assert [r.email for r in base.enrolled(today="2026-01-02")] == ["a@example.org"]
    assert [r.email for r in base.enrolled(today="2026-01-04")] == ["a@example.org", "b@example.org"]
    assert list(base.enrolled(newsletter="other", today="2026-01-04")) == []


def test_an_older_store_and_suppression_file_become_one_reader_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "subscribers.sqlite") as old:
        old.executescript(
            "CREATE TABLE subscribers (key TEXT NOT NULL UNIQUE, email TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',"
            " locale TEXT NOT NULL DEFAULT '', status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed',"
            " 'unsubscribed', 'bounced')), created_at TEXT NOT NULL, confirmed_at TEXT, updated_at TEXT NOT NULL,"
            " consent TEXT);"
            "INSERT INTO subscribers VALUES ('ann@example.org', 'Ann@example.org', 'Ann', 'fr', 'confirmed', 't',"
            " 't', 't', NULL);"
            "INSERT INTO subscribers VALUES ('zoe@example.org', 'zoe@example.org', '', '', 'confirmed', 't', 't',"
            " 't', NULL);"
        )
    with sqlite3.connect(data / "suppression.sqlite") as old:
        old.executescript(
            "CREATE TABLE suppression (key TEXT PRIMARY KEY, address TEXT NOT NULL, reason TEXT NOT NULL,"
            " source TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID;"
            "INSERT INTO suppression VALUES ('zoe@example.org', 'zoe@example.org', 'complained', 'cli', 't');"
        )
    before = (data / "suppression.sqlite").read_bytes()
    with caplog.at_level(logging.WARNING), open_readers(load_settings(tmp_path)) as base:
        assert [(r.email, r.status, r.id) for r in base.subscribers.records()] == [
            ("Ann@example.org", "confirmed", 1),
            ("zoe@example.org", "complained", 2),
        ]
        assert [r.email for r in base.enrolled()] == ["Ann@example.org"]
        agree(base)
    assert "merged 1 suppressed address" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING), open_readers(load_settings(tmp_path)) as base:
        base.suppression.db.execute("DELETE FROM suppression")  # merged once: not brought back on the next open
    with open_readers(load_settings(tmp_path)) as base:
        assert base.count() == 0
    assert "merged" not in caplog.text
    assert (data / "suppression.sqlite").read_bytes() == before
