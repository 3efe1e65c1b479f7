"""The plain-text part: 72 columns, set-off headings, numbered references, no HTML."""

from __future__ import annotations

import re

import pytest

from newsletter.config import load_settings
from newsletter.edition.build import build
from newsletter.edition.plain import _fill, display_width, personal_line, plain, wrap
from tests.helpers import DEMO_DATE, write_story


@pytest.fixture
def text(demo_root) -> str:
    return build(load_settings(demo_root, environ={}), DEMO_DATE).rendered.text


def test_lines_fit_72_columns_except_whole_urls(text):
    for line in text.splitlines():
        if display_width(line) > 72:
            assert re.fullmatch(r"(\[\d+\] )?https://\S+|\s*https://\S+", line), line  # a URL alone


def test_no_html_tags_entities_or_template_leftovers(text):
    assert not re.search(r"</?[a-z][a-z0-9]*\b[^>]*>", text)
    assert not re.search(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", text, re.I)
    assert "{{" not in text and "{%" not in text


def test_headings_sections_and_references(text):
    lines = text.splitlines()
    assert "THE MORNING BRIEF" in lines[0]
    title = "Syrian regime emboldened ahead of Russia-backed peace talks"
    i = lines.index(title)
    assert lines[i + 1] == "=" * len(title)
    assert "SYRIA" in lines and "EUROPE" in lines
    # every [n] used in the text is listed as "[n] https://..." under its story
    used = set(re.findall(r"\[(\d+)\](?! http)", text))
    listed = dict(re.findall(r"^\[(\d+)\] (https://\S+)$", text, re.M))
    assert used and used <= set(listed)
    assert listed["1"].endswith("/syrian-regime-emboldened-ahead-of-russia-backed-peace-talks")
    assert "Unsubscribe:\nhttps://newsletter.example.org/unsubscribe" in text


def test_markdown_links_lists_and_quotes(empty_root):
    write_story(
        empty_root,
        "x.md",
        'title: "Links"\npublished: 2016-12-30T05:00:00+01:00',
        "See [the report](https://paper.example/report) and [again](https://paper.example/report).\n\n"
        "- first point\n- second point with a [link](/relative)\n\n> A quoted line that is long enough to need "
        "wrapping when it is shown inside the plain text part of the email.\n\n1. one\n2. two\n",
    )
    out = build(load_settings(empty_root, environ={})).rendered.text
    assert "See the report [1] and again [1]." in out
    assert "* first point" in out and "* second point with a link [2]" in out
    assert "[2] https://newsletter.example.org/relative" in out
    assert "> A quoted line" in out and all(
        ln.startswith("> ") for ln in out.splitlines() if "quoted" in ln or "wrapping" in ln
    )
    assert "1. one" in out and "2. two" in out


def test_wrap_counts_wide_characters_and_keeps_combining_marks():
    cjk = "日本語のテキストは単語の間に空白がないので文字の間で折り返す必要があります。" * 3
    lines = wrap(cjk, 72).splitlines()
    assert len(lines) > 1 and all(display_width(ln) <= 72 for ln in lines)
    assert "".join(lines) == cjk
    combining = "Cafe\u0301 " * 30
    assert "Cafe\u0301" in wrap(combining, 20)
    assert all(display_width(ln) <= 20 for ln in wrap(combining, 20).splitlines())


def test_wrap_never_breaks_a_url():
    url = "https://paper.example/" + "x" * 100
    assert wrap(f"Read {url} now", 72).splitlines() == ["Read", url, "now"]


def test_unicode_survives_in_text_part(empty_root):
    title = "مرحبا 世界 👩‍👩‍👧 🇫🇷 Cafe\u0301"
    write_story(empty_root, "u.md", f'title: "{title}"\npublished: 2016-12-30T05:00:00+01:00', "Body 😀.\n")
    result = build(load_settings(empty_root, environ={}))
    assert title in result.rendered.text and "Body 😀." in result.rendered.text
    assert title in result.rendered.html


def test_raw_html_links_are_numbered_too(empty_root):
    write_story(
        empty_root,
        "r.md",
        'title: "Raw"\npublished: 2016-12-30T05:00:00+01:00',
        'Read <a href="https://paper.example/raw?a=1&amp;b=2">a raw link</a> and <a href="javascript:x()">no</a>; '
        "AT&amp;T stays AT&amp;T.\n",
    )
    out = build(load_settings(empty_root, environ={})).rendered.text
    assert "Read a raw link [1] and no; AT&T stays AT&T." in out
    assert "[1] https://paper.example/raw?a=1&b=2" in out


# --- the greeting: an untrusted name in the text part ---------------------------------------------------


def test_a_name_never_reads_as_markup_in_the_text_part() -> None:
    assert plain("<b>x</b>") == "\u2039b\u203ax\u2039/b\u203a"
    assert plain("Tom & Jerry") == "Tom & Jerry"  # a plain ampersand is left alone
    shown = plain("&amp; &#60; {{ x }} {% y %}")
    assert shown.replace("\u2060", "") == "&amp; &#60; {{ x }} {% y %}"  # the same to the eye
    assert not re.search(r"&#?\w+;|\{\{|\{%|%\}|\}\}", shown)
    assert personal_line("Good morning, <b>x</b>.") == "Good morning, \u2039b\u203ax\u2039/b\u203a."
    assert plain(plain("<b>&amp;</b>")) == plain("<b>&amp;</b>")


@pytest.mark.parametrize(
    "name",
    [
        "Maximilian Alexander Wolfgang Friedrich von und zu Hohenzollern-Sigmaringen-Veringen der Dritte",
        "Ä" * 100,
        "用户" * 50,
        "👩\u200d👩\u200d👧" * 30,
        "e\u0301" * 90,
    ],
)
def test_a_long_name_is_wrapped_in_the_greeting(name: str) -> None:
    line = personal_line(f"Good morning, {name}.")
    lines = line.split("\n")
    assert len(lines) > 1 and all(display_width(ln) <= 72 for ln in lines)
    assert lines[0].startswith("Good morning, ")
    # Only line breaks were added: words split where the line ends, nothing lost or reordered.
    assert "".join(line.split()) == "".join(f"Good morning, {name}.".split())
    assert "\u200d\n" not in line and "\n\u0301" not in line  # a ZWJ sequence or an accent stays whole


@pytest.mark.parametrize(
    "text",
    ["", "Dear Ann,", "x" * 72, "x" * 73, "Dear  Ann,", " Dear Ann,", "Dear Ann, ", "用户 名字" * 7, "用户" * 36,
     "用户" * 37, "a\nb", "Dear 👩\u200d👩\u200d👧,", "Zoe\u0308 " * 14],
)  # fmt: skip
def test_wrap_gives_a_line_that_fits_back_as_it_is_and_the_quick_path_agrees(text: str) -> None:
    for break_long in (False, True):
        assert wrap(text, break_long=break_long) == _fill(text, 72, "", None, break_long)
