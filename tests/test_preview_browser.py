"""The preview as an editor uses it: a real server subprocess, Debian's headless Chromium via Playwright.

One server for the module. Tests that edit files put them back and wait for the page to show it, so
the next test starts from the demo edition again.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.delivery.suppression import SuppressionList, suppression_path
from newsletter.delivery.unsubscribe import make_token
from tests.helpers import SmtpServer, StoreHandler, placeholder_png
from tests.test_preview import (
    DAY,
    EARLIER,
    HOSTILE_TITLE,
    LEAD,
    LEAD_FILE,
    LIST_ID,
    SECRET,
    PreviewServer,
    clean_env,
    make_root,
)

pytestmark = pytest.mark.browser

FRAME_READY = (
    "() => { const f = document.getElementById('email');"
    " return !!f && document.body.dataset.frameSrc === f.getAttribute('src'); }"
)


PHOTO = placeholder_png(600, 338)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreviewServer]:
    root = make_root(tmp_path_factory.mktemp("preview-browser"), templates=True)
    srv = PreviewServer(root, env=clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET))
    try:
        yield srv
    finally:
        assert srv.stop() == 0


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    """A fresh browser context; nothing leaves this machine, and any alert() or script error fails the test."""
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    context.route("https://newsletter.example.org/images/**", lambda r: r.fulfill(body=PHOTO, content_type="image/png"))
    context.route(
        re.compile(r"^(?!http://127\.0\.0\.1:|https://newsletter\.example\.org/images/)"), lambda r: r.abort()
    )
    pg = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        context.close()
    assert dialogs == [], "a script from story text ran"
    assert errors == [], "the preview page raised script errors"


def open_edition(pg, server: PreviewServer, path: str = f"/editions/{DAY}/"):  # type: ignore[no-untyped-def]
    pg.goto(server.url.rstrip("/") + path)
    pg.wait_for_selector("#live-status[data-state=live]")
    pg.wait_for_function(FRAME_READY)
    return pg.locator("#email").element_handle().content_frame()


def frame_text(pg) -> str:  # type: ignore[no-untyped-def]
    return pg.locator("#email").element_handle().content_frame().evaluate("document.body.innerText")


def wait_for_frame_text(pg, text: str, timeout: float = 5000) -> None:  # type: ignore[no-untyped-def]
    pg.wait_for_function(
        "(t) => { const f = document.getElementById('email'); const d = f && f.contentDocument;"
        " return !!d && !!d.body && d.body.textContent.includes(t); }",
        arg=text,
        timeout=timeout,
    )


class Edit:
    """Change a file; `restore()` puts it back byte for byte."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.original = path.read_text(encoding="utf-8")

    def replace(self, old: str, new: str) -> None:
        assert old in self.original
        self.path.write_text(self.original.replace(old, new), encoding="utf-8")

    def restore(self) -> None:
        self.path.write_text(self.original, encoding="utf-8")


def test_index_lists_editions_and_opens_one(page, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url + "editions/")
    rows = page.locator("tr[data-date]")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-date") == DAY.isoformat()
    assert "The Morning Brief — Friday, December 30, 2016" in rows.nth(0).inner_text()
    assert rows.nth(0).locator("td").nth(1).inner_text() == "7"
    assert "not built" in rows.nth(0).inner_text()
    # hostile story text shows as text, and no script runs (the page fixture checks for dialogs)
    page.goto(server.url + f"editions/{EARLIER}/manifest")
    assert page.get_by_text(HOSTILE_TITLE).count() == 1

    page.goto(server.url + "editions/")
    page.get_by_role("link", name=DAY.isoformat()).click()
    page.wait_for_url(f"**/editions/{DAY}/")
    frame = open_edition(page, server)
    assert frame.get_by_role("heading", name=LEAD).count() >= 1
    assert page.locator("h1.subject").inner_text() == "The Morning Brief — Friday, December 30, 2016"
    # the frame is as tall as the email: the page scrolls, not the frame
    assert frame.evaluate("document.documentElement.scrollHeight <= window.innerHeight + 1")


