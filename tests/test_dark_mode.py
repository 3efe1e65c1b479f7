"""Dark mode as readers see it: the demo edition in headless Chromium with the colour scheme emulated
light and dark, at a phone's and the email's own width. Screenshots go to test-artifacts/.

Readable in both: axe-core's `color-contrast` rule (WCAG AA: 4.5:1, 3:1 for large text) finds nothing.
Designed, not inverted: every colour the palette gives a surface or text changes in dark mode (Apple
Mail's `prefers-color-scheme`, and Outlook.com's `[data-ogsc]`/`[data-ogsb]` alike), photos keep a light
mat, and the plain-text part does not change."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import load_settings
from newsletter.edition.build import build, write_edition
from newsletter.edition.templates import make_environment
from tests.helpers import DEMO_DATE, copy_demo_stories, placeholder_png

pytestmark = pytest.mark.browser

WIDTHS = (375, 600)

# Computed colours of the parts of the email, as the browser resolves them.
_COLOURS = """() => {
  const pick = (sel, prop) => { const e = document.querySelector(sel); return e ? getComputedStyle(e)[prop] : null; };
  return {
    page: getComputedStyle(document.body).backgroundColor,
    card: pick('.nl-bg-card > table', 'backgroundColor'),
    masthead: pick('.nl-bg-masthead > table', 'backgroundColor'),
    body_text: pick('.nl-body p', 'color'),
    headline: pick('.nl-lead-headline h1', 'color'),
    card_headline: pick('.nl-headline a', 'color'),
    standfirst: pick('.nl-c-standfirst p', 'color'),
    meta: pick('.nl-c-muted div', 'color'),
    link: pick('.nl-body a', 'color'),
    kicker: pick('.nl-kicker div', 'color'),
    footer_link: pick('.nl-footer a', 'color'),
    rule: pick('.nl-rule p', 'borderTopColor'),
    section: pick('.nl-section h2', 'color'),
  };
}"""

# Every text and background colour in use, element by element (only elements that show text or a fill).
_ALL_COLOURS = """() => {
  const out = { text: new Set(), fill: new Set() };
  for (const e of document.querySelectorAll('body, body *')) {
    if (e.tagName === 'IMG') continue;
    const s = getComputedStyle(e);
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (own) out.text.add(s.color);
    if (s.backgroundColor !== 'rgba(0, 0, 0, 0)') out.fill.add(s.backgroundColor);
  }
  return { text: [...out.text], fill: [...out.fill] };
}"""


def rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


@pytest.fixture(scope="module")
def edition(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """The demo edition written to an outbox; its text part; the template palette."""
    root = tmp_path_factory.mktemp("paper")
    copy_demo_stories(root / "stories")
    settings = load_settings(root, environ={})
    result = build(settings, DEMO_DATE)
    palette = make_environment(settings).get_template("palette.j2").module
    colours = {name: getattr(palette, name) for name in ("light", "dark", "text_roles", "surfaces")}
    return write_edition(result) / "newsletter.html", result.rendered.text, colours


@pytest.fixture(scope="module")
def axe_source(node_tools: Path) -> str:
    return (node_tools / "node_modules" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")


def open_email(browser, path: Path, width: int, scheme: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    photo = placeholder_png(1200, 675)
    # Photos come from hosts the tests cannot reach: a flat grey stands in for every one of them.
    page.route(re.compile(r"^https://"), lambda route: route.fulfill(body=photo, content_type="image/png"))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert page.evaluate(f"matchMedia('(prefers-color-scheme: {scheme})').matches")
    return context, page


def contrast_violations(page, axe: str) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """axe's color-contrast rule on the whole email: the failing nodes (with axe's reason), and how many passed."""
    page.add_script_tag(content=axe)
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, { runOnly: { type: 'rule', values: ['color-contrast'] } });
          const nodes = (list) => list.flatMap(v => v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary));
          const passed = r.passes.flatMap(v => v.nodes).length;
          return { bad: nodes(r.violations).concat(nodes(r.incomplete)), passed };
        }"""
    )
    return result["bad"], result["passed"]


