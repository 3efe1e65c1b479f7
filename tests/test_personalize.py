"""Personalization: the fast path equals a plain EmailMessage build; hostile names cannot inject anything."""

from __future__ import annotations

import random
import re
import shutil
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.utils import getaddresses
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.delivery.personalize import (
    MAX_NAME,
    Personalizer,
    _clean,
    clean_name,
    compare_messages,
    format_address,
    header_display_name,
    parsed_view,
)
from newsletter.delivery.unsubscribe import make_token, verify_token
from newsletter.edition.build import build
from newsletter.edition.plain import display_width, personal_line

SECRET = b"personalize-secret"
DAY = date(2016, 12, 30)
NOW = datetime(2016, 12, 30, 5, 0, tzinfo=UTC)
from tests.helpers import REPO, copy_demo_stories, make_demo_root  # noqa: E402

HOSTILE = [
    "=?utf-8?q?Hi=0D=0ABcc:_evil@example.com?=",
    "=?utf-8?b?SGkNCkJjYzogZXZpbEBleGFtcGxlLmNvbQ==?=",
    "x =?utf-8?q?=0D=0ABcc:_evil@example.com?= y",
    "Eve <eve@evil.example>",
    "Eve <eve@evil.example>, Mallory <m@evil.example>",
    '"Quoted" \\ back\\slash',
    "group: a@evil.example, b@evil.example;",
    "Name\r\nBcc: evil@example.com",
    "Name\nX-Injected: yes",
    "Tab\there\x00nul\x1besc\x7fdel",
    "\u202eevil\u202c bidi \u2066isolate\u2069",
    "<script>alert(1)</script> & &amp; &lt;",
    "<b>x</b>",
    "{{ name }} {% if %} &#60;",
    "Maximilian Alexander Wolfgang Friedrich von und zu Hohenzollern-Sigmaringen-Veringen der Dritte",
    "' onmouseover='alert(1)",
    "José Ñandú Müller",
    "用户 名字 テスト",
    "محمد عبد الله",
    "👩‍👩‍👧 family 🇫🇷",
    "Zoë\u00a0non-breaking",
    "=?",
    "?=",
    "a" * 300,
    "Ä" * 300,
    "日本" * 200,
    "  lots   of\t\tspace  ",
    "",
    "\u200b\u200b",
]


@pytest.fixture(scope="module")
def personalizer(tmp_path_factory: pytest.TempPathFactory) -> Personalizer:
    root = make_demo_root(tmp_path_factory.mktemp("personalize") / "paper")
    settings = load_settings(root, environ={})
    built = build(settings, DAY)
    return Personalizer(settings, built.edition, secret=SECRET, date=NOW)


def random_name(rng: random.Random) -> str:
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        " \t\r\n\x00\x01\x1f\x7f\x85\u2028\u2029",
        "\"'\\<>()[]:;@,.=?_&#%!*+-/^`{|}~",
        "éñüßøåçÉÑÜ",
        "用户名字日本語テスト한국어",
        "عربيעברית",
        "😀👍🏽👩‍👩‍👧🇫🇷",
        "\u00a0\u200b\u200c\u200d\u202e\u2066\ufeff\u0301\u0308",
        "\ud7ff\ue000\uffff",
    ]
    parts = []
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.15:
            parts.append(rng.choice(["=?utf-8?q?", "?=", "=?", "=0D=0A", "Bcc: x@y.z", "<a@b.c>", "&amp;"]))
        else:
            pool = rng.choice(pools)
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 12))))
    return "".join(parts)


def random_address(rng: random.Random) -> str:
    local = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(1, 20)))
    local += rng.choice(["", "+news", ".x", "-y", "_z"])
    domain = rng.choice(["example.com", "mail.example.org", "xn--bcher-kva.de", "sub.domain.example.net"])
    return f"{local}@{domain}"


# --- fast == naive ---------------------------------------------------------------------------------------


def test_self_check_passes_with_the_default_templates(personalizer: Personalizer) -> None:
    assert personalizer.fast and personalizer.mismatch is None


@pytest.mark.parametrize("name", HOSTILE)
def test_fast_path_equals_emailmessage_build_for_hostile_names(personalizer: Personalizer, name: str) -> None:
    address = "reader@example.com"
    fast, naive = personalizer.message(address, name), personalizer.naive(address, name)
    assert compare_messages(fast, naive) is None
    check_safe(fast, address, name)


def test_fast_path_equals_emailmessage_build_for_random_subscribers(personalizer: Personalizer) -> None:
    rng = random.Random(20161230)
    for _ in range(120):
        address, name = random_address(rng), random_name(rng)
        fast, naive = personalizer.message(address, name), personalizer.naive(address, name)
        assert compare_messages(fast, naive) is None, (address, name)
        check_safe(fast, address, name)


def test_compare_messages_notices_differences(personalizer: Personalizer) -> None:
    a = personalizer.message("a@example.com", "Ann")
    assert compare_messages(a, personalizer.naive("a@example.com", "Anne")) is not None
    assert compare_messages(a, personalizer.naive("b@example.com", "Ann")) is not None
    assert compare_messages(a, a.replace(b"Good morning", b"Good evening")) == "decoded parts differ"


