"""The reader's "manage my subscription" page (`/manage/<token>`), on a real `newsletter serve`: what it
shows, its CSRF-safe forms (each one state change of the reader base, in the reader's history), and in
headless Chromium at a phone's width in every language, right to left in Arabic.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from newsletter.config import load_settings
from newsletter.delivery import make_token
from newsletter.storage import Fields, open_readers
from tests.test_web_app import CONFIG, LIST_ID, SECRET, PublicServer, clean_env, csrf_of, make_root
from tests.test_web_browser_rtl import MEASURE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicServer]:
    root = make_root(tmp_path_factory.mktemp("manage"), CONFIG + '\n[list]\nlanguages = ["en", "fr", "ar"]\n')
    subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(root)],
        check=True,
        env=clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET),
        capture_output=True,
    )
    srv = PublicServer(root, "--site")
    try:
        yield srv
    finally:
        assert srv.stop() == 0


def reader(server: PublicServer, address: str, **fields: str) -> str:
    """`address` in the reader base; the path of its manage page."""
    with open_readers(load_settings(server.root)) as base:
        base.put(address, Fields(**fields))
    return f"/manage/{make_token(SECRET.encode(), LIST_ID, address)}"


def test_the_page_shows_the_reader_escaped_and_changes_nothing_on_get(server: PublicServer) -> None:
    path = reader(server, "zoe@example.org", name="<b>Zoé</b> & co", locale="fr", timezone="Asia/Tokyo")
    with server.client() as c:
        page = c.get(path)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "&lt;b&gt;Zoé&lt;/b&gt; &amp; co" in page.text
        assert "<b>Zoé</b>" not in page.text
        assert '<html lang="fr"' in page.text and "Votre abonnement" in page.text  # her language
        assert 'value="Asia/Tokyo"' in page.text and '<option value="fr" selected>français</option>' in page.text
        assert c.get(path.replace("/manage/", "/manage/x")).status_code in (400, 403)
        forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
        assert c.get(forged).status_code == 403
        assert c.get("/manage/not-a-token").status_code == 400
    with open_readers(load_settings(server.root)) as base:
        assert [e.kind for e in base.events.of("zoe@example.org")] == ["confirmed"]


def test_each_form_is_one_change_with_a_form_token_from_this_site_only(server: PublicServer) -> None:
    path = reader(server, "ann@example.org", name="Ann")
    with server.client() as c:
        token = csrf_of(c.get(path).text)
        assert c.post(path, data={"action": "update", "locale": "fr"}).status_code == 403  # no form token
        evil = {"Origin": "https://evil.example"}
        assert c.post(path, data={"csrf": token, "action": "pause", "days": "3"}, headers=evil).status_code == 403
        r = c.post(path, data={"csrf": token, "action": "update", "locale": "ar", "timezone": "Mars/Olympus"})
        assert r.status_code == 400 and "Europe/Paris" in r.text
        r = c.post(path, data={"csrf": token, "action": "update", "locale": "fr", "timezone": "Europe/Paris"})
        assert r.status_code == 303 and r.headers["location"].endswith("?done=update")
        assert "Enregistré." in c.get(r.headers["location"]).text
        assert c.post(path, data={"csrf": token, "action": "pause", "days": "3"}).status_code == 303
        assert c.post(path, data={"csrf": token, "action": "pause", "days": "-1"}).status_code == 400
    with open_readers(load_settings(server.root)) as base:
        record = base.get("ann@example.org")
        assert record is not None and (record.locale, record.timezone) == ("fr", "Europe/Paris")
        assert record.paused_until is not None and all(r.email != "ann@example.org" for r in base.enrolled())
        assert [(e.kind, e.via) for e in base.events.of("ann@example.org")][-2:] == [
            ("updated", "manage"),
            ("paused", "manage"),
        ]
    with server.client() as c:
        r = c.post(path, data={"csrf": token, "action": "leave_all"})
        assert r.status_code == 303
    with open_readers(load_settings(server.root)) as base:
        assert base.get("ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]
        assert "ann@example.org" in base and base.events.of("ann@example.org")[-1].via == "manage"


def test_an_address_without_a_record_can_still_leave(server: PublicServer) -> None:
    path = f"/manage/{make_token(SECRET.encode(), LIST_ID, 'listed@example.org')}"
    with server.client() as c:
        page = c.get(path)
        assert page.status_code == 200 and "We keep no record of this address." in page.text
        assert 'name="action" value="update"' not in page.text
        assert c.post(path, data={"csrf": csrf_of(page.text), "action": "leave"}).status_code == 303
    with open_readers(load_settings(server.root)) as base:
        assert "listed@example.org" in base


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "fr", "ar"])
def test_the_page_fits_a_phone_and_its_form_works_in_chromium(browser, server: PublicServer, lang: str) -> None:  # type: ignore[no-untyped-def]
    address = f"phone.{lang}@example.org"
    path = reader(server, address, name="Reader", locale=lang)
    context = browser.new_context(viewport={"width": 375, "height": 800})
    context.route(re.compile(r"^(?!http://127\.0\.0\.1:)"), lambda r: r.abort())
    page = context.new_page()
    try:
        page.goto(server.url + path)
        found = page.evaluate(MEASURE)
        assert found["dir"] == ("rtl" if lang == "ar" else "ltr")
        assert found["extra"] <= 0 and found["left"] == 0 and found["right"] == 0, found
        page.fill("#timezone", "America/New_York")
        page.click("form:has(#timezone) button")
        page.wait_for_url(re.compile(r"done=update"))
        assert page.locator("p.notice").is_visible()
        assert page.evaluate(MEASURE)["extra"] <= 0
    finally:
        context.close()
    with open_readers(load_settings(server.root)) as base:
        record = base.get(address)
        assert record is not None and record.timezone == "America/New_York" and record.locale == lang