@pytest.fixture(scope="module")
def seen(browser, edition, axe_source, artifacts_dir):  # type: ignore[no-untyped-def]
    """Per (scheme, width): the colours, every colour in use, axe's findings; a screenshot of each."""
    path = edition[0]
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for scheme in ("light", "dark"):
        for width in WIDTHS:
            context, page = open_email(browser, path, width, scheme)
            try:
                page.screenshot(path=str(artifacts_dir / f"email-{scheme}-{width}.png"), full_page=True)
                out[scheme, width] = {
                    "colours": page.evaluate(_COLOURS),
                    "all": page.evaluate(_ALL_COLOURS),
                    "scroll_width": page.evaluate("document.documentElement.scrollWidth"),
                    "photos_shown": page.evaluate(
                        "[...document.images].every(i => i.complete && i.naturalWidth === 1200)"
                    ),
                    "mat": page.evaluate(
                        "() => [...document.querySelectorAll('.nl-img img')].map(i => "
                        "[getComputedStyle(i).backgroundColor, getComputedStyle(i).paddingTop])"
                    ),
                }
                out[scheme, width]["axe"] = contrast_violations(page, axe_source)
            finally:
                context.close()
    return out


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", WIDTHS)
def test_axe_finds_no_contrast_problem(seen, scheme: str, width: int) -> None:
    bad, passed = seen[scheme, width]["axe"]
    assert bad == []
    assert passed >= 40  # it did look at the text: every headline, paragraph, link and meta line
    assert seen[scheme, width]["scroll_width"] <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_dark_mode_changes_every_surface_and_text_colour(seen, edition, width: int) -> None:
    light, dark = seen["light", width]["colours"], seen["dark", width]["colours"]
    assert None not in light.values()
    palette = edition[2]
    for part in light:
        if part == "masthead":  # the masthead stays navy, only a shade lighter
            assert light[part] == rgb(palette["light"]["masthead"]) != dark[part]
            continue
        assert light[part] != dark[part], part
    assert dark["page"] == rgb(palette["dark"]["page"]) and dark["card"] == rgb(palette["dark"]["card"])
    assert dark["body_text"] == rgb(palette["dark"]["ink"]) and dark["link"] == rgb(palette["dark"]["accent"])
    # Nothing is left in a light-scheme colour: no white card, no dark-grey text on the dark page.
    used = seen["dark", width]["all"]
    dark_text = {rgb(palette["dark"][r]) for r in palette["text_roles"]}
    light_text = {rgb(palette["light"][r]) for r in palette["text_roles"]} - dark_text
    light_fill = {rgb(palette["light"][r]) for r in palette["surfaces"]}
    assert set(used["text"]) <= dark_text, used["text"]
    assert not light_text & set(used["text"])
    assert not light_fill & set(used["fill"]), used["fill"]


def test_photos_keep_a_light_mat_in_dark_mode(seen, edition) -> None:
    palette = edition[2]
    for width in WIDTHS:
        assert seen["dark", width]["photos_shown"] and seen["light", width]["photos_shown"]
        assert seen["dark", width]["mat"] and all(
            bg == rgb(palette["dark"]["mat"]) and pad != "0px" for bg, pad in seen["dark", width]["mat"]
        )
        # In light mode the photo sits on the card as it always did: no mat, no padding.
        assert all(pad == "0px" for _, pad in seen["light", width]["mat"])


def test_outlook_com_forced_dark_mode_gets_the_palette(browser, edition, axe_source) -> None:  # type: ignore[no-untyped-def]
    """Outlook.com darkens an email itself and marks what it changed with data-ogsc / data-ogsb; our rules
    for those attributes put the palette's dark colours back, readable."""
    path, _, palette = edition
    context, page = open_email(browser, path, 600, "light")
    try:
        page.evaluate("document.body.setAttribute('data-ogsc', ''); document.body.setAttribute('data-ogsb', '')")
        colours = page.evaluate(_COLOURS)
        assert colours["card"] == rgb(palette["dark"]["card"])
        assert colours["body_text"] == rgb(palette["dark"]["ink"])
        assert colours["headline"] == rgb(palette["dark"]["headline"])
        assert colours["link"] == rgb(palette["dark"]["accent"])
        assert contrast_violations(page, axe_source)[0] == []
    finally:
        context.close()


def test_the_text_part_knows_nothing_of_colours(edition) -> None:
    text = edition[1]
    assert "#" not in "".join(ln for ln in text.splitlines() if "://" not in ln)
    assert "color" not in text.lower() and "prefers-color-scheme" not in text
