"""The circuit breaker: a send that bounces (a stale list) or is refused for policy (5.7.x) pauses —
nothing lost — says why, shows in `status` and `status --check`, and goes on exactly once with
`send --resume`. Against a real SMTP server (aiosmtpd) that refuses as told, through the real CLI."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from newsletter.delivery.breaker import Breaker, is_hard_bounce, is_policy
from newsletter.delivery.sinks.base import Outcome
from tests.helpers import free_port

SECRET = "breaker-test-secret-0123456789abcdef"
READERS = 300


# --- the breaker alone -------------------------------------------------------------------------------

SENT = Outcome("sent", 250, "250 OK")
BOUNCE = Outcome("permanent", 550, "550 5.1.1 <x@example.com>: user unknown", stage="rcpt")
POLICY = Outcome("permanent", 550, "550 5.7.1 Message rejected due to policy", stage="data")
RATE = Outcome("transient", 421, "421 4.7.0 Try again later, closing connection", stage="mail")


def test_a_stale_list_trips_within_the_window() -> None:
    breaker = Breaker(window=100, bounce_share=0.05, policy_run=5)
    for i in range(1, 101):
        reason = breaker.record(BOUNCE if i % 5 == 0 else SENT)  # 20 % bounce
        if reason:
            break
    assert reason is not None and i == 30  # the 6th bounce passes 5 % of the whole window
    assert "6 hard bounces in the first 30 messages" in reason
    assert breaker.record(BOUNCE) is None  # says it once


def test_a_few_early_bounces_do_not_trip_and_the_window_ends() -> None:
    breaker = Breaker(window=1000, bounce_share=0.05, policy_run=5)
    assert all(breaker.record(BOUNCE) is None for _ in range(3))  # 3 of 3, but too few to judge
    assert all(breaker.record(SENT) is None for _ in range(1200))
    assert all(breaker.record(BOUNCE) is None for _ in range(200))  # after the window: not watched
    assert breaker.seen == 1000


def test_policy_refusals_in_a_row_trip_and_a_success_resets_the_run() -> None:
    breaker = Breaker(window=0, policy_run=5)
    for _ in range(4):
        assert breaker.record(POLICY) is None
    assert breaker.record(SENT) is None
    for _ in range(4):
        assert breaker.record(RATE) is None  # 4.7.x: rate-limited by a provider counts too
    reason = breaker.record(POLICY)
    assert reason is not None and "5 policy refusals in a row" in reason and "5.7.1" in reason


def test_what_counts_as_what() -> None:
    assert is_hard_bounce(BOUNCE) and not is_policy(BOUNCE)
    assert is_policy(POLICY) and not is_hard_bounce(POLICY)
    assert is_policy(Outcome("permanent", 554, "554 5.7.1 Relay access denied", stage="rcpt"))
    assert not is_hard_bounce(Outcome("permanent", 552, "552 5.2.2 mailbox full", stage="data"))
    assert not is_policy(SENT) and not is_hard_bounce(RATE)
    assert not is_policy(Outcome("transient", 451, "451 4.7.1 Greylisted, try again in 300 s", stage="rcpt"))
    assert is_policy(Outcome("transient", 451, "451 4.7.650 temporarily rate limited (IP reputation)", stage="mail"))
    off = Breaker(window=0, bounce_share=0.05, policy_run=0)
    assert all(off.record(o) is None for o in [BOUNCE, POLICY] * 50)


# --- through the CLI, against a relay that refuses --------------------------------------------------------


@dataclass
class Relay:
    port: int
    bounce: set[str] = field(default_factory=set)  # refused at RCPT with 5.1.1
    block_after: int | None = None  # accepted messages after which every DATA gets 550 5.7.1
    delivered: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


class _Handler:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address in self.relay.bounce:
            with self.relay.lock:
                self.relay.refused.append(address)
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.relay.lock:
            if self.relay.block_after is not None and len(self.relay.delivered) >= self.relay.block_after:
                self.relay.refused.extend(envelope.rcpt_tos)
                return "550 5.7.1 Service unavailable, client host blocked using a reputation list"
            self.relay.delivered.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[Relay]:
    from aiosmtpd.controller import Controller

    found = Relay(free_port())
    controller = Controller(_Handler(found), hostname="127.0.0.1", port=found.port)
    controller.start()
    try:
        yield found
    finally:
        controller.stop()


def readers(root: Path) -> list[str]:
    addresses = [f"reader{i:03d}@example.com" for i in range(READERS)]
    (root / "subscribers.csv").write_text("email,name\n" + "".join(f"{a},\n" for a in addresses), encoding="utf-8")
    (root / "newsletter.toml").write_text(
        "[mailing]\nbreaker_window = 100\nbreaker_bounce_share = 0.05\nbreaker_policy_run = 5\n", encoding="utf-8"
    )
    return addresses


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "NEWSLETTER_UNSUBSCRIBE_SECRET": SECRET, "HOME": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args, "--root", str(root), "--date", "2016-12-30"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def status_check(root: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "status", "--check", "--root", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_a_bouncing_list_pauses_then_resumes_exactly_once(demo_root: Path, relay: Relay) -> None:
    addresses = readers(demo_root)
    relay.bounce = {a for i, a in enumerate(addresses) if i % 5 == 4}  # 20 % of the list is stale
    send = ["send", "--subscribers", "subscribers.csv", "--smtp", relay.url, "--no-progress"]

    first = run(demo_root, *send)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "paused: 6 hard bounces in the first 30 messages" in first.stderr, first.stderr
    assert len(first.stderr.strip().splitlines()) == 1 and "Traceback" not in first.stderr
    assert len(relay.delivered) + len(relay.refused) == 30  # stopped within the window (100), at once

    status = run(demo_root, "status")
    assert status.returncode == 4, status.stdout  # incomplete
    assert "Paused: 6 hard bounces in the first 30 messages" in status.stdout
    assert "Rates: hard bounces 6/30 = 20.00% OVER THE LIMIT" in status.stdout
    assert "Status: incomplete, paused" in status.stdout
    check = status_check(demo_root)
    assert check.returncode == 1 and check.stdout.startswith("CRITICAL: edition 2016-12-30 paused: 6 hard bounces")

    again = run(demo_root, *send)  # a cron rerun does not go on by itself
    assert again.returncode == 1 and "is paused: 6 hard bounces" in again.stderr and "--resume" in again.stderr
    assert len(relay.delivered) + len(relay.refused) == 30

    relay.bounce = set()  # the list was cleaned at the relay's end: the rest goes through
    resumed = run(demo_root, *send, "--resume")
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr  # done; the 6 bounces stay failed
    assert "sent 294" in resumed.stdout and "failed 6" in resumed.stdout
    assert sorted(relay.delivered) == sorted(set(relay.delivered))  # nobody got it twice
    assert set(relay.delivered) | set(relay.refused) == set(addresses) and len(relay.delivered) == 294
    assert "paused" not in status_check(demo_root).stdout  # (the schedule's own verdict is another matter)

    once_more = run(demo_root, *send, "--resume")  # nothing left: resuming again sends nothing
    assert once_more.returncode == 3 and len(relay.delivered) == 294


def test_policy_refusals_in_a_row_pause_the_send(demo_root: Path, relay: Relay) -> None:
    readers(demo_root)
    relay.block_after = 10  # blocked by a provider after ten messages
    done = run(demo_root, "send", "--subscribers", "subscribers.csv", "--smtp", relay.url, "--no-progress")
    assert done.returncode == 1
    assert "paused: 5 policy refusals in a row (blocked or rate-limited), last: 550 5.7.1" in done.stderr
    assert len(relay.delivered) == 10 and len(relay.refused) == 5  # the breaker, not stop_after_same_failures (20)
    status = run(demo_root, "status")
    assert "Paused: 5 policy refusals in a row" in status.stdout and "sent 10, failed 5" in status.stdout


# --- the rates status shows -------------------------------------------------------------------------------


def test_rates_are_judged_against_the_published_limits() -> None:
    from newsletter.delivery.health import Rates

    line = Rates(handed=10_000, delivered=9_900, bounced=100, complained=40).line()
    assert "hard bounces 100/10000 = 1.00% ok (Amazon SES reviews at 5%, pauses at 10%)" in line
    assert "complaints 40/9900 = 0.404% OVER THE LIMIT (Gmail and Yahoo: under 0.1%, never 0.3%)" in line
    assert "= 0.150% above the goal" in Rates(2000, 2000, 0, 3).line()


def test_reports_naming_no_edition_are_counted_on_the_day_they_arrive(demo_root: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from newsletter.bounces import open_bounce_state, reported
    from newsletter.config import load_settings

    settings = load_settings(demo_root, environ={})
    now = datetime.now(UTC)
    with open_bounce_state(settings) as state:
        state.add_event("<r1@isp>", "ann@example.com", "complaint", None, now)
        state.add_event("<r2@isp>", "bob@example.com", "hard", None, now)
        state.add_event("<r2@isp>", "bob@example.com", "hard", None, now)  # the same report read again
    today = now.astimezone(settings.timezone).date()
    found = reported(settings, today, (settings.language, ""))
    assert found.named == {} and found.by_arrival == {"complaint": 1, "hard": 1}
    assert found.count("hard") == 1 and "naming none, counted by the day they arrived" in found.line()
    assert reported(settings, today - timedelta(days=1), (settings.language, "")).by_arrival == {}


# --- the pause in either ledger ---------------------------------------------------------------------------


def test_the_pause_is_kept_in_either_ledger(demo_root: Path, database_url: str, monkeypatch) -> None:
    """SQLite and PostgreSQL alike: the run's status `paused`, the reason in the ledger, resumed once."""
    from datetime import date

    from newsletter.config import load_settings
    from newsletter.delivery import ledger_report, open_ledger, send_edition
    from newsletter.delivery.sinks.memory import MemorySink
    from newsletter.errors import PausedError

    class Stale(MemorySink):
        def __init__(self, bouncing: bool) -> None:
            super().__init__()
            self.bouncing = bouncing

        def send(self, envelope):  # type: ignore[no-untyped-def]
            number = int(envelope.recipient.split("@")[0].removeprefix("reader"))
            if self.bouncing and number % 5 == 4:
                return Outcome("permanent", 550, "550 5.1.1 user unknown", stage="rcpt")
            return super().send(envelope)

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    readers(demo_root)
    environ = {"NEWSLETTER_DATABASE_URL": database_url} if database_url else {}
    settings = load_settings(demo_root, environ=environ)
    day = date(2016, 12, 30)
    with pytest.raises(PausedError, match="6 hard bounces in the first 30 messages"):
        send_edition(settings, day, subscribers="subscribers.csv", sink=Stale(True), progress=False)
    report = ledger_report(settings, day)
    assert report is not None and report.paused.startswith("paused: 6 hard bounces") and report.pending == 270
    with open_ledger(settings, day, readonly=True) as ledger:
        assert ledger.runs()[-1]["status"] == "paused"
    with pytest.raises(PausedError, match="--resume"):
        send_edition(settings, day, subscribers="subscribers.csv", sink=Stale(False), progress=False)
    sink = Stale(False)
    done = send_edition(settings, day, subscribers="subscribers.csv", sink=sink, progress=False, resume=True)
    assert done.sent == 294 and done.failed == 6 and done.pending == 0 and len(sink.sent) == 270
    assert ledger_report(settings, day).paused == ""  # type: ignore[union-attr]


