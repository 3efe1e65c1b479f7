"""The preview of every language edition in headless Chromium at a phone's and a desktop's width: the
preview's own pages and the email and web page in their frames scroll sideways in neither direction
(the page is scrolled as far as it goes both ways: a right-to-left page can overflow to the left, where
`scrollWidth` alone does not show it)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.helpers import placeholder_png
from tests.test_preview import DAY, PreviewServer, clean_env
from tests.test_web_browser_rtl import MEASURE

pytestmark = pytest.mark.browser

PHOTO = placeholder_png(600, 338)
VIEWS = ("", "text", "web")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreviewServer]:
    from tests.helpers import make_demo_root

    root = make_demo_root(tmp_path_factory.mktemp("preview-rtl") / "paper", languages=True)
    srv = PreviewServer(root, env=clean_env())
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("lang", ["en", "fr", "ar"])
def test_no_preview_view_scrolls_sideways(browser, server: PreviewServer, lang: str, width: int) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.route("https://newsletter.example.org/images/**", lambda r: r.fulfill(body=PHOTO, content_type="image/png"))
    context.route(
        re.compile(r"^(?!http://127\.0\.0\.1:|https://newsletter\.example\.org/images/)"), lambda r: r.abort()
    )
    page = context.new_page()
    wide = []
    try:
        for view in VIEWS:
            page.goto(f"{server.url.rstrip('/')}/editions/{DAY}/{view}?lang={lang}")
            page.wait_for_load_state("load")
            for frame in page.frames:  # the preview page, and the email or web page in its frame
                frame.wait_for_load_state("load")
                found = frame.evaluate(MEASURE)
                if found["extra"] > 0 or found["left"] != 0 or found["right"] != 0:
                    wide.append((view or "email", frame.url.split("?")[0], found))
    finally:
        context.close()
    assert wide == [], f"views that scroll sideways at {width}px in {lang}: {wide}"
