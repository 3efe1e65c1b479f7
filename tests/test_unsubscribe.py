"""Unsubscribe tokens, the one-click handler and the suppression list (real SQLite files)."""

from __future__ import annotations

import multiprocessing
import re
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from newsletter.config import load_settings
from newsletter.delivery.suppression import SuppressionList, suppression_path
from newsletter.delivery.unsubscribe import (
    ONE_CLICK,
    SECRET_ENV,
    ForgedTokenError,
    MalformedTokenError,
    MissingSecretError,
    handle_request,
    make_token,
    secret_from_env,
    unsubscribe_url,
    verify_token,
)
from newsletter.errors import ConfigError, NewsletterError, TokenError
from newsletter.storage.reader_open import legacy_suppression_path

SECRET = b"test-secret-0123456789abcdef"
LIST = "morning-brief.newsletter.example.org"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    root = tmp_path / "paper"
    root.mkdir()
    return load_settings(root, environ={})


def token_for(settings, address: str) -> str:
    return make_token(SECRET, settings.list.id, address)


# --- tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["ann@example.com", "Ann.Smith+news@Example.COM", "josé@exämple.de", "用户@例子.广告", "a" * 200 + "@x.io"],
)
def test_token_round_trips_and_is_url_safe(address: str) -> None:
    token = make_token(SECRET, LIST, address)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)
    assert quote(token, safe="") == token
    assert verify_token(SECRET, LIST, token) == address


def test_tokens_differ_per_address_and_list() -> None:
    a = make_token(SECRET, LIST, "ann@example.com")
    assert a != make_token(SECRET, LIST, "bob@example.com")
    assert a != make_token(SECRET, "other.example.org", "ann@example.com")
    assert a == make_token(SECRET, LIST, "ann@example.com")  # deterministic: a rerun sends the same link


def test_token_of_another_list_or_secret_is_forged() -> None:
    token = make_token(SECRET, LIST, "ann@example.com")
    with pytest.raises(ForgedTokenError):
        verify_token(SECRET, "other.example.org", token)
    with pytest.raises(ForgedTokenError):
        verify_token(b"another-secret", LIST, token)


def test_swapping_the_address_part_is_forged() -> None:
    ann = make_token(SECRET, LIST, "ann@example.com")
    bob = make_token(SECRET, LIST, "bob@example.com")
    spliced = bob.split(".")[0] + "." + ann.split(".")[1]
    with pytest.raises(ForgedTokenError):
        verify_token(SECRET, LIST, spliced)


def test_every_single_character_change_is_rejected() -> None:
    token = make_token(SECRET, LIST, "ann@example.com")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, ch in enumerate(token):
        if ch == ".":
            continue
        other = alphabet[(alphabet.index(ch) + 1) % len(alphabet)]
        tampered = token[:i] + other + token[i + 1 :]
        with pytest.raises(TokenError):
            verify_token(SECRET, LIST, tampered)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "no-dot-at-all" * 5,
        "YW5uQGV4YW1wbGUuY29t." + "A" * 42,  # MAC one character short
        "YW5uQGV4YW1wbGUuY29t." + "A" * 44,
        "YW5uQGV4YW1wbGUuY29t.." + "A" * 43,
        "YW5u QGV4.%s" % ("A" * 43),
        "YW5uQGV4YW1wbGUuY29t/." + "A" * 43,
        "x" * 5000 + "." + "A" * 43,
        "YW5uQGV4YW1wbGUuY29." + "A" * 43,  # non-canonical base64 of the address (trailing bits set)
        "AA." + "A" * 43,  # decodes to a NUL byte: no address
        "_w." + "A" * 43,  # decodes to 0xFF: not UTF-8
    ],
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        verify_token(SECRET, LIST, token)


def test_secret_from_env() -> None:
    assert secret_from_env({SECRET_ENV: "s3cret"}) == b"s3cret"
    for env in ({}, {SECRET_ENV: ""}, {SECRET_ENV: "   "}):
        with pytest.raises(MissingSecretError) as info:
            secret_from_env(env)
        assert isinstance(info.value, NewsletterError)
        assert SECRET_ENV in str(info.value)
        assert "\n" not in str(info.value)


def test_unsubscribe_url(settings) -> None:
    url = unsubscribe_url(settings, "ann@example.com", SECRET)
    assert url.startswith("https://newsletter.example.org/u/")
    assert verify_token(SECRET, settings.list.id, url.removeprefix(settings.list.unsubscribe_url)) == "ann@example.com"


# --- the handler --------------------------------------------------------------------------------------


def suppressed(settings, address: str) -> bool:
    with SuppressionList(suppression_path(settings)) as s:
        return address in s


def test_get_shows_a_confirmation_and_changes_nothing(settings) -> None:
    status, page = handle_request(settings, "GET", token_for(settings, "ann@example.com"), b"", None)
    assert status == 200
    assert "ann@example.com" in page
    assert '<form method="post" action="">' in page
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page
    assert not suppressed(settings, "ann@example.com")
    status, _ = handle_request(settings, "HEAD", token_for(settings, "ann@example.com"), b"", None)
    assert status == 200
    assert not suppressed(settings, "ann@example.com")


