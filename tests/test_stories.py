"""The story reader: front matter fields, sanitising, text in any script, body rendering, loading a folder."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.edition.body import sanitize_html
from newsletter.edition.build import build
from newsletter.edition.stories import (
    KNOWN_FIELDS,
    Image,
    Story,
    load_stories,
    parse_story,
    read_story,
)
from newsletter.edition.story_image import LOCAL_IMAGES
from newsletter.textutil import clean_url, one_line
from tests.helpers import write_story

BASE = "https://newsletter.example.org"
PUBLISHED = "published: 2016-12-30T05:00:00+01:00"
MINIMAL = f"title: A title\n{PUBLISHED}"


def parse(front: str, body: str = "Body text.\n", *, base: str = BASE) -> tuple[Story | None, list[str], list[str]]:
    raw = f"---\n{front}\n---\n{body}".encode()
    story, errors, warnings = parse_story(raw, "stories/x.md", "x", base)
    return story, [str(e) for e in errors], [str(w) for w in warnings]


def ok(front: str, body: str = "Body text.\n") -> Story:
    story, errors, _ = parse(front, body)
    assert errors == []
    assert story is not None
    return story


def errors_of(front: str, body: str = "Body text.\n") -> list[str]:
    """The errors of a story that cannot be shown at all (left out)."""
    story, errors, _ = parse(front, body)
    assert story is None
    return errors


def repaired(front: str, body: str = "Body text.\n") -> tuple[Story, list[str]]:
    """A story shown all the same, and the errors `check` still reports for it."""
    story, errors, _ = parse(front, body)
    assert story is not None and errors
    return story, errors


def dropped(front: str) -> tuple[Story, list[str]]:
    """A story shown without an unsafe field, and the warnings saying so."""
    story, errors, warnings = parse(front)
    assert story is not None and errors == []
    return story, warnings


def body_html(story: Story) -> str:
    return "".join(b.html for b in story.blocks)


# --- required fields ------------------------------------------------------------------------------


def test_minimal_story_gets_the_documented_defaults() -> None:
    story = ok(MINIMAL)
    assert story.title == "A title"
    assert story.published == datetime(2016, 12, 30, 4, 0, tzinfo=UTC)
    assert story.published.utcoffset() == timedelta(hours=1)
    assert (story.summary, story.section, story.url, story.byline, story.kind) == ("", "News", "", "", "article")
    assert (story.image, story.tags, story.priority, story.lang, story.dir) == (None, (), 0, "", "ltr")
    assert (story.id, story.slug, story.path) == ("x", "x", "stories/x.md")
    assert [b.html for b in story.blocks] == ["<p>Body text.</p>\n"]


def test_missing_required_fields_are_each_reported() -> None:
    assert errors_of("section: World") == [
        "stories/x.md: field 'title': required field is missing",
        "stories/x.md: field 'published': required field is missing",
    ]
    assert errors_of("title:\npublished: 2016-12-30T05:00:00+01:00") == [
        "stories/x.md: field 'title': required field is missing"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "2016-12-30",
            "needs a date and a time with an offset, e.g. 2016-12-30T05:30:00+01:00; got '2016-12-30'",
        ),
        ("2016-12-30T05:00:00", "has no UTC offset: '2016-12-30T05:00:00' (write e.g. 2016-12-30T05:00:00+01:00)"),
        ("2016-12-30 05:00", "has no UTC offset: '2016-12-30 05:00' (write e.g. 2016-12-30 05:00+01:00)"),
        ("garbage", "not an ISO 8601 datetime: 'garbage'"),
        ("30/12/2016 05:00 +01:00", "not an ISO 8601 datetime: '30/12/2016 05:00 +01:00'"),
        ("2016-12-30T25:00:00+01:00", "not an ISO 8601 datetime: '2016-12-30T25:00:00+01:00'"),
        ("1483070400", "not an ISO 8601 datetime: '1483070400'"),
        ("[2016, 12, 30]", "not an ISO 8601 datetime: got a list"),
        ("{date: 2016-12-30}", "not an ISO 8601 datetime: got a dict"),
        ("true", "not an ISO 8601 datetime: got True"),
    ],
)
def test_bad_published_is_one_line_naming_file_and_field(value: str, message: str) -> None:
    assert errors_of(f"title: T\npublished: {value}") == [f"stories/x.md: field 'published': {message}"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-12-30T05:30:00+01:00", datetime(2016, 12, 30, 5, 30, tzinfo=timezone(timedelta(hours=1)))),
        ("'2016-12-30T05:30:00+01:00'", datetime(2016, 12, 30, 5, 30, tzinfo=timezone(timedelta(hours=1)))),
        ("2016-12-30T04:30:00Z", datetime(2016, 12, 30, 4, 30, tzinfo=UTC)),
        ("2016-12-30 05:30+01:00", datetime(2016, 12, 30, 5, 30, tzinfo=timezone(timedelta(hours=1)))),
        ("2016-12-30T10:00:00.250+05:30", datetime(2016, 12, 30, 10, 0, 0, 250000, timezone(timedelta(hours=5.5)))),
        ("20161230T053000+0100", datetime(2016, 12, 30, 5, 30, tzinfo=timezone(timedelta(hours=1)))),
        ("2016-12-29T23:30:00-05:00", datetime(2016, 12, 29, 23, 30, tzinfo=timezone(timedelta(hours=-5)))),
    ],
)
def test_published_keeps_its_offset(value: str, expected: datetime) -> None:
    published = ok(f"title: T\npublished: {value}").published
    assert published == expected
    assert published.utcoffset() == expected.utcoffset()


# --- optional fields ------------------------------------------------------------------------------


FULL = """\
title: "Syrian regime emboldened ahead of Russia-backed peace talks"
published: 2016-12-30T05:30:00+01:00
summary: "Damascus enters the talks from a position of strength."
section: Syria
url: https://www.france24.com/en/20161230-syria-regime-emboldened
byline: "FRANCE 24"
kind: Video
image:
  src: https://newsletter.example.org/images/aleppo.jpg
  alt: "A man walks past destroyed buildings in Aleppo"
  credit: "George Ourfalian, AFP"