@pytest.mark.parametrize("width", [320, 375])
def test_phone_widths_have_no_horizontal_overflow(page, server: PreviewServer, width: int) -> None:  # type: ignore[no-untyped-def]
    open_edition(page, server)
    page.click(f'button[data-width="{width}"]')
    assert page.get_attribute(f'button[data-width="{width}"]', "aria-pressed") == "true"
    page.wait_for_function(f"document.getElementById('email').clientWidth === {width}")
    frame = page.locator("#email").element_handle().content_frame()
    assert frame.evaluate("window.innerWidth") == width
    assert frame.evaluate("document.documentElement.scrollWidth") <= width
    overflowing = frame.evaluate(
        """(w) => [...document.querySelectorAll('body *')]
             .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > w + 1)
             .map(e => e.tagName + ':' + (e.textContent || '').trim().slice(0, 40))""",
        width,
    )
    assert overflowing == []


_SCHEME_COLOURS = (
    "() => [getComputedStyle(document.body).backgroundColor,"
    " getComputedStyle(document.querySelector('.nl-bg-card > table')).backgroundColor,"
    " getComputedStyle(document.querySelector('.nl-body p')).color]"
)


def palette_colours() -> tuple[list[str], list[str]]:
    """[page, card, body text] as the browser writes them, light and dark, from the template's palette."""
    from newsletter.config import load_settings
    from newsletter.edition import make_environment

    module = make_environment(load_settings(Path(__file__).parent, environ={})).get_template("palette.j2").module

    def rgb(h: str) -> str:
        return "rgb({}, {}, {})".format(*(int(h[i : i + 2], 16) for i in (1, 3, 5)))

    return [[rgb(c[k]) for k in ("page", "card", "ink")] for c in (module.light, module.dark)]  # type: ignore[return-value]


