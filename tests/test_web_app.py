"""`newsletter serve`: a real uvicorn subprocess on 127.0.0.1, driven by httpx, for every behaviour of
the public app — one-click unsubscribe, double opt-in, rate limits, Host/CSRF/size refusals, --site."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes, policy
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from markupsafe import escape

from newsletter.config import load_settings
from newsletter.delivery import SuppressionList, make_token, subscriber_store, suppression_path
from newsletter.web.app.tokens import make_confirm_token
from tests.helpers import check_eml_tool, copy_demo_stories, free_port
from tests.helpers.uitext import english_left, visible_text

SECRET = "a-long-random-secret-for-the-tests"
LIST_ID = "morning-brief.newsletter.example.org"
CONFIG = """\
[web]
hosts = ["newsletter.example.org", "127.0.0.1"]
subscribe_per_ip = 5
subscribe_per_address = 2
max_body_kb = 4
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(extra)
    return env


class PublicServer:
    """`python -m newsletter serve` in a subprocess; ready once /healthz answers."""

    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--root", str(root), "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env if env is not None else clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"serve exited {self.proc.returncode}: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        pytest.fail("serve did not answer /healthz within 30 s")

    def client(self, ip: str = "198.51.100.1") -> httpx.Client:
        """A client that the app sees coming from `ip` (through the trusted proxy header, as behind nginx)."""
        return httpx.Client(base_url=self.url, timeout=10, headers={"X-Forwarded-For": ip})

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("serve did not stop within 15 s of Ctrl+C")
        return self.proc.returncode


def make_root(base: Path, config: str = CONFIG) -> Path:
    root = base / "paper"
    root.mkdir()
    copy_demo_stories(root / "stories", languages=True)
    (root / "newsletter.toml").write_text(config, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicServer]:
    root = make_root(tmp_path_factory.mktemp("serve"))
    env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET)
    subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(root)], check=True, env=env, capture_output=True
    )
    srv = PublicServer(root, "--site")
    try:
        yield srv
    finally:
        assert srv.stop() == 0


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page carries no form token"
    return match.group(1)


def confirmation_mail(root: Path, address: str, timeout: float = 10, lang: str = "") -> Path:
    """The confirmation email in the outbox (`lang`: the language edition's folder, on a multilingual list)."""
    settings = load_settings(root)
    day = datetime.now(settings.timezone).date().isoformat()
    path = root / "outbox" / day / lang / "confirm" / f"{address}.eml"
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            pytest.fail(f"no confirmation email at {path}")
        time.sleep(0.05)
    return path


def confirm_link(path: Path) -> str:
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(r"https://newsletter\.example\.org(/confirm/\S+)", text)
    assert match, text
    return match.group(1)


def subscribe(client: httpx.Client, address: str, **extra: str) -> httpx.Response:
    token = csrf_of(client.get("/subscribe").text)
    return client.post("/subscribe", data={"email": address, "csrf": token, "form": "subscribe", **extra})


# --- basics ----------------------------------------------------------------------------------------------


def test_healthz_and_security_headers(server: PublicServer) -> None:
    with server.client() as c:
        r = c.get("/healthz")
        assert r.status_code == 200 and r.text == "ok\n"
        page = c.get("/subscribe")
    csp = page.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert "<script" not in page.text and "server" not in page.headers


def test_a_foreign_host_is_refused(server: PublicServer) -> None:
    with server.client() as c:
        assert c.get("/subscribe", headers={"Host": "evil.example"}).status_code == 403
        assert c.get("/subscribe", headers={"Host": "newsletter.example.org"}).status_code == 200
        # A load balancer's probe by IP still gets its answer.
        assert c.get("/healthz", headers={"Host": "10.0.0.5"}).status_code == 200


# --- unsubscribe -----------------------------------------------------------------------------------------


def test_one_click_post_unsubscribes_and_a_repeat_is_harmless(server: PublicServer) -> None:
    token = make_token(SECRET.encode(), LIST_ID, "one.click@example.org")
    with server.client() as c:
        for _ in range(2):
            r = c.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            assert r.status_code == 200 and "Unsubscribed" in r.text
            assert "set-cookie" not in r.headers
    with SuppressionList(suppression_path(load_settings(server.root))) as s:
        assert s.get("one.click@example.org")[0] == "unsubscribed"  # type: ignore[index]