tags: [syria, russia, peace talks]
priority: 10
lang: en-GB
private: true
"""


def test_every_optional_field_is_read() -> None:
    story, errors, warnings = parse(FULL)
    assert errors == [] and warnings == []
    assert story is not None
    assert story.summary == "Damascus enters the talks from a position of strength."
    assert story.section == "Syria"
    assert story.url == "https://www.france24.com/en/20161230-syria-regime-emboldened"
    assert story.byline == "FRANCE 24"
    assert story.kind == "video"
    assert story.image == Image(
        src="https://newsletter.example.org/images/aleppo.jpg",
        alt="A man walks past destroyed buildings in Aleppo",
        credit="George Ourfalian, AFP",
    )
    assert story.tags == ("syria", "russia", "peace talks")
    assert story.priority == 10
    assert story.lang == "en-GB"
    assert story.private is True
    assert set(KNOWN_FIELDS) == {line.split(":")[0] for line in FULL.splitlines() if line and line[0] != " "}


def test_summary_and_byline_are_flattened_to_one_line() -> None:
    story = ok(f'{MINIMAL}\nsummary: "First line\\r\\nsecond line\\n\\tthird"\nbyline: "A\\nB"')
    assert story.summary == "First line second line third"
    assert story.byline == "A B"


def test_multiline_yaml_summary_becomes_one_line() -> None:
    story = ok(f"{MINIMAL}\nsummary: |\n  Line one\n  line two\n")
    assert story.summary == "Line one line two"


def test_empty_section_falls_back_to_the_default() -> None:
    assert ok(f'{MINIMAL}\nsection: ""').section == "News"


def test_tags_accept_a_comma_separated_string() -> None:
    assert ok(f"{MINIMAL}\ntags: syria, russia ,, turkey").tags == ("syria", "russia", "turkey")


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("tags: 5", "field 'tags': must be a list of words, e.g. [syria, russia]"),
        ("tags: {syria: 1}", "field 'tags': must be a list of words, e.g. [syria, russia]"),
        ("tags: [syria, [russia]]", "field 'tags': must be text, got list"),
        ("priority: '5'", "field 'priority': must be a whole number (higher comes first), got '5'"),
        ("priority: 1.5", "field 'priority': must be a whole number (higher comes first), got 1.5"),
        ("priority: true", "field 'priority': must be a whole number (higher comes first), got True"),
        ("priority: [1]", "field 'priority': must be a whole number (higher comes first), got a list"),
        ("priority: 5000", "field 'priority': must be between -1000 and 1000, got 5000"),
        ("kind: two words", "field 'kind': must be one word such as article, video, audio; got 'two words'"),
        (
            "lang: english please",
            "field 'lang': must be a language tag such as en, ar or zh-Hant; got 'english please'",
        ),
        ("section: [a, b]", "field 'section': must be text, got list"),
        ("summary: {a: b}", "field 'summary': must be text, got dict"),
        ("byline: false", "field 'byline': must be text, got bool"),
        (f"summary: {'x' * 1001}", "field 'summary': too long (1001 characters, at most 1000)"),
    ],
)
def test_bad_optional_fields(front: str, message: str) -> None:
    """Repaired, not left out: the field falls back to its default; `check` still reports it."""
    if front.startswith("kind:"):
        story, warnings = dropped(f"{MINIMAL}\n{front}")
        assert story.kind == "article" and warnings == [f"stories/x.md: {message}; shown as an article"]
        return
    story, errors = repaired(f"{MINIMAL}\n{front}")
    assert errors == [f"stories/x.md: {message}"]
    default = ok(MINIMAL)
    name = front.split(":")[0]
    assert getattr(story, name) == getattr(default, name)


def test_several_bad_fields_are_all_reported_at_once() -> None:
    story, errors, warnings = parse("title: ''\npublished: soon\npriority: high\nurl: ftp://x.example/a")
    assert story is None and errors == [
        "stories/x.md: field 'title': must not be empty",
        "stories/x.md: field 'published': not an ISO 8601 datetime: 'soon'",
        "stories/x.md: field 'priority': must be a whole number (higher comes first), got 'high'",
    ]
    assert warnings == [
        "stories/x.md: field 'url': must be an absolute http/https URL, got 'ftp://x.example/a'; link dropped"
    ]


def test_yaml_one_one_booleans_stay_text() -> None:
    """`title: Yes`, `section: No` and Norwegian (`lang: no`) are text, not YAML 1.1 booleans."""
    story = ok(f"title: Yes\n{PUBLISHED}\nsection: No\nlang: no\nbyline: off")
    assert (story.title, story.section, story.lang, story.byline) == ("Yes", "No", "no", "off")


def test_unknown_kind_falls_back_to_article_with_a_warning() -> None:
    story, errors, warnings = parse(f"{MINIMAL}\nkind: livestream")
    assert errors == [] and story is not None and story.kind == "article"
    assert warnings == [
        "stories/x.md: field 'kind': unknown kind 'livestream', shown as an article (known: article, video, audio, "
        "podcast, gallery, analysis, opinion, interview, live)"
    ]


def test_unknown_fields_warn_with_a_did_you_mean_and_are_ignored() -> None:
    story, errors, warnings = parse(f"{MINIMAL}\ntitel: Typo\nsumary: Also a typo\ncolour: red\n7: seven")
    assert errors == []
    assert warnings == [
        "stories/x.md: field 'titel': unknown field, ignored (did you mean 'title'?)",
        "stories/x.md: field 'sumary': unknown field, ignored (did you mean 'summary'?)",
        "stories/x.md: field 'colour': unknown field, ignored",
        "stories/x.md: field '7': unknown field, ignored",
    ]
    assert story is not None and story.title == "A title" and story.summary == ""


def test_misspelt_required_field_is_an_error_plus_the_hint() -> None:
    story, errors, warnings = parse(f"titel: A title\n{PUBLISHED}")
    assert story is None
    assert errors == ["stories/x.md: field 'title': required field is missing"]
    assert warnings == ["stories/x.md: field 'titel': unknown field, ignored (did you mean 'title'?)"]


def test_a_field_given_twice_is_an_error_not_a_silent_overwrite() -> None:
    assert errors_of(f"title: First\n{PUBLISHED}\ntitle: Second") == [
        "stories/x.md: field 'title': given twice (lines 2 and 4); keep one"
    ]


@pytest.mark.parametrize(
    ("front", "message"),
    [
        (f"{PUBLISHED}\ntitle: Ceasefire: what next", "on line 3: a value contains ': ' (put quotes around it)"),
        (f'title: "Unclosed\n{PUBLISHED}', "on line 4: found unexpected end of stream (while scanning a quoted scalar"),
        (f"{PUBLISHED}\n\ttitle: Tabbed", "on line 3: a tab where YAML needs spaces"),
        (f"title: T\n{PUBLISHED}\ntags: [a, b", "on line 5: "),
        ("title: !!python/object:os.system x", "on line 2: could not determine a constructor for the tag"),
    ],
)
def test_invalid_yaml_names_the_line(front: str, message: str) -> None:
    errors = errors_of(front)
    assert len(errors) == 1
    assert errors[0].startswith(f"stories/x.md: front matter is not valid YAML {message}")
    assert "\n" not in errors[0]


def test_front_matter_must_be_a_mapping() -> None:
    assert errors_of("just a sentence") == ["stories/x.md: front matter must be a YAML mapping of field: value"]
    assert errors_of("") == [
        "stories/x.md: field 'title': required field is missing",
        "stories/x.md: field 'published': required field is missing",
    ]


def test_yaml_aliases_cannot_blow_up_an_error_message() -> None:
    """A 'billion laughs' value is described by its type, never expanded into the message."""
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    front = "\n".join(levels) + "\ntitle: T\npublished: *i\npriority: *i\nimage:\n  src: /a.jpg\n  alt: *i"
    story, errors, _ = parse(front)
    assert story is None
    assert errors == [
        "stories/x.md: field 'published': not an ISO 8601 datetime: got a list",
        "stories/x.md: field 'image.alt': must be text, got list",
        "stories/x.md: field 'priority': must be a whole number (higher comes first), got a list",
    ]


# --- url and image --------------------------------------------------------------------------------


def test_url_must_be_absolute_http_or_https() -> None:
    assert ok(f"{MINIMAL}\nurl: http://example.com/a?b=1#c").url == "http://example.com/a?b=1#c"
    assert ok(f"{MINIMAL}\nurl: '  https://example.com/a  '").url == "https://example.com/a"
    story, warnings = dropped(f"{MINIMAL}\nurl: /2016/12/30/story")
    assert story.url == "" and warnings == [
        "stories/x.md: field 'url': must be an absolute http/https URL, got '/2016/12/30/story'; link dropped"
    ]
    assert dropped(f"{MINIMAL}\nurl: 'https://'")[1] == [
        "stories/x.md: field 'url': has no host: 'https://'; link dropped"
    ]
    assert dropped(f"{MINIMAL}\nurl: [https://a.example]")[1] == [
        "stories/x.md: field 'url': must be a URL, got list; link dropped"
    ]


def test_url_with_a_space_is_refused_not_silently_rewritten() -> None:
    assert ok(f"{MINIMAL}\nurl: 'https://example.com/a b'").url == "https://example.com/a%20b"
    assert dropped(f"{MINIMAL}\nurl: 'ht tps://example.com/'")[1] == [
        "stories/x.md: field 'url': must be an absolute http/https URL, got 'ht tps://example.com/'; link dropped"
    ]


# Obfuscations of a script URL. In YAML double quotes, \t \n \r \x01 are real control characters.
SCRIPT_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "   javascript:alert(1)",
    "java\\tscript:alert(1)",
    "java\\nscript:alert(1)",
    "java\\rscript:alert(1)",
    "\\x01javascript:alert(1)",
    "javascript\\t:alert(1)",
    "&#106;avascript:alert(1)",
    "java&#x0A;script:alert(1)",
    "%6Aavascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:image/svg+xml,<svg onload=alert(1)>",
    "vbscript:msgbox(1)",
    " VBScript:msgbox(1)",
]


@pytest.mark.parametrize("value", SCRIPT_URLS)
def test_front_matter_url_refuses_script_urls_however_obfuscated(value: str) -> None:
    story, warnings = dropped(f'{MINIMAL}\nurl: "{value}"')
    assert story.url == "" and len(warnings) == 1  # the link is dropped, the story kept
    assert warnings[0].startswith("stories/x.md: field 'url': must be an absolute http/https URL, got '")
    assert warnings[0].endswith("; link dropped") and "\n" not in warnings[0] and "\t" not in warnings[0]


@pytest.mark.parametrize("value", SCRIPT_URLS)
def test_image_src_never_becomes_a_script_url(value: str) -> None:
    """Refused, or — for text that is no scheme at all, such as `&#106;avascript:` — a path on our host."""
    story, warnings = dropped(f'{MINIMAL}\nimage:\n  src: "{value}"\n  alt: A photo')
    if story.image is None:  # dropped, the story kept
        assert len(warnings) == 1 and warnings[0].endswith("; image dropped")
        assert warnings[0].startswith("stories/x.md: field 'image.src': must be an absolute https URL, got '")
    else:
        assert story.image.src.startswith(BASE + "/") and warnings == []


def test_entity_or_percent_spelt_schemes_in_image_src_are_plain_paths() -> None:
    src = ok(f'{MINIMAL}\nimage:\n  src: "&#106;avascript:alert(1)"\n  alt: A').image
    assert src is not None and src.src == BASE + "/&#106;avascript:alert(1)"
    src = ok(f'{MINIMAL}\nimage:\n  src: "%6Aavascript:alert(1)"\n  alt: A').image
    assert src is not None and src.src == BASE + "/%6Aavascript:alert(1)"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("image:\n  src: http://x.example/a.jpg\n  alt: A", "field 'image.src': must be an absolute https URL, got "),
        ("image:\n  alt: A photo", "field 'image.src': required when there is an image"),
        ("image:\n  src: https://x.example/a.jpg", "field 'image.alt': missing: describe the photo for readers who"),
        ("image:\n  src: https://x.example/a.jpg\n  alt: '  '", "field 'image.alt': missing: describe the photo"),
        ("image:\n  src: https://x.example/a.jpg\n  alt: [a]", "field 'image.alt': must be text, got list"),
        ("image:\n  src: https://x.example/a.jpg\n  alt: A\n  credit: {a: 1}", "field 'image.credit': must be text"),
        ("image: https://x.example/a.jpg", "field 'image.alt': describe the photo: write image as a mapping with"),
        ("image: [https://x.example/a.jpg]", "field 'image': must be a mapping with src, alt and credit"),
        (
            "image:\n  src: https://x.example/a.jpg\n  alt: A\n  caption: C",
            "field 'image.caption': unknown image field",
        ),
    ],
)
def test_bad_images(image: str, message: str) -> None:
    """Never the story's end: an unsafe src drops the image (a warning); without alt it shows with alt=""."""
    story, errors, warnings = parse(f"{MINIMAL}\n{image}")
    assert story is not None
    problems = warnings if "image.src'" in message else errors
    assert len(problems) == 1 and problems[0].startswith(f"stories/x.md: {message}")
    if "image.alt': missing" in message or "write image as a mapping" in message:
        assert story.image is not None and story.image.alt == "" and story.image.src == "https://x.example/a.jpg"
    elif "image.credit" in message:
        assert story.image is not None and story.image.alt == "A" and story.image.credit == ""
    elif "alt': must be text" not in message:
        assert story.image is None


