"""The desk's mailing pages against a real `newsletter serve --desk` subprocess and a real SMTP server on
127.0.0.1: approve (the state and the hash; a stale page approves nothing), send a test to the seed list,
the mailing live with pause and resume (every reader once), how it landed; every action in the audit
log. Then the same in Debian's Chromium: approve and send a test by clicking, and axe on each page,
light and dark, with no serious violation."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from newsletter.config import load_settings
from newsletter.delivery import ledger_exists, ledger_report, send_edition
from tests.helpers import DEMO_DATE, copy_demo_stories, free_port
from tests.test_desk import PASSWORD, csrf_of, desk_cli, sign_in
from tests.test_web_app import SECRET, PublicServer

DAY = DEMO_DATE.isoformat()
SEEDS = ["seed.one@example.org", "seed.two@example.org"]
READERS = [f"reader{i:02d}@example.org" for i in range(30)]


class Relay:
    """aiosmtpd on 127.0.0.1, keeping each message's recipients and bytes."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.received: list[tuple[list[str], bytes]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        with self.lock:
            self.received.append((list(envelope.rcpt_tos), envelope.content))  # type: ignore[attr-defined]
        return "250 OK"

    def to(self, address: str) -> list[bytes]:
        with self.lock:
            return [data for rcpts, data in self.received if address in rcpts]


@dataclass
class World:
    server: PublicServer
    relay: Relay
    root: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    relay = Relay()
    root = tmp_path_factory.mktemp("desk-mailing") / "paper"
    root.mkdir()
    copy_demo_stories(root / "stories")
    (root / "subscribers.csv").write_text("email\n" + "\n".join(READERS) + "\n", encoding="utf-8")
    seeds = ", ".join(f'"{s}"' for s in SEEDS)
    (root / "newsletter.toml").write_text(
        f'[web]\nhosts = ["127.0.0.1"]\n\n[smtp]\nurl = "smtp://127.0.0.1:{relay.port}"\n\n'
        f'[mailing]\nsubscribers = "subscribers.csv"\n\n[schedule]\napproval = "required"\n\n'
        f"[desk]\nseeds = [{seeds}]\n",
        encoding="utf-8",
    )
    for name, role in (("bob", "editor"), ("ann", "admin")):
        assert desk_cli(root, "add-user", name, "--role", role, stdin=PASSWORD + "\n").returncode == 0
    server = PublicServer(root, "--desk")
    try:
        yield World(server, relay, root)
    finally:
        assert server.stop() == 0
        relay.controller.stop()


def _hash(html: str, lang: str = "en") -> str:
    found = re.search(
        rf'name="language" value="{lang}">\s*<input type="hidden" name="hash" value="([0-9a-f]{{64}})"', html
    )
    assert found, "the page shows no approve form"
    return found.group(1)


def _audit(world: World) -> str:
    return desk_cli(world.root, "audit", "--export", "--format", "jsonl").stdout


def test_approve_shows_the_state_and_hash_and_a_stale_page_approves_nothing(world: World) -> None:
    bob = sign_in(world.server, "bob")
    page = bob.get(f"/desk/approve?date={DAY}")
    assert page.status_code == 200 and "Waiting for approval" in page.text
    shown = _hash(page.text)
    assert f"<code>{shown[:12]}</code>" in page.text
    form = {"csrf": csrf_of(page.text), "date": DAY, "language": "en"}
    stale = bob.post("/desk/approve", data={**form, "hash": "0" * 64})
    assert stale.status_code == 409 and "changed since the page was shown" in stale.text
    assert bob.post("/desk/approve", data={**form, "hash": shown, "csrf": "forged"}).status_code == 403
    done = bob.post("/desk/approve", data={**form, "hash": shown})
    assert done.status_code == 303
    after = bob.get(f"/desk/approve?date={DAY}").text
    assert re.search(r"Approved by bob at \d{4}-\d\d-\d\d \d\d:\d\d UTC", after)
    entries = [line for line in _audit(world).splitlines() if '"edition.approve"' in line]
    assert len(entries) == 1 and shown in entries[0] and '"bob"' in entries[0]
    # A story edited afterwards voids the approval: the page says so and offers to approve again.
    story = next((world.root / "stories").rglob("*.md"))
    original = story.read_text(encoding="utf-8")
    story.write_text(original + "\nA correction.\n", encoding="utf-8")
    try:
        void = bob.get(f"/desk/approve?date={DAY}").text
        assert "then changed: approve again" in void and _hash(void) != shown
    finally:
        story.write_text(original, encoding="utf-8")