def test_one_click_posts_at_once_are_all_recorded_each_page_with_its_own_address(server: PublicServer) -> None:
    """A burst of one-click POSTs (they are written together, oneclick.py): every one recorded, every page right."""
    addresses = [f"burst{n}@example.org" for n in range(40)] + ["o&brien@example.org"]  # `&` shown escaped

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            posts = [
                c.post(f"/u/{make_token(SECRET.encode(), LIST_ID, a)}", data={"List-Unsubscribe": "One-Click"})
                for a in addresses
            ]
            return list(await asyncio.gather(*posts))

    # On a thread of its own: the burst needs an event loop of its own, whatever the test process's main
    # thread holds.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answers = pool.submit(asyncio.run, burst()).result(timeout=120)
    for address, r in zip(addresses, answers, strict=True):
        assert r.status_code == 200 and "Unsubscribed" in r.text
        assert str(escape(address)) in r.text and all(str(escape(o)) not in r.text for o in addresses if o != address)
    with SuppressionList(suppression_path(load_settings(server.root))) as s:
        assert [a for a in addresses if (s.get(a) or ("",))[0] != "unsubscribed"] == []


def test_get_shows_a_page_whose_button_posts_with_a_form_token(server: PublicServer) -> None:
    address = "get.then.post@example.org"
    token = make_token(SECRET.encode(), LIST_ID, address)
    settings = load_settings(server.root)
    with server.client() as c:
        page = c.get(f"/u/{token}")
        assert page.status_code == 200 and "Unsubscribe?" in page.text
        with SuppressionList(suppression_path(settings)) as s:
            assert address not in s  # a GET (a link scanner) changes nothing
        form = {"csrf": csrf_of(page.text), "List-Unsubscribe": "One-Click"}
        assert c.post(f"/u/{token}", data={**form, "csrf": "1.forged"}).status_code == 403
        assert c.post(f"/u/{token}", data=form, headers={"Origin": "https://evil.example"}).status_code == 403
        r = c.post(f"/u/{token}", data=form, headers={"Origin": "https://newsletter.example.org"})
        assert r.status_code == 200
        again = c.get(f"/u/{token}")  # already unsubscribed: the same page
        assert again.status_code == 200 and "Unsubscribe?" in again.text
    with SuppressionList(suppression_path(settings)) as s:
        assert address in s


def test_forged_malformed_and_wrong_method(server: PublicServer) -> None:
    good = make_token(SECRET.encode(), LIST_ID, "x@example.org")
    forged = make_token(b"another secret", LIST_ID, "x@example.org")
    body = {"List-Unsubscribe": "One-Click"}
    with server.client() as c:
        assert c.post(f"/u/{forged}", data=body).status_code == 403
        assert c.get(f"/u/{forged}").status_code == 403
        assert c.post(f"/u/{good[:-5]}", data=body).status_code == 400
        assert c.get("/u/not-a-token").status_code == 400
        assert c.post(f"/u/{good}", data={"List-Unsubscribe": "Something"}).status_code == 400
        assert c.put(f"/u/{good}").status_code == 405


# --- subscribe and confirm -------------------------------------------------------------------------------


