"""The Arabic edition in headless Chromium on phones: right to left, right-aligned, nothing overflowing."""

from __future__ import annotations

import pytest

from newsletter.config import load_settings
from newsletter.edition import build, write_edition
from tests.helpers import DEMO_DATE, placeholder_png

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def photo() -> bytes:
    return placeholder_png(1200, 675)


@pytest.fixture
def arabic_file(languages_root):
    settings = load_settings(languages_root, environ={}).for_language("ar")
    return write_edition(build(settings, DEMO_DATE)) / "newsletter.html"


@pytest.mark.parametrize("width", [320, 375])
def test_arabic_edition_on_phones(browser, arabic_file, photo, width, artifacts_dir):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.route("https://newsletter.example.org/images/**", lambda r: r.fulfill(body=photo, content_type="image/png"))
    try:
        page.goto(arabic_file.as_uri())
        page.wait_for_load_state("load")
        assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"page is {scroll_width}px wide in a {width}px viewport"
        overflowing = page.evaluate(
            """(w) => [...document.querySelectorAll('body *')]
                 .filter(e => e.getClientRects().length &&
                              (e.getBoundingClientRect().right > w + 1 || e.getBoundingClientRect().left < -1))
                 .map(e => e.tagName + ':' + (e.textContent || '').slice(0, 40))""",
            width,
        )
        assert overflowing == []
        # Headlines, standfirsts, bodies and section names: right to left and set against the right edge.
        blocks = page.evaluate(
            """() => [...document.querySelectorAll('h1, h2, h3, .nl-body p, .nl-body a')].map(e => {
                 const s = getComputedStyle(e), r = e.getBoundingClientRect();
                 return {text: e.textContent.trim().slice(0, 30), dir: s.direction, align: s.textAlign,
                         right: Math.round(r.right)};
               })"""
        )
        assert len(blocks) >= 8
        for b in blocks:
            assert b["dir"] == "rtl", b
            assert b["align"] in ("right", "start"), b
        # the right edges line up with the content column (24 px padding), not the left
        rights = {b["right"] for b in blocks}
        assert max(rights) - min(rights) <= 2, rights
        # the read-more links point the way Arabic reads
        links = page.evaluate("[...document.querySelectorAll('.nl-body a')].map(a => a.textContent.trim())")
        assert links and all(t.endswith("←") for t in links if "اقرأ" in t or "شاهد" in t)
        page.screenshot(path=str(artifacts_dir / f"edition-ar-{width}.png"), full_page=True)
    finally:
        page.close()
