"""Layered settings: defaults < newsletter.toml < NEWSLETTER_* environment < CLI flags; clear errors."""

from __future__ import annotations

from datetime import time

import pytest

from newsletter.config import load_settings
from newsletter.errors import ConfigError


def test_defaults_without_a_config_file(empty_root):
    s = load_settings(empty_root, environ={})
    assert str(s.timezone) == "Europe/Paris"
    assert s.cutoff == time(6, 0)
    assert s.html_budget == 100_000
    assert s.config_file is None
    assert s.stories_dir == (empty_root / "stories").resolve()


def test_file_then_environment_then_flags(empty_root):
    (empty_root / "newsletter.toml").write_text(
        'title = "Le Réveil"\nlocale = "fr"\ntimezone = "Asia/Tokyo"\n[sender]\nname = "Rédaction"\n'
        'address = "news@paper.example"\n[smtp]\nurl = "smtp://127.0.0.1:2525"\n',
        encoding="utf-8",
    )
    env = {
        "NEWSLETTER_TIMEZONE": "America/New_York",
        "NEWSLETTER_SENDER__NAME": "Desk",
        "NEWSLETTER_HTML_BUDGET_KB": "80",
        "NEWSLETTER_UNSUBSCRIBE_SECRET": "not-a-setting",
    }
    s = load_settings(empty_root, {"sender.name": "Flag"}, environ=env)
    assert s.title == "Le Réveil" and s.locale == "fr"
    assert str(s.timezone) == "America/New_York"
    assert s.sender.name == "Flag" and s.sender.address == "news@paper.example"
    assert s.html_budget == 80_000
    assert s.section("smtp") == {"url": "smtp://127.0.0.1:2525"}
    assert "not-a-setting" not in repr(s)  # secrets in the environment never enter the settings


def test_environment_reaches_open_sections(empty_root):
    s = load_settings(empty_root, environ={"NEWSLETTER_SMTP__URL": "smtp://127.0.0.1:25"})
    assert s.section("smtp")["url"] == "smtp://127.0.0.1:25"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('timezone = "Mars/Olympus"', "'timezone': unknown time zone 'Mars/Olympus'"),
        ('cutoff = "6am"', "'cutoff' must be HH:MM"),
        ('cutoff = "25:00"', "'cutoff' must be HH:MM"),
        ('locale = "xx-nope"', "'locale': unknown locale"),
        ('base_url = "example.org"', "'base_url' must be an absolute http(s) URL"),
        ("html_budget_kb = 0", "'html_budget_kb' must be a whole number from 10 to 10000"),
        ('html_budget_kb = "big"', "'html_budget_kb' must be a whole number"),
        ('subject = "{title} {nope}"', "'subject': only {title} and {date} may appear"),
        ('subject = "{date.year}"', "'subject': only {title} and {date} may appear"),
        ('subject = "{title.__class__}"', "'subject': only {title} and {date} may appear"),
        ('subject = "{title!r}"', "'subject': only {title} and {date} may appear"),
        ('subject = "{title"', "'subject': "),
        ("title = 5", "'title' must be a string, got 5"),
        ('titel = "x"', "unknown setting 'titel'"),
        ('[sender]\naddress = "not an address"', "'sender.address': 'not an address' is not a valid address"),
        ('[list]\nunsubscribe_url = "http://x.example/u/"', "'list.unsubscribe_url' must be an https URL"),
        ('[list]\nid = "has space"', "'list.id' must be a dotted name"),
        ('title = "a\\nb"', "must be one line"),
        ("smtp = 3", "'smtp' must be a table"),
        ("title = [", "newsletter.toml: "),
    ],
)
def test_bad_values_are_one_line_errors(empty_root, toml, message):
    (empty_root / "newsletter.toml").write_text(toml + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(empty_root, environ={})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_environment_value_names_the_variable(empty_root):
    with pytest.raises(ConfigError, match="environment NEWSLETTER_HTML_BUDGET_KB"):
        load_settings(empty_root, environ={"NEWSLETTER_HTML_BUDGET_KB": "lots"})


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        load_settings(tmp_path / "nope", environ={})
