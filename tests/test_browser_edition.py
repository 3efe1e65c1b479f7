"""What a person sees: the built email in headless Chromium at phone and desktop widths."""

from __future__ import annotations

import pytest

from newsletter.config import load_settings
from newsletter.edition.build import build, write_edition
from tests.helpers import placeholder_png, write_story

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def photo() -> bytes:
    return placeholder_png(1200, 675)


@pytest.fixture
def edition_file(demo_root):
    long_word = "Donaudampfschifffahrtsgesellschaftskapitänswitwenrentenversicherung" * 3
    long_url = "https://paper.example/" + "a-very-long-path-segment-" * 12
    write_story(
        demo_root,
        "long.md",
        f'title: "{long_word}"\npublished: 2016-12-30T05:50:00+01:00\npriority: 11\n'
        f'summary: "See {long_url} for {long_word}."\nsection: Europe',
        f"A body with {long_word} and a bare URL {long_url} and [a link]({long_url}).\n\n"
        f"    indented_code_that_does_not_wrap_by_itself = '{'x' * 90}'\n\n"
        f"```\n{long_url}{long_url}\n```\n",
    )
    result = build(load_settings(demo_root, environ={}))
    return write_edition(result) / "newsletter.html"


def _open(browser, path, width, photo):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.route("https://newsletter.example.org/images/**", lambda r: r.fulfill(body=photo, content_type="image/png"))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page


@pytest.mark.parametrize("width", [320, 375])
def test_no_horizontal_overflow_on_phones(browser, edition_file, photo, width, artifacts_dir):
    page = _open(browser, edition_file, width, photo)
    try:
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"page is {scroll_width}px wide in a {width}px viewport"
        # every element stays inside the viewport, long words and URLs included
        overflowing = page.evaluate(
            """(w) => [...document.querySelectorAll('body *')]
                 .filter(e => e.getBoundingClientRect().right > w + 1 && e.getClientRects().length)
                 .map(e => e.tagName + ':' + (e.textContent || '').slice(0, 40))""",
            width,
        )
        assert overflowing == []
        # single column under 480px: the card photo sits above its text, not beside it
        columns = page.evaluate(
            """() => [...document.querySelectorAll('.mj-column-per-36')].map(c => c.getBoundingClientRect().width)"""
        )
        assert columns and all(w >= width - 2 for w in columns)
        page.screenshot(path=str(artifacts_dir / f"edition-{width}.png"), full_page=True)
    finally:
        page.close()


def test_desktop_layout_and_screenshot(browser, edition_file, photo, artifacts_dir):
    page = _open(browser, edition_file, 1024, photo)
    try:
        body_width = page.evaluate(
            "Math.max(...[...document.querySelectorAll('div[style*=\"max-width:600px\"]')]"
            ".map(d => d.getBoundingClientRect().width))"
        )
        assert body_width == 600
        # cards with a photo have it beside the text on a wide screen
        cols = page.evaluate(
            "[...document.querySelectorAll('.mj-column-per-36')].map(c => Math.round(c.getBoundingClientRect().width))"
        )
        assert cols and all(200 <= w <= 230 for w in cols)
        loaded = page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        assert loaded
        assert page.get_by_role(
            "heading", name="Syrian regime emboldened ahead of Russia-backed peace talks"
        ).is_visible()
        shot = artifacts_dir / "edition-1024.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
    finally:
        page.close()