def check_safe(data: bytes, address: str, name: str) -> None:
    """The message has exactly its own headers, one recipient, short lines, and the name reads back exactly."""
    msg = message_from_bytes(data, policy=policy.default)
    names = [k.lower() for k in msg]
    assert sorted(names) == sorted(
        [
            "from", "to", "subject", "date", "message-id", "list-id", "content-language",
            "list-unsubscribe", "list-unsubscribe-post", "mime-version", "content-type",
            "auto-submitted", "feedback-id",
        ]
    )  # fmt: skip
    assert not msg.defects and all(not msg[k].defects for k in msg)
    to = msg["To"]
    assert [a.addr_spec for a in to.addresses] == [address]
    assert to.addresses[0].display_name == header_display_name(name)
    raw_to = dict(msg.raw_items())["To"]
    rfc = str(make_header(decode_header(re.sub(r"\r?\n[ \t]", " ", raw_to))))
    if "=?" in raw_to:  # an encoded-word: an RFC 2047 decoder reads the same name
        assert rfc == f"{header_display_name(name)} <{address}>"
    # A reader that decodes first and parses the addresses after still finds one recipient, the right one.
    assert [a for _, a in getaddresses([rfc])] == [address]
    for value in (str(v) for v in msg.values()):
        assert "\r" not in value and "\n" not in value
    assert "=?" not in header_display_name(name)
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    body_lines = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76  # quoted-printable lines
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    cleaned = clean_name(name)
    assert (personal_line(f"Good morning, {cleaned}.") if cleaned else "Good morning.") in text
    # The greeting is plain text that looks like nothing else, and fits the text part's lines.
    greeting = text[text.index("Good morning") : text.index("\n\nView this email")]
    assert not re.search(r"<[^>]*>|&#?\w+;|\{\{|\{%", greeting)
    assert max(display_width(line) for line in greeting.split("\n")) <= 72
    # Nor does any part show a name as a template tag that failed to render.
    html = msg.get_body(("html",)).get_content()
    assert not re.search(r"\{\{|\{%|%\}|\}\}", text + html)


def test_unsubscribe_parts_are_personal(personalizer: Personalizer) -> None:
    settings = personalizer.settings
    msg = message_from_bytes(personalizer.message("ann@example.com", "Ann"), policy=policy.default)
    token = make_token(SECRET, settings.list.id, "ann@example.com")
    url = settings.list.unsubscribe_url + token
    assert msg["List-Unsubscribe"] == f"<{url}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert verify_token(SECRET, settings.list.id, token) == "ann@example.com"
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert f'href="{url}"' in html and url in text
    other = message_from_bytes(personalizer.message("bob@example.com", "Bob"), policy=policy.default)
    assert other["Message-ID"] != msg["Message-ID"]
    # The Message-ID is stable per edition and recipient: a copy resent after a crash has the same id.
    again = message_from_bytes(personalizer.message("ann@example.com", "Ann"), policy=policy.default)
    assert again["Message-ID"] == msg["Message-ID"]
    assert re.fullmatch(r"<2016-12-30\.[a-z2-7]{24}@newsletter\.example\.org>", msg["Message-ID"])