def test_root_and_protocol_relative_image_src_become_absolute_https() -> None:
    image = ok(f"{MINIMAL}\nimage:\n  src: /images/a.jpg\n  alt: A\n").image
    assert image == Image(src=BASE + "/images/a.jpg", alt="A", credit="")
    image = ok(f"{MINIMAL}\nimage:\n  src: //cdn.example/a.jpg\n  alt: A\n").image
    assert image is not None and image.src == "https://cdn.example/a.jpg"


@pytest.mark.parametrize("path", ["photo.jpg", "../images/a photo.jpg", "sub/dir/p.png"])
def test_a_relative_image_src_is_a_file_beside_the_story_kept_for_the_build(path: str) -> None:
    image = ok(f'{MINIMAL}\nimage:\n  src: "{path}"\n  alt: A\n').image
    assert image == Image(src=path, alt="A", credit="")


# --- titles and control characters ----------------------------------------------------------------


@pytest.mark.parametrize(
    "escaped",
    ["\\r\\n", "\\n", "\\r", "\\t", "\\x0b", "\\x0c", "\\x1b", "\\x7f", "\\x85", "\\x9b", "\\u2028", "\\u2029"],
)
def test_titles_with_line_breaks_and_control_characters_are_flattened(escaped: str) -> None:
    story = ok(f'title: "Breaking{escaped}{escaped}news  here"\n{PUBLISHED}')
    assert story.title == "Breaking news here"
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in story.title)