def test_a_test_goes_to_the_seed_list_outside_the_ledger(world: World) -> None:
    bob = sign_in(world.server, "bob")
    page = bob.get(f"/desk/approve?date={DAY}")
    assert all(seed in page.text for seed in SEEDS)
    sent = bob.post("/desk/approve/test", data={"csrf": csrf_of(page.text), "date": DAY, "language": "en", "to": ""})
    assert sent.status_code == 200 and "Test sent" in sent.text
    for seed in SEEDS:
        mails = world.relay.to(seed)
        assert len(mails) == 1 and b"List-Unsubscribe:" in mails[0]
    settings = load_settings(world.root, environ={})
    assert not ledger_exists(settings, DEMO_DATE)
    bad = bob.post(
        "/desk/approve/test", data={"csrf": csrf_of(page.text), "date": DAY, "language": "en", "to": "x\r\nBcc: y"}
    )
    assert bad.status_code == 400 and "Traceback" not in bad.text
    assert '"edition.test"' in _audit(world)


@pytest.mark.browser
def test_approve_and_send_a_test_by_clicking(browser, world: World) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 375, "height": 900})
    page = context.new_page()
    try:
        page.goto(world.server.url + "/desk/login")
        page.fill("input[name=name]", "ann")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(world.server.url + f"/desk/approve?date={DAY}")
        page.click("text=Approve this edition")
        page.wait_for_selector("text=Approved by ann")
        page.fill("#to-en", "editor.browser@example.org")
        page.click("button:has-text('Send a test')")
        page.wait_for_selector("text=Test sent")
        assert len(world.relay.to("editor.browser@example.org")) == 1
    finally:
        context.close()


def test_the_mailing_live_pauses_and_resumes_exactly_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    settings = load_settings(world.root, environ={})
    first = send_edition(settings, DEMO_DATE, limit=10, progress=False)  # a mailing under way: 10 of 30
    assert first.sent == 10
    bob = sign_in(world.server, "bob")
    page = bob.get(f"/desk/sending?date={DAY}")
    assert page.status_code == 200 and "10 of 30 sent, 0 failed, 20 pending" in page.text
    assert 'max="30" value="10"' in page.text and "Pause the mailing" in page.text
    paused = bob.post("/desk/sending/pause", data={"csrf": csrf_of(page.text), "date": DAY})
    assert paused.status_code == 303
    report = ledger_report(settings, DEMO_DATE)
    assert report is not None and report.paused.startswith("paused by bob at ")
    page = bob.get(f"/desk/sending?date={DAY}")
    assert "Resume the mailing" in page.text and "paused by bob" in page.text
    resumed = bob.post("/desk/sending/resume", data={"csrf": csrf_of(page.text), "date": DAY})
    assert resumed.status_code == 303
    deadline = time.monotonic() + 120
    while (r := ledger_report(settings, DEMO_DATE)) is not None and r.pending and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # the resumed run's last outcomes are recorded
    for reader in READERS:
        assert len(world.relay.to(reader)) == 1, reader
    audit = _audit(world)
    assert '"mailing.pause"' in audit and '"mailing.resume"' in audit
    landed = bob.get("/desk/landing?date=2016-12-31")
    assert landed.status_code == 200 and 'role="img"' in landed.text and "<script" not in landed.text
    assert f'<th scope="row">{DAY}</th><td>30</td><td>30</td>' in landed.text


def test_the_pages_need_a_session(world: World) -> None:
    anonymous = httpx.Client(base_url=world.server.url, timeout=30, headers={"X-Forwarded-For": "203.0.113.250"})
    for path in ("/desk/approve", "/desk/sending", "/desk/landing"):
        page = anonymous.get(path)
        assert page.status_code == 303 and page.headers["location"].startswith("/desk/login"), path
    for path in ("/desk/approve", "/desk/approve/test", "/desk/sending/pause", "/desk/sending/resume"):
        assert anonymous.post(path, data={"date": DAY}).status_code == 403


# --- in the browser ---------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violation(browser, world: World, node_tools: Path, scheme: str) -> None:  # type: ignore[no-untyped-def]
    axe = (node_tools / "node_modules" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")
    # bypass_csp: the desk runs no script, so axe itself could not be injected otherwise.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(world.server.url + "/desk/login")
        page.fill("input[name=name]", "bob")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        for path in (f"/desk/approve?date={DAY}", f"/desk/sending?date={DAY}", "/desk/landing?date=2016-12-31"):
            page.goto(world.server.url + path)
            page.add_script_tag(content=axe)
            found = page.evaluate(
                """async () => (await axe.run(document)).violations
                     .filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"""
            )
            assert found == [], (path, scheme, found)
            for width in (1280, 375):  # a desktop, and a phone: nothing scrolls sideways but the tables' regions
                page.set_viewport_size({"width": width, "height": 900})
                overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, (path, width, overflow)
    finally:
        context.close()
