"""The web archive and the sign-up form in Debian's headless Chromium: phone and desktop widths without
horizontal overflow (screenshots in test-artifacts/), dark mode, and a sign-up through the real form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import placeholder_png
from tests.test_preview import DAY, PreviewServer, clean_env, make_root
from tests.test_web_app import SECRET, PublicServer, confirm_link, confirmation_mail
from tests.test_web_app import make_root as make_public_root

pytestmark = pytest.mark.browser

PHOTO = placeholder_png(600, 338)
PAGES = {"edition": "/editions/2016-12-30/", "index": "/", "subscribe": "/subscribe"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicServer]:
    import subprocess
    import sys

    root = make_public_root(tmp_path_factory.mktemp("web-browser"))
    env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET)
    subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(root)], check=True, env=env, capture_output=True
    )
    srv = PublicServer(root, "--site")
    try:
        yield srv
    finally:
        assert srv.stop() == 0


def new_page(browser, width: int, scheme: str = "light"):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    context.route("https://newsletter.example.org/images/**", lambda r: r.fulfill(body=PHOTO, content_type="image/png"))
    context.route(
        re.compile(r"^(?!http://127\.0\.0\.1:|https://newsletter\.example\.org/images/)"), lambda r: r.abort()
    )
    return context, context.new_page()


@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("name", sorted(PAGES))
def test_pages_fit_phone_and_desktop(browser, server: PublicServer, artifacts_dir: Path, name: str, width: int) -> None:  # type: ignore[no-untyped-def]
    context, pg = new_page(browser, width)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        response = pg.goto(server.url + PAGES[name])
        assert response is not None and response.status == 200
        pg.wait_for_load_state("networkidle")
        assert pg.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(238, 240, 243)"  # CSS applied
        overflow = pg.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} at {width}px scrolls sideways by {overflow}px"
        pg.screenshot(path=str(artifacts_dir / f"web-{name}-{width}.png"), full_page=True)
        assert errors == []  # no CSP violation, no failed stylesheet
    finally:
        context.close()


def test_dark_mode_follows_the_system(browser, server: PublicServer, artifacts_dir: Path) -> None:  # type: ignore[no-untyped-def]
    context, pg = new_page(browser, 375, scheme="dark")
    try:
        pg.goto(server.url + PAGES["edition"])
        # The email's dark palette (templates/palette.j2): page #0e1116, ink #e3e6ea.
        assert pg.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(14, 17, 22)"
        assert pg.evaluate("getComputedStyle(document.querySelector('main')).color") == "rgb(227, 230, 234)"
        pg.screenshot(path=str(artifacts_dir / "web-edition-375-dark.png"), full_page=True)
    finally:
        context.close()


def test_signing_up_through_the_form(browser, server: PublicServer) -> None:  # type: ignore[no-untyped-def]
    context, pg = new_page(browser, 375)
    try:
        pg.goto(server.url + "/subscribe")
        pg.fill("#email", "browser.reader@example.org")
        pg.fill("#name", "Bea")
        pg.click("button[type=submit]")
        pg.wait_for_url(re.compile(r"/subscribe/sent$"))
        assert "Check your inbox" in pg.inner_text("main")
        pg.goto(server.url + confirm_link(confirmation_mail(server.root, "browser.reader@example.org")))
        pg.click("button[type=submit]")
        pg.wait_for_selector("text=You are subscribed")
    finally:
        context.close()


def test_the_preview_shows_the_web_page(tmp_path: Path) -> None:
    srv = PreviewServer(make_root(tmp_path))
    try:
        tab = srv.get(f"/editions/{DAY}/web")
        assert tab.status_code == 200 and f"/editions/{DAY}/web.html" in tab.text
        page = srv.get(f"/editions/{DAY}/web.html")
        assert page.status_code == 200 and "<article" in page.text and "/site-assets/site.css" in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        assert srv.get("/site-assets/site.css").status_code == 200
    finally:
        assert srv.stop() == 0
