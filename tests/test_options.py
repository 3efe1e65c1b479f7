"""Typed options per subsystem, parsed once: one number check, one line naming the file, table and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.delivery import MAILING, MailingOptions, ledger_dir, suppression_path
from newsletter.errors import ConfigError
from newsletter.options import Options, Table, check_number


def settings_with(root: Path, toml: str, environ: dict[str, str] | None = None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "newsletter.toml").write_text(toml, encoding="utf-8")
    return load_settings(root, environ=environ or {})


def test_the_number_check_reads_text_and_says_what_it_wants() -> None:
    assert check_number("3", "x", 1, 5, whole=True) == 3.0  # from NEWSLETTER_…__KEY
    assert check_number(" 0.5 ", "x", 0, 1) == 0.5
    for value, whole in [(True, False), ("soon", False), (2.5, True), (6, False), (None, False), ("1e9", True)]:
        with pytest.raises(ConfigError) as caught:
            check_number(value, "newsletter.toml: [t] k", 1, 5, whole=whole)
        kind = "a whole number" if whole else "a number"
        assert str(caught.value) == f"newsletter.toml: [t] k must be {kind} from 1 to 5, got {value!r}"
    with pytest.raises(ConfigError, match=r"\[smtp\] rate must be a number of messages per second from 0 to 1000000"):
        check_number(-1, "[smtp] rate", 0, 1_000_000, unit="messages per second")


def test_mailing_is_read_once_and_shared_by_the_language_editions(tmp_path: Path) -> None:
    calls: list[Table] = []

    def parse(table: Table) -> int:
        calls.append(table)
        return table.whole("max_attempts", 5, 1, 100)

    spec = Options("mailing", parse)
    settings = settings_with(tmp_path / "paper", '[list]\nlanguages = ["en", "fr"]\n[mailing]\nmax_attempts = 7\n')
    assert settings.options(spec) == 7 and settings.for_language("fr").options(spec) == 7
    assert len(calls) == 1 and calls[0].origin == "newsletter.toml" and calls[0].name == "mailing"
    assert settings.options(MAILING) is settings.options(MAILING) is MailingOptions.from_settings(settings)


def test_mailing_options_from_the_file_and_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    settings = settings_with(
        root,
        '[mailing]\nledger_dir = "records/ledgers"\nsuppression = "records/s.sqlite"\nlease_seconds = 30\n',
        {"NEWSLETTER_MAILING__MAX_ATTEMPTS": "3", "NEWSLETTER_MAILING__SUPPRESS_BOUNCES": "false"},
    )
    options = settings.options(MAILING)
    assert (options.max_attempts, options.suppress_bounces, options.lease_seconds) == (3, False, 30.0)
    assert ledger_dir(settings) == options.ledger_dir == (root / "records" / "ledgers").resolve()
    assert suppression_path(settings) == (root / "records" / "s.sqlite").resolve()
    plain = settings_with(tmp_path / "plain", "").options(MAILING)
    assert plain.ledger_dir == (tmp_path / "plain" / "data" / "ledger").resolve() and plain.max_attempts == 5


@pytest.mark.parametrize(
    ("table", "line"),
    [
        ("ledger_dir = 3", "newsletter.toml: [mailing] ledger_dir must be a folder path, got 3"),
        ('suppression = " "', "newsletter.toml: [mailing] suppression must be a file path, got ' '"),
        ("lease_seconds = 0", "newsletter.toml: [mailing] lease_seconds must be a number of seconds from 1 to 3600"),
        ("suppress_bounces = 2", "newsletter.toml: [mailing] suppress_bounces must be true or false, got 2"),
        ('return_path = "nope"', "newsletter.toml: [mailing] return_path is not a usable address"),
        (
            "stop_after_same_failures = -1",
            "newsletter.toml: [mailing] stop_after_same_failures must be a whole number from 0 to 1000000, got -1",
        ),
        ("retries = 2", "newsletter.toml: [mailing]: unknown setting 'retries' (known: breaker_bounce_share,"),
    ],
)
def test_a_bad_mailing_key_is_one_line_naming_file_table_and_key(tmp_path: Path, table: str, line: str) -> None:
    settings = settings_with(tmp_path / "paper", f"[mailing]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        settings.options(MAILING)
    assert str(caught.value).startswith(line) and "\n" not in str(caught.value)


def test_without_a_file_the_line_says_settings(tmp_path: Path) -> None:
    (tmp_path / "paper").mkdir()
    settings = load_settings(tmp_path / "paper", environ={"NEWSLETTER_MAILING__MAX_ATTEMPTS": "many"})
    with pytest.raises(ConfigError, match=r"^settings: \[mailing\] max_attempts must be a whole number"):
        settings.options(MAILING)