def test_a_title_of_only_control_characters_is_empty() -> None:
    assert errors_of(f'title: "\\r\\n\\t "\n{PUBLISHED}') == ["stories/x.md: field 'title': must not be empty"]


def test_overlong_title_is_refused() -> None:
    assert errors_of(f"title: {'a' * 301}\n{PUBLISHED}") == [
        "stories/x.md: field 'title': too long (301 characters, at most 300)"
    ]


def test_one_line_keeps_no_break_and_ideographic_spaces() -> None:
    assert one_line("Syrie\u202f: 10\u00a0km\u3000東京") == "Syrie\u202f: 10\u00a0km\u3000東京"
    assert one_line("  a \r\n\t b\u2028c  ") == "a b c"


def test_title_markup_is_kept_as_text_for_the_templates_to_escape() -> None:
    assert ok(f"title: '<script>alert(1)</script> & co'\n{PUBLISHED}").title == "<script>alert(1)</script> & co"


# --- sanitising the body --------------------------------------------------------------------------

ALLOWED_SCHEMES = ("http://", "https://", "mailto:")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(html: str) -> _Collect:
    """No script-capable element, no event handler, no style, and every URL http(s)/mailto and absolute."""
    scan = _Collect()
    scan.feed(html)
    scan.close()
    for tag, attrs in scan.tags:
        assert tag not in {"script", "style", "iframe", "svg", "math", "form", "object", "embed", "base", "meta"}, tag
        assert tag in {"p", "a", "img", "em", "strong", "h2", "h3", "blockquote", "ul", "ol", "li", "code", "pre"}
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name in {"href", "src", "alt", "title", "rel", "lang", "dir", "start"}, (tag, name)
            if name in ("href", "src"):
                assert value is not None and value.startswith(ALLOWED_SCHEMES), (tag, name, value)
                assert "\t" not in value and "\n" not in value
    # Script-looking text may remain as text (escaped); never as markup.
    lowered = html.lower()
    for needle in ("<script", "<style", "<iframe", "<svg", "<math", "<form", "<object", "<embed", "<base", "<meta"):
        assert needle not in lowered
    return scan


