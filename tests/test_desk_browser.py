"""The editors' desk in headless Chromium against a real `newsletter serve --desk`: an editor signs in,
moves a story, leaves one out and types a subject, and `newsletter build` then makes exactly that
edition; axe finds no serious problem on any desk page, light or dark; at a phone's width and in Arabic
(right to left) no page scrolls sideways."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DEMO_DATE, check_eml_tool, copy_demo_config, copy_demo_stories
from tests.test_desk import PASSWORD, desk_cli
from tests.test_web_app import SECRET, PublicServer, clean_env
from tests.test_web_browser_rtl import MEASURE

pytestmark = pytest.mark.browser

DAY = DEMO_DATE.isoformat()
CONFIG = """\
[web]
hosts = ["127.0.0.1"]

"""
PAGES = ("/desk/", f"/desk/editions/{DAY}/en", f"/desk/editions/{DAY}/ar", "/desk/audit", "/desk/users")


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicServer]:
    root = tmp_path_factory.mktemp("desk-browser") / "paper"
    copy_demo_stories(root / "stories", languages=True)
    demo = copy_demo_config(root.parent / "demo-config").read_text(encoding="utf-8")
    (root / "newsletter.toml").write_text(CONFIG + demo, encoding="utf-8")
    for name, role in (("ann", "admin"), ("bob", "editor")):
        assert desk_cli(root, "add-user", name, "--role", role, stdin=PASSWORD + "\n").returncode == 0
    srv = PublicServer(root, "--desk")
    try:
        yield srv
    finally:
        assert srv.stop() == 0


def signed_in(browser, desk: PublicServer, name: str = "ann", **context):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    page.goto(desk.url + "/desk/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(desk.url + "/desk/")
    return ctx, page


def story_ids(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The stories of the edition as the page lists them, in order (left-out ones last)."""
    return page.eval_on_selector_all("input[name=story]", "els => els.map(e => e.value)")


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_an_editor_arranges_the_edition_and_build_makes_it(browser, desk: PublicServer) -> None:  # type: ignore[no-untyped-def]
    stories_before = tree_digest(desk.root / "stories")
    ctx, page = signed_in(browser, desk, "bob")
    try:
        page.goto(f"{desk.url}/desk/?date={DAY}")
        page.click(f"a[href^='/desk/editions/{DAY}/en']")
        ranked = story_ids(page)
        assert len(ranked) >= 4
        page.click("#story-1-1 button[value=down]")  # the first story after the lead, one place down
        moved = story_ids(page)
        assert moved[1:3] == [ranked[2], ranked[1]] and sorted(moved) == sorted(ranked)
        dropped = moved[-1]
        page.locator("li.story", has=page.locator(f"input[name=story][value='{dropped}']")).locator(
            "button[value=drop]"
        ).click()
        assert page.locator("li.story.dropped input[name=story]").get_attribute("value") == dropped
        page.fill("#subject", "The desk's own subject: talks, museums and crowds")
        page.click("button[value=titles]")
        assert page.locator(".subject").inner_text() == "The desk's own subject: talks, museums and crowds"
        assert "bob" in page.locator(".plan-state").inner_text()
    finally:
        ctx.close()
    env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET)
    built = subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(desk.root), "--date", DAY],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    manifest = json.loads((desk.root / "outbox" / DAY / "en" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["subject"] == "The desk's own subject: talks, museums and crowds"
    assert [s["id"] for s in manifest["stories"]] == [sid for sid in moved if sid != dropped]
    assert manifest["plan"]["updated_by"] == "bob"
    eml = desk.root / "outbox" / DAY / "en" / "newsletter.eml"
    assert b"Subject: The desk's own subject" in eml.read_bytes()
    assert tree_digest(desk.root / "stories") == stories_before  # the plan never touches a story file
    exported = desk_cli(desk.root, "audit", "--export", "--format", "jsonl").stdout.splitlines()
    actions = [json.loads(line)["action"] for line in exported if '"bob"' in line]
    assert [a for a in actions if a.startswith("plan.")] == ["plan.down", "plan.drop", "plan.titles"]
    checked = subprocess.run([sys.executable, str(check_eml_tool()), str(eml)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


AXE_RUN = """async () => {
  const r = await axe.run(document, {iframes: false, resultTypes: ['violations']});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '));
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_problem_on_any_desk_page(
    browser, desk: PublicServer, node_tools: Path, scheme: str
) -> None:  # type: ignore[no-untyped-def]
    axe = (node_tools / "node_modules" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")
    # bypass_csp: the desk's CSP allows no script, axe's included (the desk's own pages run none).
    found: dict[str, list[str]] = {}
    anonymous = browser.new_context(color_scheme=scheme, bypass_csp=True)
    page = anonymous.new_page()
    page.goto(desk.url + "/desk/login")
    page.add_script_tag(content=axe)
    found["/desk/login"] = page.evaluate(AXE_RUN)
    anonymous.close()
    ctx, page = signed_in(browser, desk, color_scheme=scheme, bypass_csp=True)
    try:
        for path in PAGES:
            page.goto(desk.url + path)
            page.add_script_tag(content=axe)
            found[path] = page.evaluate(AXE_RUN)
    finally:
        ctx.close()
    assert {path: bad for path, bad in found.items() if bad} == {}


@pytest.mark.parametrize(("locale", "width"), [("en-GB", 375), ("ar", 375), ("ar", 1280)])
def test_no_desk_page_scrolls_sideways(browser, desk: PublicServer, locale: str, width: int) -> None:  # type: ignore[no-untyped-def]
    ctx, page = signed_in(browser, desk, locale=locale, viewport={"width": width, "height": 800})
    try:
        for path in (*PAGES, "/desk/editions/2016-12-30/fr"):
            page.goto(desk.url + path)
            seen = page.evaluate(MEASURE)
            assert seen["extra"] <= 0 and seen["left"] == seen["right"], (path, seen)
            assert seen["dir"] == ("rtl" if locale == "ar" else "ltr"), path
        if locale == "ar":
            assert page.locator("html").get_attribute("lang") == "ar" and "تسجيل الخروج" in page.content()
    finally:
        ctx.close()


def test_the_desk_works_by_keyboard(browser, desk: PublicServer) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context()
    page = ctx.new_page()
    try:
        page.goto(desk.url + "/desk/login")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        page.focus("#name")
        page.keyboard.type("ann")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(desk.url + "/desk/")
        page.goto(f"{desk.url}/desk/editions/{DAY}/fr")
        before = story_ids(page)
        page.focus("#story-1-1 button[value=down]")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        after = story_ids(page)
        assert sorted(after) == sorted(before) and after.index(before[1]) > 1  # it (or its section) moved down
    finally:
        ctx.close()