def test_subscribe_mail_confirm_with_a_consent_record(server: PublicServer) -> None:
    address = "new.reader@example.org"
    store = subscriber_store(load_settings(server.root))
    with server.client("203.0.113.50") as c:
        r = subscribe(c, address, name="Ann <b>Reader</b>")
        assert r.status_code == 303 and r.headers["location"] == "/subscribe/sent"
        assert "Check your inbox" in c.get("/subscribe/sent").text
        mail = confirmation_mail(server.root, address)
        msg = message_from_bytes(mail.read_bytes(), policy=policy.default)
        assert msg["To"].addresses[0].addr_spec == address and "List-Unsubscribe" not in msg
        check = subprocess.run([sys.executable, str(check_eml_tool()), str(mail)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
        assert store.get(address).status == "pending"  # type: ignore[union-attr]
        link = confirm_link(mail)
        page = c.get(link)
        assert page.status_code == 200 and "Confirm my subscription" in page.text
        assert store.get(address).status == "pending"  # type: ignore[union-attr]  # a GET confirms nothing
        assert c.post(link, data={}).status_code == 403  # no form token
        done = c.post(link, data={"csrf": csrf_of(page.text)})
        assert done.status_code == 200 and "You are subscribed" in done.text
        assert c.post(link, data={"csrf": csrf_of(page.text)}).status_code == 200  # harmless again
    record = store.get(address)
    assert record is not None and record.status == "confirmed" and record.name == "Ann Reader"
    assert record.consent is not None and record.consent.form == "subscribe"
    assert len(record.consent.ip_hash) == 32 and "203.0.113.50" not in record.consent.ip_hash


def test_the_answer_is_the_same_for_every_kind_of_address(server: PublicServer) -> None:
    settings = load_settings(server.root)
    store = subscriber_store(settings)
    store.add("known.confirmed@example.org", status="confirmed")
    store.request("known.pending@example.org")
    with SuppressionList(suppression_path(settings)) as s:
        s.add("known.suppressed@example.org", "unsubscribed", "test")
    answers = []
    for n, address in enumerate(
        ["brand.new@example.org", "known.confirmed@example.org", "known.pending@example.org",
         "known.suppressed@example.org"]
    ):  # fmt: skip
        with server.client(f"192.0.2.{n + 10}") as c:
            r = subscribe(c, address)
            answers.append((r.status_code, r.headers.get("location"), r.text))
    assert len(set(answers)) == 1
    # The suppressed address gets a confirmation mail, and only confirming lifts the suppression.
    mail = confirmation_mail(server.root, "known.suppressed@example.org")
    with SuppressionList(suppression_path(settings)) as s:
        assert "known.suppressed@example.org" in s
    with server.client("192.0.2.99") as c:
        link = confirm_link(mail)
        assert c.post(link, data={"csrf": csrf_of(c.get(link).text)}).status_code == 200
    with SuppressionList(suppression_path(settings)) as s:
        assert "known.suppressed@example.org" not in s
    # An address already confirmed is sent nothing.
    time.sleep(0.5)
    day = datetime.now(settings.timezone).date().isoformat()
    assert not (server.root / "outbox" / day / "confirm" / "known.confirmed@example.org.eml").exists()


def test_expired_forged_and_malformed_confirmation_links(server: PublicServer) -> None:
    expired = make_confirm_token(
        SECRET.encode(), LIST_ID, "late@example.org", "subscribe", 48, now=time.time() - 49 * 3600
    )
    forged = make_confirm_token(b"not our secret", LIST_ID, "late@example.org", "subscribe", 48)
    with server.client() as c:
        assert c.get(f"/confirm/{expired}").status_code == 410
        assert c.get(f"/confirm/{forged}").status_code == 403
        assert c.get("/confirm/garbage").status_code == 400
        assert c.get(f"/confirm/{forged[:-3]}").status_code == 400


def test_the_honeypot_answers_as_usual_and_does_nothing(server: PublicServer) -> None:
    with server.client("198.51.100.77") as c:
        r = subscribe(c, "bot.filled@example.org", website="http://spam.example")
    assert r.status_code == 303 and r.headers["location"] == "/subscribe/sent"
    time.sleep(0.5)
    assert subscriber_store(load_settings(server.root)).get("bot.filled@example.org") is None


def test_invalid_address_is_shown_again_escaped(server: PublicServer) -> None:
    with server.client("198.51.100.78") as c:
        r = subscribe(c, '"><script>alert(1)</script>')
    assert r.status_code == 400 and "valid email address" in r.text
    assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text


def test_rate_limits_per_address_and_per_ip(server: PublicServer) -> None:
    with server.client("198.51.100.200") as c:
        codes = [subscribe(c, "limited@example.org").status_code for _ in range(3)]
        assert codes == [303, 303, 429]
    with server.client("198.51.100.201") as c:
        r = subscribe(c, "limited@example.org")  # the address's limit, from any IP
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    with server.client("198.51.100.202") as c:
        codes = [subscribe(c, f"ip{n}@example.org").status_code for n in range(6)]
        assert codes == [303] * 5 + [429]
        assert int(subscribe(c, "another@example.org").headers["retry-after"]) > 3000


def test_csrf_and_origin_on_the_subscribe_form(server: PublicServer) -> None:
    with server.client("198.51.100.150") as c:
        assert c.post("/subscribe", data={"email": "a1@example.org"}).status_code == 403  # no token, no Origin
        token = csrf_of(c.get("/subscribe").text)
        foreign = {"Origin": "https://evil.example"}
        assert c.post("/subscribe", data={"email": "a2@example.org", "csrf": token}, headers=foreign).status_code == 403
        # The form embedded in the archive's pages has no token: its Origin is ours.
        ours = {"Origin": "https://newsletter.example.org"}
        assert c.post("/subscribe", data={"email": "a3@example.org"}, headers=ours).status_code == 303


def test_no_open_redirect(server: PublicServer) -> None:
    with server.client("198.51.100.151") as c:
        r = subscribe(c, "redirect@example.org", next="https://evil.example/", redirect="//evil.example")
        assert r.headers["location"] == "/subscribe/sent"
        r = c.get(server.url + "//evil.example/")
        assert r.request.url.path == "//evil.example/"
        assert r.status_code == 404 and "location" not in r.headers


def test_the_webhooks_are_mounted_behind_the_same_guards(server: PublicServer) -> None:
    with server.client() as c:
        # Not configured here (no signing key): the webhook itself answers, past the 4 KB form limit.
        r = c.post("/webhooks/mailgun", content=b"{" + b" " * 8000 + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 503 and "NEWSLETTER_MAILGUN_SIGNING_KEY" in r.text
        assert c.post("/webhooks/mailgun", content=b"x" * 300_000).status_code == 413
        assert c.post("/webhooks/mailgun", headers={"Host": "evil.example"}, content=b"{}").status_code == 403


def test_oversized_bodies_are_refused(server: PublicServer) -> None:
    token = make_token(SECRET.encode(), LIST_ID, "big@example.org")
    big = b"List-Unsubscribe=One-Click&pad=" + b"x" * 8000
    with server.client() as c:
        assert c.post(f"/u/{token}", content=big).status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"x" * 1000

        assert c.post("/subscribe", content=chunks()).status_code == 413  # streamed, no length declared


def test_site_is_served_with_index_pages_and_a_404(server: PublicServer) -> None:
    with server.client() as c:
        page = c.get("/editions/2016-12-30/")
        assert page.status_code == 200 and "<article" in page.text
        story = c.get("/2016/12/30/syrian-regime-emboldened-ahead-of-russia-backed-peace-talks")
        assert story.status_code == 200 and "Hilal Khashan" in story.text
        assert c.get("/feed.xml").status_code == 200
        assert c.get("/unsubscribe").status_code == 200
        missing = c.get("/2016/12/30/nothing-here")
        assert missing.status_code == 404 and "Page not found" in missing.text
        assert c.get("/%2e%2e/newsletter.toml").status_code == 404
        assert c.get("/assets/site.css").headers["content-type"].startswith("text/css")


def test_without_the_secret_serve_refuses_to_start(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "serve", "--root", str(root), "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: NEWSLETTER_UNSUBSCRIBE_SECRET is not set")
    assert "Traceback" not in result.stderr


def test_several_workers_share_the_port(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    srv = PublicServer(root, "--workers", "2")
    try:
        token = make_token(SECRET.encode(), LIST_ID, "workers@example.org")
        with srv.client() as c:
            page = c.get(f"/u/{token}")
            # A form token from one worker is good in any other: they share the secret, not memory.
            for _ in range(4):
                r = c.post(f"/u/{token}", data={"csrf": csrf_of(page.text), "List-Unsubscribe": "One-Click"})
                assert r.status_code == 200
    finally:
        assert srv.stop() == 0
    assert urlsplit(srv.url).hostname == "127.0.0.1"


def test_the_cached_confirmation_html_is_what_a_full_render_makes(tmp_path: Path) -> None:
    from newsletter.web.app.mail import ConfirmationMailer, confirmation_message

    settings = load_settings(make_root(tmp_path))
    mailer = ConfirmationMailer(settings, 48)
    url = "https://newsletter.example.org/confirm/YWJj.ZGVm"
    for name in ("", 'Zoë <O\'Brien> & "co"'):
        for _ in range(2):  # the second one from the cache
            fast = message_from_bytes(mailer.message("a@example.org", name, url), policy=policy.default)
            full = message_from_bytes(
                confirmation_message(settings, "a@example.org", name, url, 48), policy=policy.default
            )
            for kind in ("html", "plain"):
                # The same document; quotes in text may be written as entities or not.
                got, want = (unescape(m.get_body((kind,)).get_content()) for m in (fast, full))  # type: ignore[union-attr]
                assert got == want
        html_part = fast.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "<O'Brien>" not in html_part and (not name or "&lt;O&#x27;Brien&gt;" in html_part)


# --- language editions -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicServer]:
    root = make_root(tmp_path_factory.mktemp("languages"), CONFIG + '\n[list]\nlanguages = ["en", "fr", "ar"]\n')
    srv = PublicServer(root)
    try:
        yield srv
    finally:
        assert srv.stop() == 0


def page_language(html: str) -> tuple[str, str]:
    match = re.search(r'<html lang="([^"]+)" dir="([^"]+)">', html)
    assert match, html[:200]
    return match.group(1), match.group(2)


def in_language(response: httpx.Response, lang: str) -> str:
    """The page's visible text, after checking it is in `lang`, right to left for Arabic, with no English left."""
    assert page_language(response.text) == (lang, "rtl" if lang == "ar" else "ltr"), response.url
    assert response.headers["content-language"] == lang
    text = visible_text(response.text)
    assert english_left(text, lang) == [], (str(response.url), text)
    return text


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        ("fr-CA,fr;q=0.9,en;q=0.5", "fr"),
        ("ar-EG", "ar"),
        ("de-DE,de;q=0.9,ar;q=0.4", "ar"),  # the first language the list publishes
        ("fr;q=0, en", "en"),  # q=0: not French
        ("de", "en"),
        ("", "en"),
        ("*;q=0.1, not a tag!!", "en"),
    ],
)
def test_the_page_language_follows_accept_language(multilingual: PublicServer, accept: str, lang: str) -> None:
    with multilingual.client() as c:
        assert page_language(c.get("/subscribe", headers={"Accept-Language": accept}).text)[0] == lang


def test_the_lang_parameter_and_the_form_field_outrank_accept_language(multilingual: PublicServer) -> None:
    with multilingual.client("198.51.100.60") as c:
        arabic = {"Accept-Language": "ar"}
        assert page_language(c.get("/subscribe?lang=fr", headers=arabic).text)[0] == "fr"
        assert page_language(c.get("/subscribe?lang=xx", headers=arabic).text)[0] == "ar"  # not an edition
        form = c.get("/subscribe?lang=fr")
        assert 'name="lang" value="fr"' in form.text
        r = c.post(
            "/subscribe", data={"email": "not an address", "csrf": csrf_of(form.text), "lang": "fr"}, headers=arabic
        )
        assert r.status_code == 400 and "Veuillez saisir une adresse e-mail valable." in in_language(r, "fr")


@pytest.mark.parametrize("lang", ["fr", "ar"])
def test_every_public_page_in_french_and_arabic(multilingual: PublicServer, lang: str) -> None:
    address = f"reader.{lang}@example.org"
    token = make_token(SECRET.encode(), LIST_ID, address)
    with multilingual.client(f"198.51.100.7{len(lang)}{ord(lang[0]) % 10}") as c:
        in_language(c.get(f"/subscribe?lang={lang}"), lang)
        in_language(c.get(f"/subscribe/sent?lang={lang}"), lang)
        in_language(c.get(f"/u/{token}?lang={lang}"), lang)
        page = c.get(f"/u/{token}", headers={"Accept-Language": lang})
        in_language(page, lang)
        done = c.post(f"/u/{token}?lang={lang}", data={"csrf": csrf_of(page.text), "List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and address in in_language(done, lang)
        for path, status in (
            ("/u/not-a-token", 400),
            (f"/u/{make_token(b'another secret', LIST_ID, address)}", 403),
            ("/confirm/not-a-token", 400),
            ("/nothing/here", 404),
        ):
            r = c.get(f"{path}?lang={lang}")
            assert r.status_code == status
            in_language(r, lang)
        refused = c.post(f"/u/{token}?lang={lang}", data={"csrf": "1.forged", "List-Unsubscribe": "One-Click"})
        assert refused.status_code == 403
        in_language(refused, lang)


def test_a_french_sign_up_gets_its_email_and_pages_in_french(multilingual: PublicServer) -> None:
    address = "lectrice@example.org"
    store = subscriber_store(load_settings(multilingual.root))
    with multilingual.client("198.51.100.90") as c:
        form = c.get("/subscribe", headers={"Accept-Language": "fr-FR"})
        in_language(form, "fr")
        data = {"email": address, "csrf": csrf_of(form.text), "form": "subscribe", "lang": "fr", "name": "Léa"}
        r = c.post("/subscribe", data={**data, "timezone": "Europe/Paris"})
        assert r.status_code == 303 and r.headers["location"] == "/subscribe/sent?lang=fr"
        assert "Consultez votre boîte de réception" in in_language(c.get(r.headers["location"]), "fr")
        mail = confirmation_mail(multilingual.root, address, lang="fr")
        msg = message_from_bytes(mail.read_bytes(), policy=policy.default)
        assert msg["Subject"] == "Confirmez votre abonnement à The Morning Brief"
        assert msg["Content-Language"] == "fr"
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "Léa, merci de confirmer votre abonnement" in " ".join(text.split())
        assert english_left(text, "fr") == [], text
        assert english_left(visible_text(html), "fr") == []
        assert '<html lang="fr" dir="ltr"' in html and "Confirmer mon abonnement" in html
        link = confirm_link(mail)
        assert link.endswith("?lang=fr")
        page = c.get(link)  # no Accept-Language: the link itself says French
        assert "Confirmer mon abonnement" in in_language(page, "fr")
        done = c.post(link, data={"csrf": csrf_of(page.text)})
        assert done.status_code == 200 and "Vous êtes abonné" in in_language(done, "fr")
    record = store.get(address)
    assert record is not None and (record.status, record.locale, record.timezone) == ("confirmed", "fr", "Europe/Paris")
    # The next send gives her the French edition (a real send of the store to the outbox).
    send = subprocess.run(
        [sys.executable, "-m", "newsletter", "send", "--root", str(multilingual.root), "--date", "2016-12-30"],
        env=clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET),
        capture_output=True,
        text=True,
    )
    assert send.returncode == 0, send.stderr
    (sent,) = (multilingual.root / "outbox").rglob(f"mail/{address}.eml")
    edition = message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert edition["Content-Language"] == "fr" and edition["To"].addresses[0].display_name == "Léa"
    body = edition.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert english_left(body, "fr") == [], body


def test_an_arabic_confirmation_email_is_right_to_left(multilingual: PublicServer) -> None:
    address = "qari@example.org"
    with multilingual.client("198.51.100.91") as c:
        form = c.get("/subscribe", headers={"Accept-Language": "ar"})
        assert subscribe_form_lang(form.text) == "ar"
        r = c.post("/subscribe", data={"email": address, "csrf": csrf_of(form.text), "lang": "ar"})
        assert r.status_code == 303
    msg = message_from_bytes(
        confirmation_mail(multilingual.root, address, lang="ar").read_bytes(), policy=policy.default
    )
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert '<html lang="ar" dir="rtl"' in html and msg["Subject"] == "أكّد اشتراكك في The Morning Brief"
    assert english_left(visible_text(html), "ar") == [] and english_left(text, "ar") == []


def subscribe_form_lang(html: str) -> str:
    match = re.search(r'name="lang" value="([^"]+)"', html)
    assert match
    return match.group(1)
