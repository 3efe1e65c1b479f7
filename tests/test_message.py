"""The MIME message: structure and headers, and the fast serializer equal to the email package's."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from newsletter.config import load_settings
from newsletter.edition.message import list_copy, serialize

NOW = datetime(2016, 12, 30, 5, tzinfo=UTC)
BODIES = [
    ("plain text\n", "<p>html</p>"),
    ("no final newline", "<p>x</p>\n"),
    ("", ""),
    ("trailing spaces   \nand tabs\t\n", "<p>a</p>   \n<p>b</p>\t"),
    ("=?utf-8?q?looks_encoded?= and = signs ==\n.leading dot\n", "<p>.dot</p>\n.\n"),
    ("مرحبا 世界 👩‍👩‍👧 e\u0301\n" * 40, "<p>" + "é" * 5000 + "</p>"),
    ("x" * 3000 + "\n", "<div>" + "y" * 20000 + "</div>"),
    ("CRLF\r\nlines\r\n", "<p>crlf</p>\r\n<p>two</p>"),
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    (root / "stories").mkdir()
    return load_settings(root, environ={})


@pytest.mark.parametrize(("text", "html"), BODIES)
def test_serialize_equals_as_bytes(settings, text, html):
    msg = list_copy(settings, "Subject — with a dash " + "long " * 30, text, html, NOW, key="k", unique="u")
    assert serialize(msg) == msg.as_bytes()


def test_serialize_equals_as_bytes_for_random_bodies(settings):
    rng = random.Random(20161230)
    alphabet = "ab \t\n=.-é世😀<>&\r"
    for _ in range(60):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        html = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 2000)))
        msg = list_copy(settings, "S", text, html, NOW, key="k", unique="u")
        assert serialize(msg) == msg.as_bytes()


def test_structure_headers_and_decoding(settings):
    text, html = "Héllo = world\n" + "w " * 200 + "\n", "<p>" + "x" * 5000 + "</p>"
    raw = serialize(list_copy(settings, "The Morning Brief — Friday", text, html, NOW, key="edition-x", unique="u"))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative" and not msg.defects
    plain, rich = msg.get_payload()
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content().replace("\r\n", "\n").rstrip("\n") == html
    assert msg["Subject"] == "The Morning Brief — Friday"
    assert msg["Message-ID"] == "<edition-x.u@newsletter.example.org>"
    assert msg["Date"] == "Fri, 30 Dec 2016 05:00:00 +0000"
    assert msg["Content-Language"] == "en" and msg["MIME-Version"] == "1.0"
    assert msg["List-Id"] == "The Morning Brief <morning-brief.newsletter.example.org>"