BODY_VECTORS = [
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1))",
    "[click](java&#x0A;script:alert(1))",
    "[click](java&#x09;script:alert(1))",
    "[click](javascript&colon;alert(1))",
    "[click](%6Aavascript:alert(1))",
    "[click](<javascript:alert(1)>)",
    "[click](<java script:alert(1)>)",
    "<javascript:alert(1)>",
    "[click][ref]\n\n[ref]: javascript:alert(1)",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(1))",
    "![x](javascript:alert(1))",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="  javascript:alert(1)">x</a>',
    '<a href="JAVASCRIPT:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="java\nscript:alert(1)">x</a>',
    '<a href="java&#x0A;script:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="&#0000106&#0000097vascript:alert(1)">x</a>',
    '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">x</a>',
    '<a href="javascript&colon;alert(1)">x</a>',
    '<a href="%6Aavascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "<a href=javascript:alert(1)>x</a>",
    '<a href="https://ok.example/" onclick="alert(1)" onmouseover="alert(1)" style="color:red">ok</a>',
    "<img src=x onerror=alert(1)>",
    '<IMG SRC="jav&#x09;ascript:alert(1)">',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    "<img src=`javascript:alert(1)`>",
    "<svg onload=alert(1)><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text x="0" y="20">x</text></a></svg>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<style>@import url(javascript:alert(1)); body { background: red }</style>",
    '<p style="background:url(javascript:alert(1))">styled</p>',
    '<form action="javascript:alert(1)"><input name="q"><button formaction="javascript:alert(1)">go</button></form>',
    '<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel="stylesheet" href="javascript:alert(1)">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<scr<script>ipt>alert(1)</script>",
    "<details open ontoggle=alert(1)>x</details>",
    '<div onclick="alert(1)">text</div>',
    "<!-- <script>alert(1)</script> -->",
    "<template><script>alert(1)</script></template>",
    "<p>\n<script>\nalert(1)\n</script>\n</p>",
]


@pytest.mark.parametrize("vector", BODY_VECTORS)
def test_body_keeps_no_script_handler_or_script_url(vector: str) -> None:
    story = ok(MINIMAL, f"Before.\n\n{vector}\n\nAfter.\n")
    html = body_html(story)
    assert_inert(html)
    assert html.startswith("<p>Before.</p>") and html.endswith("<p>After.</p>\n")
    # The text stage reads raw HTML blocks from the tokens: those are sanitised too.
    for block in story.blocks:
        for tok in block.tokens:
            if tok.type == "html_block":
                assert "alert" not in tok.content.lower() or "<script" not in tok.content.lower()
                assert_inert(tok.content)


def test_safe_parts_of_a_hostile_link_survive() -> None:
    html = body_html(ok(MINIMAL, '<a href="https://ok.example/" onclick="alert(1)">ok</a>\n'))
    assert html == '<p><a href="https://ok.example/" rel="noopener">ok</a></p>\n'


def test_script_and_style_bodies_do_not_reach_the_text_tokens() -> None:
    story = ok(MINIMAL, "<script>\nalert('x')\n</script>\n\n<style>\nbody { color: red }\n</style>\n\nText.\n")
    assert [b.html for b in story.blocks] == ["<p>Text.</p>\n"]
    assert all("alert" not in t.content and "color" not in t.content for b in story.blocks for t in b.tokens)