def test_senders_sharing_a_mailing_stop_when_one_pauses_it(demo_root: Path, database_url: str, monkeypatch) -> None:
    """Another sender's breaker tripped (its reason in the ledger): this one stops within PAUSE_CHECK messages."""
    from datetime import date

    from newsletter.config import load_settings
    from newsletter.delivery import open_ledger, send_edition
    from newsletter.delivery.rows import PAUSE_CHECK
    from newsletter.delivery.sinks.memory import MemorySink
    from newsletter.errors import PausedError

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    addresses = [f"reader{i:04d}@example.com" for i in range(1200)]
    (demo_root / "subscribers.csv").write_text("email\n" + "\n".join(addresses) + "\n", encoding="utf-8")
    environ = {"NEWSLETTER_DATABASE_URL": database_url} if database_url else {}
    settings = load_settings(demo_root, environ=environ)
    day = date(2016, 12, 30)

    class OtherSenderTrips(MemorySink):
        def send(self, envelope):  # type: ignore[no-untyped-def]
            if len(self.sent) == 100:
                with open_ledger(settings, day) as other:
                    other.set_meta("paused", "paused: 5 policy refusals in a row (on another sender)")
            return super().send(envelope)

    sink = OtherSenderTrips()
    with pytest.raises(PausedError, match="on another sender"):
        send_edition(settings, day, subscribers="subscribers.csv", sink=sink, progress=False)
    assert 100 < len(sink.sent) < PAUSE_CHECK + 1
    with open_ledger(settings, day, readonly=True) as ledger:
        assert ledger.runs()[-1]["status"] == "paused" and ledger.counts().pending == 1200 - len(sink.sent)


