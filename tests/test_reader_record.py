"""One record per reader, as an operator meets it: the reproductions of the reader's life across the
store, the suppression list and the CLI, and a property test over random sequences of reader changes.

Both backends: the SQLite reader base and a fresh PostgreSQL database (`database_url`, conftest).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.storage import Consent, Fields, ReaderBase, now_iso, open_readers

LEFT = ("unsubscribed", "bounced", "complained")


@pytest.fixture
def root(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if database_url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)
    return tmp_path


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--root", str(root)])
    return result.exit_code, result.stdout, result.stderr


def exported(root: Path) -> dict[str, dict[str, str]]:
    code, out, _ = run(root, "subscribers", "export")
    assert code == 0
    return {r["email"]: r for r in csv.DictReader(io.StringIO(out))}


def test_an_operator_unsubscribe_shows_in_the_store_and_survives_a_re_import(root: Path) -> None:
    people = root / "people.csv"
    people.write_text("email,name,locale\nzoe@example.org,Zoé,fr\nann@example.org,Ann,en\n", encoding="utf-8")
    assert run(root, "subscribers", "import", str(people))[0] == 0
    code, out, _ = run(root, "unsubscribe", "--add", "zoe@example.org", "--reason", "complained")
    assert code == 0 and "added to the suppression list" in out
    assert exported(root)["zoe@example.org"]["status"] == "complained"  # the store says what the list says
    assert "complained (operator)" in exported(root)["zoe@example.org"]["why"]
    code, out, _ = run(root, "subscribers", "import", str(people))
    assert code == 0 and "1 kept unsubscribed" in out and "0 updated" in out, out
    assert exported(root)["zoe@example.org"]["status"] == "complained"
    code, out, _ = run(root, "subscribers", "show", "zoe@example.org", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["record"]["status"] == "complained" and shown["suppression"]["reason"] == "complained"
    assert [s["status"] for s in shown["subscriptions"]] == ["unsubscribed"]
    assert [e["kind"] for e in shown["history"]] == ["confirmed", "complained"]


def test_a_one_click_unsubscriber_re_imported_stays_unsubscribed(root: Path) -> None:
    people = root / "people.csv"
    people.write_text("email,name\nann@example.org,Ann\n", encoding="utf-8")
    run(root, "subscribers", "import", str(people))
    with open_readers(load_settings(root)) as base:
        base.add_many(["ann@example.org"])  # what the public app's one-click does
    code, out, _ = run(root, "subscribers", "import", str(people))
    assert code == 0 and "1 kept unsubscribed" in out
    code, out, _ = run(root, "subscribers", "add", "ann@example.org", "--status", "confirmed")
    assert (code, out) == (0, "kept unsubscribed ann@example.org (unsubscribed)\n")
    code, out, _ = run(root, "subscribers", "list")
    assert out.startswith("ann@example.org\tunsubscribed\tAnn\t") and "unsubscribed (one-click)" in out
    code, _, err = run(root, "subscribers", "add", "ann@example.org", "--resubscribe")
    assert code == 2 and "--consent-note" in err
    code, out, _ = run(
        root, "subscribers", "add", "ann@example.org", "--resubscribe", "--consent-note", "phoned on 2026-12-06"
    )
    assert (code, out) == (0, "resubscribed ann@example.org (confirmed)\n")
    shown = json.loads(run(root, "subscribers", "show", "ann@example.org", "--json")[1])
    assert shown["suppression"] is None and shown["history"][-1]["detail"] == "phoned on 2026-12-06"


def test_add_on_an_existing_address_changes_only_what_it_is_told(root: Path) -> None:
    run(root, "subscribers", "add", "zoe@example.org", "--name", "Zoé", "--locale", "fr", "--timezone", "Asia/Tokyo")
    code, out, _ = run(root, "subscribers", "add", "zoe@example.org", "--status", "confirmed")
    assert (code, out) == (0, "unchanged zoe@example.org (confirmed)\n")
    row = exported(root)["zoe@example.org"]
    assert (row["name"], row["locale"], row["timezone"]) == ("Zoé", "fr", "Asia/Tokyo")
    people = root / "people.csv"
    people.write_text("email,name,locale,timezone\nzoe@example.org,,de,\n", encoding="utf-8")
    code, out, _ = run(root, "subscribers", "import", str(people))
    assert "1 updated" in out
    row = exported(root)["zoe@example.org"]
    assert (row["name"], row["locale"], row["timezone"]) == ("Zoé", "de", "Asia/Tokyo")  # empty cells: unchanged
    run(root, "subscribers", "import", str(people), "--replace")
    row = exported(root)["zoe@example.org"]
    assert (row["name"], row["locale"], row["timezone"]) == ("", "de", "")


def test_forget_keeps_only_a_hash_and_a_re_import_is_refused(root: Path) -> None:
    people = root / "people.csv"
    people.write_text("email,name\neve@example.org,Eve\n", encoding="utf-8")
    run(root, "subscribers", "import", str(people))
    code, out, _ = run(root, "subscribers", "forget", "eve@example.org")
    assert code == 0 and "erased" in out
    code, out, _ = run(root, "subscribers", "import", str(people))
    assert "1 refused (forgotten)" in out and "0 new" in out
    assert exported(root) == {}
    shown = json.loads(run(root, "subscribers", "show", "eve@example.org", "--json")[1])
    assert shown["record"] is None and shown["forgotten"] and shown["suppression"]["address"] == ""
    code, out, _ = run(root, "subscribers", "show", "eve@example.org")
    assert "forgotten" in out and "Eve" not in out


# --- the property ---------------------------------------------------------------------------------------

ADDRESSES = st.sampled_from(["ann@example.org", "Bob@example.org", "cy@example.org", "di@example.org"])


class ReaderLife(RuleBasedStateMachine):
    """Random sequences of sign-up, confirm, one-click, import, add, bounce, complaint and forget. After
    every step the store and the suppression list agree, and no reader who left is enrolled in a send."""

    base: ReaderBase

    def __init__(self) -> None:
        super().__init__()
        for table in ("subscribers", "subscriptions", "reader_events", "suppression"):
            self.base.db.execute(f"DELETE FROM {table}")
        self.left: set[str] = set()  # addresses that left (or were forgotten) and have not come back since
        self.links: dict[str, float] = {}  # the issue time of each address's latest confirmation link
        self.left_at: dict[str, float] = {}

    def _leave(self, address: str) -> None:
        self.left.add(address.lower())
        self.left_at[address.lower()] = time.time()

    @rule(address=ADDRESSES, locale=st.sampled_from(["", "fr", "en"]))
    def sign_up(self, address: str, locale: str) -> None:
        self.links[address.lower()] = time.time()
        self.base.sign_up(address, name="Reader", locale=locale)

    @rule(address=ADDRESSES)
    def confirm(self, address: str) -> None:
        issued = self.links.get(address.lower())
        if issued is None:
            return
        done = self.base.confirm(address, Consent(at=now_iso(), form="subscribe"), issued=issued)
        void = self.left_at.get(address.lower(), 0.0) >= issued
        assert (done is None) == void
        if done is not None:
            self.left.discard(address.lower())

    @rule(address=ADDRESSES)
    def one_click(self, address: str) -> None:
        self.base.add_many([address])
        self._leave(address)

    @rule(address=ADDRESSES, status=st.sampled_from(["confirmed", "pending"]), name=st.sampled_from(["", "X"]))
    def import_row(self, address: str, status: str, name: str) -> None:
        self.base.put(address, Fields(name or None, None, None, status), via="import")

    @rule(address=ADDRESSES, status=st.sampled_from([None, "confirmed", "unsubscribed"]))
    def add(self, address: str, status: str | None) -> None:
        self.base.put(address, Fields(locale="fr", status=status))
        if status == "unsubscribed" and not self.base.forgotten(address):
            self._leave(address)

    @rule(address=ADDRESSES)
    def bounce(self, address: str) -> None:
        self.base.suppress(address, "bounced", "bounce run", diagnostic="550 5.1.1")
        self._leave(address)

    @rule(address=ADDRESSES)
    def complaint(self, address: str) -> None:
        self.base.suppress(address, "complained", "ARF", message_id="<arf@isp>")
        self._leave(address)

    @rule(address=ADDRESSES)
    def forget(self, address: str) -> None:
        self.base.forget(address)
        self._leave(address)

    @invariant()
    def the_store_and_the_list_agree(self) -> None:
        for record in self.base.subscribers.records():
            assert (record.email in self.base) == (record.status in LEFT), record
            if record.status in LEFT:
                assert self.base.subscriptions.confirmed(record.email.lower()) == []

    @invariant()
    def nobody_who_left_is_enrolled(self) -> None:
        enrolled = {r.email.lower() for r in self.base.enrolled()}
        assert not enrolled & self.left
        assert not self.base.which(sorted(enrolled))
        for address in enrolled:
            record = self.base.get(address)
            assert record is not None and record.status == "confirmed"


@pytest.fixture
def reader_base(root: Path) -> Iterator[ReaderBase]:
    with open_readers(load_settings(root)) as base:
        yield base


def test_random_lives_keep_the_store_and_the_list_in_agreement(reader_base: ReaderBase, database_url: str) -> None:
    ReaderLife.base = reader_base
    examples = 15 if database_url else 60  # PostgreSQL: a short run; each step is a few round trips
    run_state_machine_as_test(
        ReaderLife,
        settings=settings(
            max_examples=examples,
            stateful_step_count=20,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
