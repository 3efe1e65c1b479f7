"""Every page of the web archive and the public app, in every language of the demo, at a phone's and a
desktop's width in headless Chromium: no horizontal overflow in either direction. A right-to-left page
can scroll to the left, where an element pushed off-screen with `left: -9999px` sits, so `scrollWidth`
alone is not enough: the page is scrolled as far as it goes both ways and must not move."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import copy_demo_config, placeholder_png
from tests.test_web_app import CONFIG, SECRET, PublicServer, clean_env, make_root

pytestmark = pytest.mark.browser

PHOTO = placeholder_png(600, 338)
LANGUAGES = ("en", "fr", "ar")
PAGES = ("index", "edition", "story", "404", "subscribe", "subscribe/sent")
# How far the page can be scrolled each way (scrollTo clamps), and how much wider it is than the window.
MEASURE = """() => {
  const d = document.documentElement, start = window.scrollX;
  window.scrollTo(-100000, 0); const left = window.scrollX;
  window.scrollTo(100000, 0); const right = window.scrollX;
  window.scrollTo(start, 0);
  return {extra: d.scrollWidth - d.clientWidth, left, right, dir: d.dir};
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicServer]:
    root = make_root(tmp_path_factory.mktemp("rtl-web"), CONFIG)
    demo = copy_demo_config(root.parent / "demo-config").read_text(encoding="utf-8")
    (root / "newsletter.toml").write_text(CONFIG + demo, encoding="utf-8")
    env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET)
    subprocess.run([sys.executable, "-m", "newsletter", "build", "--root", str(root)], check=True, env=env,
                   capture_output=True)  # fmt: skip
    srv = PublicServer(root, "--site")
    try:
        yield srv
    finally:
        assert srv.stop() == 0


def path_of(root: Path, lang: str, page: str) -> str:
    prefix = "" if lang == "en" else f"/{lang}"
    if page == "index":
        return f"{prefix}/"
    if page == "edition":
        return f"{prefix}/editions/2016-12-30/"
    if page == "story":
        folder = root / "site" / prefix.strip("/") / "2016" / "12" / "30"
        return f"{prefix}/2016/12/30/{sorted(p.name for p in folder.iterdir())[0]}/"
    if page == "404":
        return f"{prefix}/no-such-page/"
    return f"/{page}?lang={lang}"


@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_page_scrolls_sideways_in_any_language(browser, server: PublicServer, lang: str, width: int) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.route("https://newsletter.example.org/images/**", lambda r: r.fulfill(body=PHOTO, content_type="image/png"))
    context.route(
        re.compile(r"^(?!http://127\.0\.0\.1:|https://newsletter\.example\.org/images/)"), lambda r: r.abort()
    )
    page = context.new_page()
    wide = []
    try:
        for name in PAGES:
            page.goto(server.url + path_of(server.root, lang, name))
            page.wait_for_load_state("load")
            found = page.evaluate(MEASURE)
            assert found["dir"] == ("rtl" if lang == "ar" else "ltr"), (name, found)
            if found["extra"] > 0 or found["left"] != 0 or found["right"] != 0:
                wide.append((name, found))
    finally:
        context.close()
    assert wide == [], f"pages that scroll sideways at {width}px in {lang}: {wide}"


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_the_skip_link_shows_inside_the_window_when_focused(browser, server: PublicServer, lang: str) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 375, "height": 900})
    context.route(re.compile(r"^(?!http://127\.0\.0\.1:)"), lambda r: r.abort())
    page = context.new_page()
    try:
        page.goto(server.url + path_of(server.root, lang, "index"))
        page.keyboard.press("Tab")
        box = page.evaluate(
            "(() => { const r = document.activeElement.getBoundingClientRect();"
            " return [document.activeElement.className, r.left, r.right, r.width]; })()"
        )
        assert box[0] == "skip" and box[3] > 20 and box[1] >= 0 and box[2] <= 375, box
        assert page.evaluate(MEASURE)["left"] == 0
    finally:
        context.close()