def test_sanitize_html_directly() -> None:
    assert sanitize_html("<script>alert(1)</script>hi", BASE + "/") == "hi"
    assert sanitize_html('<img src="/a.png" onerror="x()">', BASE + "/") == f'<img alt="" src="{BASE}/a.png">'
    assert sanitize_html('<img src="javascript:alert(1)" alt="gone">', BASE + "/") == ""
    assert sanitize_html('<a href="mailto:desk@example.org">mail</a>', BASE + "/") == (
        '<a href="mailto:desk@example.org" rel="noopener">mail</a>'
    )
    assert sanitize_html('<a href="https://x.example/a b">x</a>', BASE + "/") == (
        '<a href="https://x.example/a%20b" rel="noopener">x</a>'
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.example/x", "https://a.example/x"),
        ("  https://a.example/x\n", "https://a.example/x"),
        ("ht\ttps://a.example/x", "https://a.example/x"),
        ("page", "https://newsletter.example.org/2016/page"),
        ("../up", "https://newsletter.example.org/up"),
        ("#part", "https://newsletter.example.org/2016/story#part"),
        ("//cdn.example/a", "https://cdn.example/a"),
        ("%6Aavascript:alert(1)", "https://newsletter.example.org/2016/%6Aavascript:alert(1)"),
        ("java\x00script:alert(1)", "https://newsletter.example.org/2016/java%00script:alert(1)"),
    ],
)
def test_clean_url_resolves_like_a_browser(value: str, expected: str) -> None:
    assert clean_url(value, BASE + "/2016/story") == expected


@pytest.mark.parametrize(
    "value",
    ["javascript:alert(1)", " \x01JAVA\tSCRIPT:alert(1)", "jav\nascript:x", "data:,x", "vbscript:x", "file:///etc"],
)
def test_clean_url_refuses_other_schemes_even_with_a_base(value: str) -> None:
    with pytest.raises(ValueError, match="must be an absolute http/https URL"):
        clean_url(value, BASE + "/")


# --- text in any script ---------------------------------------------------------------------------