def test_one_click_post_unsubscribes(settings) -> None:
    token = token_for(settings, "Ann@Example.com")
    status, page = handle_request(settings, "POST", token, ONE_CLICK.encode(), "application/x-www-form-urlencoded")
    assert status == 200
    assert "Unsubscribed" in page
    assert suppressed(settings, "ann@example.com")  # case-insensitive
    with SuppressionList(suppression_path(settings)) as s:
        reason, source, _ = s.get("ANN@example.com") or ("", "", "")
        assert (reason, source) == ("unsubscribed", f"one-click {settings.list.id}")
        assert s.count() == 1
    # A second click is harmless; the GET page now says so.
    assert handle_request(settings, "POST", token, ONE_CLICK.encode(), None)[0] == 200
    status, page = handle_request(settings, "GET", token, b"", None)
    assert status == 200 and "Already unsubscribed" in page and "<form" not in page


def test_one_click_post_as_multipart_form_data(settings) -> None:
    body = b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--XyZ--\r\n'
    status, _ = handle_request(
        settings, "POST", token_for(settings, "bob@example.com"), body, "multipart/form-data; boundary=XyZ"
    )
    assert status == 200
    assert suppressed(settings, "bob@example.com")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", None),
        (b"List-Unsubscribe=Two-Click", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=One-Click&List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"),
        (b'{"List-Unsubscribe": "One-Click"}', "application/json"),
        (
            b'--XyZ\r\nContent-Disposition: form-data; name="other"\r\n\r\nOne-Click\r\n--XyZ--\r\n',
            "multipart/form-data; boundary=XyZ",
        ),
        (b"List-Unsubscribe=One-Click" + b"&x=" + b"y" * 70_000, "application/x-www-form-urlencoded"),
    ],
)
def test_post_without_the_one_click_body_is_refused(settings, body: bytes, content_type: str | None) -> None:
    status, _ = handle_request(settings, "POST", token_for(settings, "ann@example.com"), body, content_type)
    assert status == 400
    assert not suppressed(settings, "ann@example.com")


def test_bad_tokens_and_methods(settings) -> None:
    good = token_for(settings, "ann@example.com")
    forged = make_token(b"attacker-secret", settings.list.id, "ann@example.com")
    body = ONE_CLICK.encode()
    assert handle_request(settings, "POST", forged, body, None)[0] == 403
    assert handle_request(settings, "GET", forged, b"", None)[0] == 403
    assert handle_request(settings, "POST", good[:-3], body, None)[0] == 400
    assert handle_request(settings, "POST", "../../etc/passwd", body, None)[0] == 400
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        assert handle_request(settings, method, good, body, None)[0] == 405
    assert not suppressed(settings, "ann@example.com")


def test_hostile_address_is_escaped_on_the_page(settings) -> None:
    address = '"<script>alert(1)</script>"@example.com'
    status, page = handle_request(settings, "GET", token_for(settings, address), b"", None)
    assert status == 200
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_no_secret_means_unavailable_and_no_change(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    token = token_for(settings, "ann@example.com")
    monkeypatch.delenv(SECRET_ENV)
    status, page = handle_request(settings, "POST", token, ONE_CLICK.encode(), None)
    assert status == 503
    assert SECRET.decode() not in page
    assert not suppressed(settings, "ann@example.com")


# --- the suppression list -----------------------------------------------------------------------------


def test_suppression_list_basics(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "suppression.sqlite"
    with SuppressionList(path) as s:
        assert s.count() == 0
        assert "ann@example.com" not in s
        assert s.add("Ann@Example.com", "bounced", "smtp 550 5.1.1") is True
        assert s.add("ann@example.COM", "unsubscribed", "one-click") is False  # first reason kept
        assert "ANN@EXAMPLE.COM" in s
        assert 42 not in s
        assert s.get("ann@example.com") is not None and s.get("ann@example.com")[0] == "bounced"  # type: ignore[index]
        assert s.count() == 1
        assert [row[0] for row in s] == ["Ann@Example.com"]
        with pytest.raises(ValueError):
            s.add("bob@example.com", "because")
    # Another instance (another process, in real life) sees it: it is on disk.
    with SuppressionList(path) as again:
        assert "ann@example.com" in again


def test_suppression_path_default_and_config(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    root.mkdir()
    # The list lives in the reader base; `[mailing] suppression` names an older file to merge into it once.
    assert suppression_path(load_settings(root, environ={})) == root / "data" / "subscribers.sqlite"
    (root / "newsletter.toml").write_text('[mailing]\nsuppression = "state/unsub.db"\n')
    assert suppression_path(load_settings(root, environ={})) == root / "data" / "subscribers.sqlite"
    assert legacy_suppression_path(load_settings(root, environ={})) == root / "state" / "unsub.db"
    (root / "newsletter.toml").write_text("[mailing]\nsuppression = 3\n")
    with pytest.raises(ConfigError, match="suppression"):
        suppression_path(load_settings(root, environ={}))


def test_suppression_list_shared_between_threads(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    shared = SuppressionList(path)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            own = SuppressionList(path)  # a second connection writing concurrently, as the web server does
            for i in range(50):
                own.add(f"user{n}-{i}@example.com", "unsubscribed", "thread")
                assert f"user{n}-{i}@example.com" in shared
            own.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert shared.count() == 200
    shared.close()


def _add_in_process(path: str, n: int) -> None:
    s = SuppressionList(path)
    for i in range(25):
        s.add(f"p{n}-{i}@example.com", "unsubscribed", "process")
    s.close()


def test_suppression_list_shared_between_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_in_process, args=(path, n)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with SuppressionList(path) as s:
        assert s.count() == 75