def test_mailto_unsubscribe_when_configured(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    copy_demo_stories(root / "stories")
    (root / "newsletter.toml").write_text('[list]\nunsubscribe_mailto = "leave@newsletter.example.org"\n')
    settings = load_settings(root, environ={})
    p = Personalizer(settings, build(settings, DAY).edition, secret=SECRET, date=NOW)
    assert p.fast
    msg = message_from_bytes(p.message("ann@example.com", "Ann"), policy=policy.default)
    token = make_token(SECRET, settings.list.id, "ann@example.com")
    assert msg["List-Unsubscribe"] == (
        f"<https://newsletter.example.org/u/{token}>, "
        f"<mailto:leave@newsletter.example.org?subject=unsubscribe%20{token}>"
    )
    assert compare_messages(p.message("ann@example.com", "Ann"), p.naive("ann@example.com", "Ann")) is None


def test_templates_the_fast_path_cannot_splice_fall_back_to_full_rendering(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    copy_demo_stories(root / "stories")
    shutil.copytree(REPO / "templates", root / "templates")
    header = root / "templates" / "partials" / "header.mjml.j2"
    header.write_text(header.read_text().replace("{{ greeting_html }}", "{{ greeting_html | upper }}"))
    settings = load_settings(root, environ={})
    p = Personalizer(settings, build(settings, DAY).edition, secret=SECRET, date=NOW)
    assert not p.fast and p.mismatch
    msg = message_from_bytes(p.message("ann@example.com", "Ann"), policy=policy.default)
    assert "GOOD MORNING, ANN" in msg.get_body(("html",)).get_content()


def test_name_in_an_attribute_is_escaped_for_attributes(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    copy_demo_stories(root / "stories")
    shutil.copytree(REPO / "templates", root / "templates")
    header = root / "templates" / "partials" / "header.mjml.j2"
    header.write_text(
        header.read_text().replace("{{ greeting_html }}", '<span title="{{ greeting }}">{{ greeting }}</span>')
    )
    settings = load_settings(root, environ={})
    p = Personalizer(settings, build(settings, DAY).edition, secret=SECRET, date=NOW)
    assert p.fast
    name = 'Eve" onmouseover="alert(1)'
    assert compare_messages(p.message("e@example.com", name), p.naive("e@example.com", name)) is None
    html = message_from_bytes(p.message("e@example.com", name), policy=policy.default).get_body(("html",))
    assert 'title="Good morning, Eve&quot; onmouseover=&quot;alert(1)"' in html.get_content()


# --- names and addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Ann   Smith ", "Ann Smith"),
        ("Ann\r\nBcc: x@y.z", "Ann Bcc: x@y.z"),
        ("A\x00B\x1bC", "A B C"),
        ("\u202eevil\u202c", "evil"),
        ("zero\u200bwidth", "zerowidth"),
        ("👩\u200d👩\u200d👧", "👩\u200d👩\u200d👧"),  # ZWJ kept: emoji sequences, Indic and Persian scripts
        ("Zoe\u0308", "Zoë"),  # NFC
        (None, ""),
        (42, ""),
        ("x" * 500, "x" * MAX_NAME),
    ],
)
def test_clean_name(raw: object, clean: str) -> None:
    assert clean_name(raw) == clean


NAMES = [
    "Ann Smith", "José Ñandú", "用户 名字", "O'Brien & Sons", "Jose\u0301", " Ann", "Ann ", "Ann  Smith",
    "Ann\u00a0Smith", "Ann\tSmith", "{{ x }}", "50% {%", "👩\u200d👩\u200d👧", "سارا\u200cجان", "x" * MAX_NAME,
    "x" * (MAX_NAME + 1), "é" * MAX_NAME + " y", "\u2060", "a\u2028b", "\ue000private", "\U000e0001tag", "Ω",
]  # fmt: skip


@pytest.mark.parametrize("raw", NAMES)
def test_clean_name_takes_a_clean_name_as_it_is_and_the_quick_path_agrees(raw: str) -> None:
    assert clean_name(raw) == _clean(raw)  # the quick check for an already clean name changes nothing
    assert clean_name(clean_name(raw)) == clean_name(raw)


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("", "ann@example.com"),
        ("Ann Smith", "Ann Smith <ann@example.com>"),
        ("Smith, Ann", '"Smith, Ann" <ann@example.com>'),
        ('Ann "Nan" O\\Brien', '"Ann \\"Nan\\" O\\\\Brien" <ann@example.com>'),
        ("Eve <eve@evil.example>", '"Eve <eve@evil.example>" <ann@example.com>'),
        ("José", "=?utf-8?b?Sm9zw6k=?= <ann@example.com>"),
        ("Müller-Lüdenscheidt Hans", "=?utf-8?q?M=C3=BCller-L=C3=BCdenscheidt_Hans?= <ann@example.com>"),
    ],
)
def test_format_address(name: str, header: str) -> None:
    assert format_address(name, "ann@example.com") == header


def test_encoded_word_names_are_shown_literally() -> None:
    name = "=?utf-8?q?Hi=0D=0ABcc:_evil@example.com?="
    header = format_address(name, "ann@example.com")
    assert "=?utf-8?q?Hi" not in header  # never passed through raw for a reader to decode
    decoded = str(make_header(decode_header(header)))
    assert "\r" not in decoded and "\n" not in decoded
    assert decoded.replace("\u2060", "").startswith("=?utf-8?q?Hi=0D=0ABcc")  # shown as text
    assert getaddresses([decoded]) == [(decoded.removesuffix(" <ann@example.com>"), "ann@example.com")]


def test_address_syntax_in_an_encoded_name_is_dropped_from_the_header_only(personalizer: Personalizer) -> None:
    name = "José <eve@evil.example>, Mallory"
    assert format_address(name, "a@example.com") == "=?utf-8?q?Jos=C3=A9_eve_evil=2Eexample_Mallory?= <a@example.com>"
    msg = message_from_bytes(personalizer.message("a@example.com", name), policy=policy.default)
    assert "Good morning, José \u2039eve@evil.example\u203a, Mallory." in msg.get_body(("plain",)).get_content()
    assert "Good morning, José &lt;eve@evil.example&gt;, Mallory" in msg.get_body(("html",)).get_content()


def test_non_ascii_names_decode_back_exactly(personalizer: Personalizer) -> None:
    for name in ["José Ñandú", "用户" * 40, "Ä" * MAX_NAME, "محمد", "Zoë 👍🏽 Ångström-Łukasz"]:
        data = personalizer.message("n@example.com", name)
        view = parsed_view(data)
        to = dict(view.headers)["to"]
        assert to == f"{clean_name(name)} <n@example.com>"
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