SCRIPTS = {
    "arabic": "تقدم قوات النظام السوري في حلب",
    "hebrew": "הפסקת האש בסוריה נכנסה לתוקף",
    "chinese": "叙利亚停火协议生效，各方表示谨慎乐观。",
    "japanese": "シリアで停戦が発効した。",
    "korean": "시리아 휴전 발효",
    "emoji": "Family 👩‍👩‍👧‍👦, flags 🇸🇾🇷🇺🇹🇷, thumbs 👍🏽, rainbow flag 🏳️‍🌈",
    "combining": "Cafe\u0301 and re\u0301sume\u0301, Ha\u0300 No\u0323\u0302i, a\u0308",
    "devanagari": "सीरिया में युद्धविराम",
    "astral": "𠜎𠜱𠝹 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_text_in_any_script_survives_byte_for_byte(empty_root: Path, name: str) -> None:
    text = SCRIPTS[name]
    path = write_story(
        empty_root, f"{name}.md", f'title: "{text}"\n{PUBLISHED}\nsummary: "{text}"\nbyline: "{text}"', f"{text}\n"
    )
    story, errors, _ = read_story(path, empty_root, empty_root / "stories", BASE)
    assert errors == [] and story is not None
    assert story.title == story.summary == story.byline == text
    assert body_html(story) == f"<p>{text}</p>\n"
    assert story.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_combining_marks_stay_decomposed() -> None:
    story = ok(f'title: "Cafe\\u0301"\n{PUBLISHED}\nsummary: "Cafe\u0301"', "Cafe\u0301\n")
    for value in (story.title, story.summary, body_html(story)):
        assert "e\u0301" in value and "\u00e9" not in value
    assert unicodedata.normalize("NFC", story.title) != story.title


@pytest.mark.parametrize(
    ("front", "body", "direction"),
    [
        (f'title: "{SCRIPTS["arabic"]}"\n{PUBLISHED}', f"{SCRIPTS['arabic']}\n", "rtl"),
        (f'title: "{SCRIPTS["hebrew"]}"\n{PUBLISHED}', f"{SCRIPTS['hebrew']}\n", "rtl"),
        (f'title: "Aleppo"\n{PUBLISHED}\nlang: ar', "Aleppo\n", "rtl"),
        (f'title: "Aleppo"\n{PUBLISHED}\nlang: he-IL', "Aleppo\n", "rtl"),
        (f'title: "Aleppo"\n{PUBLISHED}\nlang: fa', "Aleppo\n", "rtl"),
        (f'title: "{SCRIPTS["arabic"]} (AFP)"\n{PUBLISHED}', f"{SCRIPTS['arabic']} — AFP, Reuters\n", "rtl"),
        (f'title: "Talks in Astana"\n{PUBLISHED}', f"The word {SCRIPTS['arabic'].split()[0]} means progress.\n", "ltr"),
        (f'title: "{SCRIPTS["chinese"]}"\n{PUBLISHED}\nlang: zh', f"{SCRIPTS['chinese']}\n", "ltr"),
        (MINIMAL, "Plain English.\n", "ltr"),
    ],
)
def test_direction_follows_language_and_letters(front: str, body: str, direction: str) -> None:
    assert ok(front, body).dir == direction


def test_rtl_story_renders_right_to_left_in_the_built_edition(empty_root: Path) -> None:
    arabic = SCRIPTS["arabic"]
    write_story(empty_root, "ar.md", f'title: "{arabic}"\n{PUBLISHED}\nlang: ar\npriority: 5', f"{arabic}.\n")
    write_story(empty_root, "en.md", f"title: English story\n{PUBLISHED}", "English body.\n")
    result = build(load_settings(empty_root, environ={}))
    html = result.rendered.html
    # no url and nothing cut: the headline is text, not a link (the text part has none to list either)
    assert f">{arabic}</h1>" in html
    heading = html[: html.index(f">{arabic}</h1>")]
    assert heading[heading.rindex("<h") :].count('dir="rtl"') == 1
    assert arabic in result.rendered.text


# --- body rendering -------------------------------------------------------------------------------


def test_body_is_commonmark() -> None:
    body = "# Top\n\nSome *em* and **strong** and `code`.\n\n> A quote.\n\n1. one\n2. two\n\n```\nfenced <code>\n```\n"
    story = ok(MINIMAL, body)
    assert [b.html for b in story.blocks] == [
        "<h2>Top</h2>\n",
        "<p>Some <em>em</em> and <strong>strong</strong> and <code>code</code>.</p>\n",
        "<blockquote>\n<p>A quote.</p>\n</blockquote>\n",
        "<ol>\n<li>one</li>\n<li>two</li>\n</ol>\n",
        "<pre><code>fenced &lt;code&gt;\n</code></pre>\n",
    ]


def test_quotes_and_apostrophes_are_kept_as_written() -> None:
    story = ok(MINIMAL, "\u201cWe will not stop,\u201d he said. It\u2019s \"plain\" and 'single'.\n")
    assert body_html(story) == ("<p>\u201cWe will not stop,\u201d he said. It\u2019s \"plain\" and 'single'.</p>\n")


def test_relative_links_resolve_against_the_story_url() -> None:
    story = ok(
        f"{MINIMAL}\nurl: https://www.france24.com/en/middle-east/20161230-syria",
        "[a](/en/live) [b](20161231-next) [c](#video) [d](//cdn.example/x) [e](mailto:desk@france24.com)\n",
    )
    assert body_html(story) == (
        '<p><a href="https://www.france24.com/en/live" rel="noopener">a</a> '
        '<a href="https://www.france24.com/en/middle-east/20161231-next" rel="noopener">b</a> '
        '<a href="https://www.france24.com/en/middle-east/20161230-syria#video" rel="noopener">c</a> '
        '<a href="https://cdn.example/x" rel="noopener">d</a> '
        '<a href="mailto:desk@france24.com" rel="noopener">e</a></p>\n'
    )
    # The text stage reads the tokens: they carry the same absolute URLs.
    hrefs = [c.attrs["href"] for t in story.blocks[0].tokens for c in t.children or () if c.type == "link_open"]
    assert hrefs[:2] == ["https://www.france24.com/en/live", "https://www.france24.com/en/middle-east/20161231-next"]


def test_relative_links_without_a_story_url_resolve_against_base_url() -> None:
    """…and a relative image is a file beside the story, marked for the build to publish (photos.py)."""
    story, _, _ = parse(MINIMAL, "[a](/archive) [b](page) ![c](img/c.png)\n", base="https://paper.example/news")
    assert story is not None
    assert body_html(story) == (
        '<p><a href="https://paper.example/archive" rel="noopener">a</a> '
        '<a href="https://paper.example/news/page" rel="noopener">b</a> '
        f'<img src="{LOCAL_IMAGES}img/c.png" alt="c"></p>\n'
    )


def test_raw_html_links_resolve_too() -> None:
    story = ok(f"{MINIMAL}\nurl: https://a.example/x/y", '<p><a href="../z">z</a> <img src="p.png" alt="P"></p>\n')
    assert body_html(story) == (
        f'<p><a href="https://a.example/z" rel="noopener">z</a> <img src="{LOCAL_IMAGES}p.png" alt="P"></p>\n'
    )


def test_body_image_without_alt_text_is_kept_and_warned_about() -> None:
    story, errors, warnings = parse(MINIMAL, "![](https://a.example/p.png)\n\n![Aleppo](https://a.example/q.png)\n")
    assert errors == [] and story is not None
    assert body_html(story) == (
        '<p><img src="https://a.example/p.png" alt=""></p>\n<p><img src="https://a.example/q.png" alt="Aleppo"></p>\n'
    )
    assert warnings == [
        "stories/x.md: image https://a.example/p.png in the body has no alt text "
        "(write ![what it shows](https://a.example/p.png))"
    ]


def test_blocks_split_on_top_level_elements() -> None:
    story = ok(MINIMAL, "One.\n\nTwo\ncontinued.\n\n- a\n- b\n\n  still b\n\n<!-- a comment -->\n\n---\n\nThree.\n")
    assert [b.html for b in story.blocks] == [
        "<p>One.</p>\n",
        "<p>Two\ncontinued.</p>\n",
        "<ul>\n<li>\n<p>a</p>\n</li>\n<li>\n<p>b</p>\n<p>still b</p>\n</li>\n</ul>\n",
        "<hr>\n",
        "<p>Three.</p>\n",
    ]


@pytest.mark.parametrize(
    "body",
    ["", "\n\n", "<!-- only a comment -->\n", "<script>x()</script>\n", "![x](data:image/png;base64,iVBORw0KGgo=)\n"],
)
def test_empty_bodies_have_no_blocks(body: str) -> None:
    story = ok(MINIMAL, body)
    assert story.blocks == () and story.words == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("one two three\n", 3),
        ("A [linked phrase](https://example.com/a/very/long/url) here.\n", 4),
        ("<p>raw HTML block <em>counts</em> too</p>\n", 5),
        ("Ends with *emphasis*.\n\n- item one\n- item two\n", 7),
        ("叙利亚停火\n", 5),
        ("東京でiPhoneを買った\n", 8),
        ("\u0627\u0644\u0633\u0644\u0627\u0645 \u0639\u0644\u064a\u0643\u0645\n", 2),
        ("`some code` and\n\n    a code block\n", 6),
        ("Tight<br>lines<p>and</p>\n", 3),
    ],
)
def test_word_counts_are_what_a_reader_sees(body: str, words: int) -> None:
    assert ok(MINIMAL, body).words == words