def test_with_several_languages_the_reports_of_the_day_count_once(languages_root: Path, monkeypatch) -> None:
    from datetime import date

    from newsletter.config import load_settings
    from newsletter.delivery import day_rates, edition_rates, send_languages
    from newsletter.delivery.sinks.memory import MemorySink

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    (languages_root / "list.csv").write_text(
        "email,locale\nann@example.com,en\nbob@example.com,en\nchloe@example.fr,fr\nali@example.eg,ar\n",
        encoding="utf-8",
    )
    settings = load_settings(languages_root, environ={})
    day = date(2016, 12, 30)
    send_languages(settings, day, subscribers="list.csv", sink=MemorySink(), progress=False)
    # A complaint naming the French edition, and a hard bounce naming the day only (a Message-ID).
    from datetime import UTC, datetime

    from newsletter.bounces import EditionRef, open_bounce_state, reported

    with open_bounce_state(settings) as state:
        state.add_event(
            "<c@isp>", "chloe@example.fr", "complaint", EditionRef(day, "fr", "return path"), datetime.now(UTC)
        )
        state.add_event("<h@isp>", "bob@example.com", "hard", EditionRef(day, "", "Message-ID"), datetime.now(UTC))
    later = reported(settings, day, None)
    rates = day_rates(settings, day, {"hard": later.count("hard"), "complaint": later.count("complaint")})
    assert rates is not None and (rates.handed, rates.delivered, rates.complained, rates.bounced) == (4, 4, 1, 1)
    french = reported(settings.for_language("fr"), day, ("fr",), by_arrival=False)
    assert french.named == {"complaint": 1}
    english = edition_rates(settings.for_language("en"), day, reported(settings, day, ("en",)).named)
    assert english is not None and (english.delivered, english.complained, english.bounced) == (2, 0, 0)