def test_width_presets_and_dark_mode(page, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    light, dark = palette_colours()
    open_edition(page, server)
    for preset, expected in (("600", 600), ("full", page.evaluate("document.querySelector('.stage').clientWidth"))):
        page.click(f'button[data-width="{preset}"]')
        page.wait_for_function(f"document.getElementById('email').clientWidth === {expected}")
    frame = page.locator("#email").element_handle().content_frame()
    assert frame.evaluate("getComputedStyle(document.documentElement).filter") == "none"
    assert frame.evaluate(_SCHEME_COLOURS) == light

    page.click("#dark-toggle")
    assert page.get_attribute("#dark-toggle", "aria-pressed") == "true"
    assert "scheme=dark" in (page.get_attribute("#email", "src") or "")
    page.wait_for_function(FRAME_READY)
    assert page.locator("#dark-note").is_visible()
    assert "prefers-color-scheme" in page.inner_text("#dark-note")
    # The template's own dark styles, not an inversion, at every width the preview offers.
    for preset in ("320", "375", "600", "full"):
        page.click(f'button[data-width="{preset}"]')
        if preset != "full":
            page.wait_for_function(f"document.getElementById('email').clientWidth === {preset}")
        frame = page.locator("#email").element_handle().content_frame()
        assert frame.evaluate("getComputedStyle(document.documentElement).filter") == "none"
        assert frame.evaluate(_SCHEME_COLOURS) == dark, preset
        assert LEAD in frame.evaluate("document.body.innerText")
        if preset in ("320", "375"):  # the phone layout still applies under the dark styles
            assert frame.evaluate("document.documentElement.scrollWidth") <= int(preset)

    page.click("#dark-toggle")
    page.wait_for_function(FRAME_READY)
    frame = page.locator("#email").element_handle().content_frame()
    assert frame.evaluate(_SCHEME_COLOURS) == light
    assert page.locator("#dark-note").is_hidden()


def test_light_stays_light_in_a_dark_browser(browser, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    """An editor whose own system is in dark mode still sees the light email until they press the toggle."""
    light, dark = palette_colours()
    context = browser.new_context(viewport={"width": 1024, "height": 900}, color_scheme="dark")
    context.route(re.compile(r"^(?!http://127\.0\.0\.1:)"), lambda r: r.abort())
    pg = context.new_page()
    try:
        pg.add_init_script("localStorage.setItem('preview.dark', '0')")
        frame = open_edition(pg, server)
        assert frame.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")  # the browser is dark…
        assert frame.evaluate(_SCHEME_COLOURS) == light  # …the email shown is the light one
        pg.click("#dark-toggle")
        pg.wait_for_function(FRAME_READY)
        assert pg.locator("#email").element_handle().content_frame().evaluate(_SCHEME_COLOURS) == dark
    finally:
        context.close()


def test_the_mjml_is_offered_for_download(page, server: PreviewServer, node_tools: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.test_mjml_reference import compile_reference

    open_edition(page, server)
    with page.expect_download() as info:
        page.click(f'a[href="/editions/{DAY}/newsletter.mjml"]')
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.name == f"newsletter-{DAY}.mjml"
    code, report = compile_reference(node_tools, saved)
    assert code == 0 and report["errors"] == [] and LEAD in str(report["html"])


def test_text_view_shows_the_plain_text_part(page, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url + f"editions/{DAY}/text")
    text = page.locator("#plain-text")
    assert LEAD in text.inner_text()
    assert "monospace" in text.evaluate("e => getComputedStyle(e).fontFamily")
    assert page.get_attribute("nav.tabs a[aria-current=page]", "href") == f"/editions/{DAY}/text"


def test_screenshots_at_375_and_1024(page, server: PreviewServer, artifacts_dir: Path) -> None:  # type: ignore[no-untyped-def]
    for width in (375, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        open_edition(page, server, "/")
        page.wait_for_function("parseInt(document.getElementById('email').style.height) > 1000")
        # the preview page itself fits a phone screen too
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        path = artifacts_dir / f"preview-edition-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        shot_width, shot_height = struct.unpack(">II", data[16:24])
        assert shot_width == width and shot_height > 2000


def test_a_saved_story_updates_the_open_page(page, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    open_edition(page, server)
    page.evaluate("window.__probe = 'still the same page'")
    edit = Edit(server.root / LEAD_FILE)
    try:
        started = time.monotonic()
        edit.replace(LEAD, "Peace talks set for Astana in January")
        wait_for_frame_text(page, "Peace talks set for Astana in January")
        elapsed = time.monotonic() - started
        assert page.evaluate("window.__probe") == "still the same page", "the page was reloaded by hand"
        assert elapsed < 1.0, f"the page showed the change {elapsed:.2f} s after the save"
        assert LEAD not in frame_text(page)
    finally:
        edit.restore()
    wait_for_frame_text(page, LEAD)
    assert page.evaluate("window.__probe") == "still the same page"


def test_a_broken_story_shows_the_error_over_the_last_good_render(page, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    open_edition(page, server)
    version = page.get_attribute("#email", "data-version")
    edit = Edit(server.root / LEAD_FILE)
    try:
        edit.replace("published: 2016-12-30T05:30:00+01:00", "published: yesterday")
        banner = page.locator("#banner .banner")
        banner.wait_for(timeout=5000)
        assert f"{LEAD_FILE}: field 'published': not an ISO 8601 datetime: 'yesterday'" in banner.inner_text()
        assert "last good render" in banner.inner_text()
        # the email stays as it was
        assert page.get_attribute("#email", "data-version") == version
        assert LEAD in frame_text(page)
        assert page.locator("#write button").is_disabled()
    finally:
        edit.restore()
    page.locator("#banner .banner").wait_for(state="detached", timeout=5000)
    assert page.locator("#write button").is_enabled()


def test_a_template_error_names_file_and_line(page, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    open_edition(page, server)
    edit = Edit(server.root / "templates" / "partials" / "lead.mjml.j2")
    line = edit.original.count("\n") + 1
    try:
        edit.path.write_text(edit.original + "{% endfor %}\n", encoding="utf-8")
        banner = page.locator("#banner .banner")
        banner.wait_for(timeout=5000)
        assert f"templates/partials/lead.mjml.j2:{line}: " in banner.inner_text()
        assert LEAD in frame_text(page)
    finally:
        edit.restore()
    page.locator("#banner .banner").wait_for(state="detached", timeout=5000)


def test_unsubscribe_flow_in_the_browser(page, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    address = "browser.reader@example.org"
    suppression = SuppressionList(suppression_path(load_settings(server.root, environ={})))
    open_edition(page, server)
    page.fill("#try-unsubscribe input[name=address]", address)
    page.click("#try-unsubscribe button")
    token = make_token(SECRET.encode(), LIST_ID, address)
    page.wait_for_url(f"**/u/{token}")
    assert page.get_by_role("button", name="Unsubscribe").is_visible()
    assert address not in suppression, "opening the link must not unsubscribe"
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="Unsubscribed").wait_for()
    assert address in suppression

    forged = make_token(b"not our secret", LIST_ID, "someone.else@example.org")
    response = page.goto(server.url + f"u/{forged}")
    assert response is not None and response.status == 403
    assert "someone.else@example.org" not in suppression
    suppression.close()


def test_send_test_is_disabled_with_an_explanation(page, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    open_edition(page, server)
    assert page.locator("#send-test button").is_disabled()
    assert page.locator("#send-test input[name=address]").is_disabled()
    assert "no SMTP server is configured" in page.locator("#send-test-why").inner_text()


@pytest.fixture
def smtp_relay() -> Iterator[SmtpServer]:
    """conftest's aiosmtpd server on a port chosen up front: aiosmtpd 1.4 cannot start on port 0 (its
    start() connects to the port it was given to check the server is up)."""
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay = SmtpServer("127.0.0.1", port)
    controller = Controller(StoreHandler(relay), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()


def test_send_test_through_the_configured_smtp_server(page, server: PreviewServer, smtp_relay: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    config = server.root / "newsletter.toml"
    open_edition(page, server)
    try:
        config.write_text(f'[smtp]\nurl = "{smtp_relay.url}"\n', encoding="utf-8")
        # the open page notices the new config by itself: the form becomes usable
        page.locator("#send-test input[name=address]:enabled").wait_for(timeout=5000)
        page.fill("#send-test input[name=address]", "editor@example.org")
        page.click("#send-test button")
        notice = page.locator(".notice-ok")
        notice.wait_for(timeout=15000)
        assert notice.inner_text().startswith(f"sent edition {DAY} to editor@example.org")
        assert len(smtp_relay.received) == 1
        assert smtp_relay.received[0].rcpt_tos == ["editor@example.org"]
        assert smtp_relay.received[0].message["Subject"] == "The Morning Brief — Friday, December 30, 2016"
    finally:
        config.unlink()
    page.locator("#send-test-why").wait_for(timeout=5000)
    assert not (server.root / "outbox").exists(), "the preview wrote to the outbox without being asked"


def test_write_to_the_outbox_when_asked(page, server: PreviewServer) -> None:  # type: ignore[no-untyped-def]
    outbox = server.root / "outbox" / DAY.isoformat()
    assert not outbox.exists()
    open_edition(page, server)
    page.click("#write button")
    notice = page.locator(".notice-ok")
    notice.wait_for()
    assert f"Wrote {outbox}/" in notice.inner_text()
    assert (outbox / "newsletter.html").is_file()
    assert page.locator("#summary").inner_text().count("built ") == 1


def test_the_first_story_of_an_empty_folder_appears_by_itself(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "paper"
    root.mkdir()
    srv = PreviewServer(root)
    try:
        page.goto(srv.url)
        page.wait_for_selector("#live-status[data-state=live]")
        assert "No stories yet" in page.locator("main").inner_text()
        story = root / "stories" / "first.md"
        story.parent.mkdir()
        story.write_text(
            "---\ntitle: The first story of the paper\npublished: 2024-03-05T07:30:00+01:00\n---\nHello.\n",
            encoding="utf-8",
        )
        wait_for_frame_text(page, "The first story of the paper")
        assert page.locator("h1.subject").inner_text().endswith("Wednesday, March 6, 2024")  # after the 06:00 cut-off
    finally:
        assert srv.stop() == 0