def test_story_words_sum_its_blocks() -> None:
    story = ok(MINIMAL, "one two\n\nthree four five\n")
    assert [b.words for b in story.blocks] == [2, 3] and story.words == 5


# --- reading files and folders --------------------------------------------------------------------


def test_load_stories_walks_folders_in_a_stable_order(empty_root: Path) -> None:
    write_story(empty_root, "2016/12/30/b-story.md", f"title: B\n{PUBLISHED}")
    write_story(empty_root, "a-story.md", f"title: A\n{PUBLISHED}")
    write_story(empty_root, ".drafts/hidden.md", f"title: Hidden\n{PUBLISHED}")
    write_story(empty_root, "2016/.hidden.md", f"title: Hidden\n{PUBLISHED}")
    (empty_root / "stories" / "notes.txt").write_text("not a story", encoding="utf-8")
    result = load_stories(empty_root / "stories", empty_root, BASE)
    assert result.errors == [] and result.warnings == []
    assert [(s.id, s.slug, s.path) for s in result.stories] == [
        ("2016/12/30/b-story", "b-story", "stories/2016/12/30/b-story.md"),
        ("a-story", "a-story", "stories/a-story.md"),
    ]


def test_a_bad_file_never_stops_the_good_ones(empty_root: Path) -> None:
    write_story(empty_root, "good.md", f"title: Good\n{PUBLISHED}")
    write_story(empty_root, "bad.md", "title: Bad")
    result = load_stories(empty_root / "stories", empty_root, BASE)
    assert [s.id for s in result.stories] == ["good"]
    assert [str(e) for e in result.errors] == ["stories/bad.md: field 'published': required field is missing"]


def test_missing_stories_folder_is_empty(tmp_path: Path) -> None:
    result = load_stories(tmp_path / "stories", tmp_path, BASE)
    assert (result.stories, result.errors, result.warnings) == ([], [], [])


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("plain-slug", "plain-slug"),
        ("My story (draft) v2", "My-story-draft-v2"),
        ("café_crème", "café_crème"),
        ("حلب-اليوم", "حلب-اليوم"),
        ("???", "story"),
    ],
)
def test_slugs_are_usable_as_html_ids(empty_root: Path, name: str, slug: str) -> None:
    write_story(empty_root, f"{name}.md", f"title: T\n{PUBLISHED}")
    (story,) = load_stories(empty_root / "stories", empty_root, BASE).stories
    assert story.id == name and story.slug == slug


def test_duplicate_slugs_warn_naming_both_files(empty_root: Path) -> None:
    write_story(empty_root, "world/briefing.md", f"title: World\n{PUBLISHED}")
    write_story(empty_root, "europe/briefing.md", f"title: Europe\n{PUBLISHED}")
    result = load_stories(empty_root / "stories", empty_root, BASE)
    assert sorted(s.id for s in result.stories) == ["europe/briefing", "world/briefing"]
    assert [str(w) for w in result.warnings] == [
        "stories/europe/briefing.md: slug 'briefing' is also used by stories/world/briefing.md; "
        "both appear, with distinct anchors"
    ]


def test_unreadable_path_is_reported(empty_root: Path) -> None:
    folder = empty_root / "stories" / "folder.md"
    folder.mkdir()
    story, errors, _ = read_story(folder, empty_root, empty_root / "stories", BASE)
    assert story is None
    assert [str(e) for e in errors] == ["stories/folder.md: cannot read file (Is a directory)"]


def test_demo_stories_all_load_cleanly(demo_root: Path) -> None:
    result = load_stories(demo_root / "stories", demo_root, BASE)
    assert result.errors == [] and result.warnings == []
    assert len(result.stories) >= 6
    lead = next(s for s in result.stories if s.slug.startswith("syrian-regime-emboldened"))
    assert lead.section == "Syria" and lead.kind == "video" and lead.image is not None and lead.image.alt


def test_body_images_are_asked_for_over_https() -> None:
    story = ok(MINIMAL, "![a photo](http://photos.example/a.jpg)\n\n<img src='http://photos.example/b.jpg' alt='b'>\n")
    html = "".join(b.html for b in story.blocks)
    assert 'src="https://photos.example/a.jpg"' in html and 'src="https://photos.example/b.jpg"' in html
    assert "http://photos" not in html


def test_private_must_be_true_or_false_and_a_doubt_keeps_the_story_private() -> None:
    story, errors, _ = parse('title: "T"\npublished: 2016-12-30T05:30:00+01:00\nprivate: "yes"\n')
    assert story is not None and story.private is True  # shown in the email, out of the archive's lists
    assert errors == ["stories/x.md: field 'private': must be true or false, got 'yes'; kept private"]


def test_a_root_relative_body_image_stays_on_the_site() -> None:
    story, _, _ = parse(MINIMAL, "![c](/img/c.png) ![d](d.png)\n", base="https://paper.example/news")
    assert story is not None
    assert body_html(story) == (
        f'<p><img src="https://paper.example/img/c.png" alt="c"> <img src="{LOCAL_IMAGES}d.png" alt="d"></p>\n'
    )
