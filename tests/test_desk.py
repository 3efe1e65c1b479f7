"""The editors' desk behind its sign-in: a real `newsletter serve --desk` subprocess driven by httpx.

No page or action without a session, CSRF on every form, a new session id at every sign-in, the sign-in
rate limit, roles, the single sign-on header believed only from the configured proxy's own address,
and every action in the audit log (`newsletter desk audit --export`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import copy_demo_stories
from tests.test_web_app import SECRET, PublicServer, clean_env

PASSWORD = "correct horse battery staple"
CONFIG = """\
[web]
hosts = ["newsletter.example.org", "127.0.0.1"]

[desk]
login_attempts = 3
trusted_header = "X-Remote-User"
trusted_proxies = ["127.0.0.2"]
"""


def desk_cli(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "desk", *args, "--root", str(root)],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET),
        timeout=60,
    )


def make_desk_root(base: Path, config: str = CONFIG) -> Path:
    root = base / "paper"
    root.mkdir()
    copy_demo_stories(root / "stories")
    (root / "newsletter.toml").write_text(config, encoding="utf-8")
    for name, role in (("ann", "admin"), ("bob", "editor"), ("eve", "editor"), ("dan", "editor"), ("sso", "editor")):
        done = desk_cli(root, "add-user", name, "--role", role, stdin=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicServer]:
    srv = PublicServer(make_desk_root(tmp_path_factory.mktemp("desk")), "--desk")
    try:
        yield srv
    finally:
        assert srv.stop() == 0


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page carries no form token"
    return match.group(1)


_addresses = iter(range(10, 250))


def visitor(srv: PublicServer, **kwargs: object) -> httpx.Client:
    """A browser at an address of its own (through the proxy header `serve` trusts from 127.0.0.1), so
    the sign-in limit per address one test reaches does not hold up another."""
    headers = {"X-Forwarded-For": f"203.0.113.{next(_addresses)}"}
    return httpx.Client(base_url=srv.url, timeout=30, headers=headers, **kwargs)  # type: ignore[arg-type]


def sign_in(srv: PublicServer, name: str, password: str = PASSWORD, client: httpx.Client | None = None) -> httpx.Client:
    client = client or visitor(srv)
    form = client.get("/desk/login")
    answer = client.post(
        "/desk/login", data={"csrf": csrf_of(form.text), "name": name, "password": password, "next": "/desk/"}
    )
    assert answer.status_code == 303, answer.text
    return client


def test_add_user_reads_the_password_from_stdin_and_refuses_empty_or_short(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    root.mkdir()
    copy_demo_stories(root / "stories")
    empty = desk_cli(root, "add-user", "zoe", "--role", "editor", stdin="\n")
    short = desk_cli(root, "add-user", "zoe", "--role", "editor", stdin="short\n")
    assert empty.returncode == 1 and "the password is empty" in empty.stderr
    assert short.returncode == 1 and "at least 12 characters" in short.stderr and "Traceback" not in short.stderr
    bad_role = desk_cli(root, "add-user", "zoe", "--role", "boss", stdin=PASSWORD + "\n")
    assert bad_role.returncode == 2
    made = desk_cli(root, "add-user", "Zoe", "--role", "editor", stdin=PASSWORD + "\n")
    assert made.returncode == 0 and "added zoe (editor)" in made.stdout
    stored = (root / "data" / "desk.sqlite").read_bytes()
    assert PASSWORD.encode() not in stored and b"$argon2id$" in stored
    listed = desk_cli(root, "users")
    assert "zoe\teditor\tactive" in listed.stdout


def test_no_page_or_action_without_a_session(desk: PublicServer) -> None:
    client = visitor(desk)
    for path in (
        "/desk/",
        "/desk/audit",
        "/desk/users",
        "/desk/editions/2016-12-30/en",
        "/desk/editions/2016-12-30/en/email",
    ):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/desk/login?next="), path
    for path in (
        "/desk/users",
        "/desk/users/ann",
        "/desk/language",
        "/desk/editions/2016-12-30/en/plan",
        "/desk/logout",
    ):
        answer = client.post(path, data={"csrf": "x", "name": "mallory", "role": "admin", "password": "p" * 20})
        assert answer.status_code == 403, path
    assert "mallory" not in desk_cli(desk.root, "users").stdout


def test_sign_in_page_is_served_without_script_and_with_its_own_csp(desk: PublicServer) -> None:
    page = httpx.get(desk.url + "/desk/login", timeout=30)
    assert page.status_code == 200 and 'action="/desk/login"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "<script" not in page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"


def test_a_form_without_the_session_token_is_refused(desk: PublicServer) -> None:
    client = sign_in(desk, "ann")
    users = client.get("/desk/users")
    assert users.status_code == 200
    no_token = client.post("/desk/users", data={"name": "mallory", "role": "admin", "password": "p" * 20})
    wrong = client.post(
        "/desk/users", data={"csrf": "forged", "name": "mallory", "role": "admin", "password": "p" * 20}
    )
    other_site = client.post(
        "/desk/users",
        data={"csrf": csrf_of(users.text), "name": "mallory", "role": "admin", "password": "p" * 20},
        headers={"Origin": "https://evil.example"},
    )
    assert (no_token.status_code, wrong.status_code, other_site.status_code) == (403, 403, 403)
    login_without_token = httpx.post(desk.url + "/desk/login", data={"name": "ann", "password": PASSWORD})
    assert login_without_token.status_code == 403
    assert "mallory" not in desk_cli(desk.root, "users").stdout
    good = client.post(
        "/desk/users", data={"csrf": csrf_of(users.text), "name": "carol", "role": "editor", "password": "p" * 20}
    )
    assert good.status_code == 303, good.headers
    print(desk_cli(desk.root, "audit").stdout, good.request.content, good.request.headers, good.text)
    assert good.headers["location"] == "/desk/users" and "carol\teditor" in desk_cli(desk.root, "users").stdout


def test_signing_in_makes_a_new_session_id_and_ends_the_one_carried_in(desk: PublicServer) -> None:
    # An id an attacker chose and planted in a victim's browser is never taken over at sign-in.
    planted = "an-id-the-attacker-chose-and-planted-0123456789"
    victim = visitor(desk)
    victim.cookies.set("newsletter_desk", planted, domain="127.0.0.1", path="/desk")
    sign_in(desk, "eve", client=victim)
    assert victim.cookies["newsletter_desk"] != planted
    assert visitor(desk, cookies={"newsletter_desk": planted}).get("/desk/").status_code == 303
    # Signing in again from a signed-in browser (another person at the same desk) gives a new id and
    # ends the old one, so a copy of the old cookie is worth nothing.
    old = victim.cookies["newsletter_desk"]
    token = csrf_of(visitor(desk).get("/desk/login").text)
    again = victim.post("/desk/login", data={"csrf": token, "name": "bob", "password": PASSWORD})
    assert again.status_code == 303 and victim.cookies["newsletter_desk"] != old
    assert visitor(desk, cookies={"newsletter_desk": old}).get("/desk/").status_code == 303
    assert "bob (" in victim.get("/desk/").text


def test_the_session_cookie_is_httponly_samesite_strict_and_scoped(desk: PublicServer) -> None:
    client = visitor(desk)
    form = client.get("/desk/login")
    answer = client.post("/desk/login", data={"csrf": csrf_of(form.text), "name": "bob", "password": PASSWORD})
    header = answer.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "path=/desk" in header
    assert "secure" not in header  # plain http here; behind https it is Secure
    secure = client.post(
        "/desk/login",
        data={"csrf": csrf_of(form.text), "name": "bob", "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "; secure" in secure.headers["set-cookie"].lower()


def test_sign_ins_are_limited_per_user_and_per_address(desk: PublicServer) -> None:
    client = visitor(desk)
    token = csrf_of(client.get("/desk/login").text)
    codes = [
        client.post("/desk/login", data={"csrf": token, "name": "dan", "password": f"guess {n}"}).status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    # The right password does not get through while the limit holds, and says when to come back.
    limited = visitor(desk).post("/desk/login", data={"csrf": token, "name": "dan", "password": PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    # Another address may still sign in as another user; the limited address may not try other names.
    other = httpx.Client(base_url=desk.url, timeout=30, headers={"X-Forwarded-For": "198.51.100.7"})
    for n in range(3):
        other.post("/desk/login", data={"csrf": token, "name": f"nobody{n}", "password": "guess"})
    blocked = other.post("/desk/login", data={"csrf": token, "name": "ann", "password": PASSWORD})
    assert blocked.status_code == 429
    fresh = httpx.Client(base_url=desk.url, timeout=30, headers={"X-Forwarded-For": "198.51.100.8"})
    assert fresh.post("/desk/login", data={"csrf": token, "name": "ann", "password": PASSWORD}).status_code == 303


def test_the_trusted_header_is_believed_only_from_the_proxys_own_address(desk: PublicServer) -> None:
    direct = httpx.Client(base_url=desk.url, timeout=30, headers={"X-Remote-User": "sso"})
    assert direct.get("/desk/").status_code == 303  # from 127.0.0.1: ignored
    # Claiming to come from the proxy through X-Forwarded-For changes nothing: the peer is what counts.
    spoofed = httpx.Client(
        base_url=desk.url, timeout=30, headers={"X-Remote-User": "sso", "X-Forwarded-For": "127.0.0.2"}
    )
    assert spoofed.get("/desk/").status_code == 303
    proxy = httpx.Client(
        base_url=desk.url.replace("127.0.0.1", "127.0.0.1"),
        timeout=30,
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
        headers={"X-Remote-User": "sso"},
    )
    page = proxy.get("/desk/")
    assert page.status_code == 200 and "sso (" in page.text
    unknown = httpx.Client(
        base_url=desk.url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2"),
        headers={"X-Remote-User": "stranger"},
    )  # fmt: skip
    assert unknown.get("/desk/").status_code == 303  # only existing accounts


def test_editors_cannot_manage_users(desk: PublicServer) -> None:
    client = sign_in(desk, "bob")
    assert client.get("/desk/users").status_code == 403
    token = csrf_of(client.get("/desk/audit").text)
    answer = client.post("/desk/users", data={"csrf": token, "name": "mallory", "role": "admin", "password": "p" * 20})
    assert answer.status_code == 403
    assert "Users" not in client.get("/desk/audit").text.split("<main", 1)[0]


def test_signing_out_ends_the_session(desk: PublicServer) -> None:
    client = sign_in(desk, "bob")
    cookie = client.cookies["newsletter_desk"]
    token = csrf_of(client.get("/desk/").text)
    assert client.post("/desk/logout", data={"csrf": token}).status_code == 303
    again = visitor(desk, cookies={"newsletter_desk": cookie})
    assert again.get("/desk/").status_code == 303


def test_every_action_is_in_the_audit_log_and_exports(desk: PublicServer) -> None:
    stranger = visitor(desk)
    token = csrf_of(stranger.get("/desk/login").text)
    assert stranger.post("/desk/login", data={"csrf": token, "name": "bob", "password": "guess"}).status_code == 401
    bob = sign_in(desk, "bob")
    assert bob.post("/desk/logout", data={"csrf": csrf_of(bob.get("/desk/").text)}).status_code == 303
    client = sign_in(desk, "ann")
    token = csrf_of(client.get("/desk/users").text)
    client.post("/desk/users", data={"csrf": token, "name": "fay", "role": "editor", "password": "f" * 20})
    page = client.get("/desk/audit")
    assert page.status_code == 200 and "login.refused" in page.text and "user.add" in page.text
    users_only = client.get("/desk/audit", params={"action": "user."}).text.split("<tbody>", 1)[1]
    assert "user.add" in users_only and "login.refused" not in users_only
    exported = desk_cli(desk.root, "audit", "--export", "--format", "jsonl")
    entries = [json.loads(line) for line in exported.stdout.splitlines()]
    actions = {(e["actor"], e["action"]) for e in entries}
    assert {("ann", "login"), ("ann", "user.add"), ("bob", "login.refused"), ("bob", "logout")} <= actions
    assert not any(PASSWORD in line or "guess" in line for line in exported.stdout.splitlines())
    as_csv = desk_cli(desk.root, "audit", "--export")
    assert as_csv.stdout.splitlines()[0] == "id,at,actor,action,target,detail,newsletter"
    assert len(as_csv.stdout.splitlines()) == len(entries) + 1


def test_sign_in_goes_back_only_to_a_desk_page(desk: PublicServer) -> None:
    client = visitor(desk)
    page = client.get("/desk/audit")
    assert page.headers["location"] == "/desk/login?next=/desk/audit"
    token = csrf_of(client.get(page.headers["location"]).text)
    for target, lands in (
        ("/desk/audit", "/desk/audit"),
        ("https://evil.example/", "/desk/"),
        ("//evil.example", "/desk/"),
    ):
        fresh = visitor(desk)
        answer = fresh.post("/desk/login", data={"csrf": token, "name": "ann", "password": PASSWORD, "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == lands, target


def test_each_person_chooses_the_desks_language(desk: PublicServer) -> None:
    client = sign_in(desk, "eve")
    assert '<html lang="en" dir="ltr">' in client.get("/desk/").text
    token = csrf_of(client.get("/desk/").text)
    assert (
        client.post("/desk/language", data={"csrf": token, "language": "ar", "back": "/desk/audit"}).status_code == 303
    )
    page = client.get("/desk/audit")
    assert '<html lang="ar" dir="rtl">' in page.text and "سجل التدقيق" in page.text
    assert client.post("/desk/language", data={"csrf": token, "language": "xx"}).status_code == 400
    client.post("/desk/language", data={"csrf": token, "language": ""})
    assert '<html lang="fr" dir="ltr">' in client.get("/desk/", headers={"Accept-Language": "fr-CA"}).text
