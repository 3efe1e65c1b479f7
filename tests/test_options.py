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
    # `[mailing] suppression` names an older separate list only; the list lives in the reader base now.
    assert options.suppression == (root / "records" / "s.sqlite").resolve()
    assert suppression_path(settings) == root / "data" / "subscribers.sqlite"
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


# --- [dkim], [web], [smtp], [intake]: the same idiom ------------------------------------------------


@pytest.mark.parametrize(
    ("section", "table", "line"),
    [
        ("dkim", 'selector = "bad selector"', "newsletter.toml: [dkim] selector must be a DNS label"),
        ("dkim", "selector = 3", "newsletter.toml: [dkim] selector must be a string, got 3"),
        ("dkim", 'next_selector = "s2"', "newsletter.toml: [dkim] selector is missing (the RSA key"),
        ("dkim", 'selecter = "s1"', "newsletter.toml: [dkim]: unknown setting 'selecter' (known: domain,"),
        ("web", "hosts = []", "newsletter.toml: [web] hosts must be a list of host names, got []"),
        ("web", "confirm_hours = 0", "newsletter.toml: [web] confirm_hours must be a whole number from 1 to 720"),
        ("web", 'client_timeout = "soon"', "newsletter.toml: [web] client_timeout must be a whole number from 1"),
        ("web", "host = 1", "newsletter.toml: [web]: unknown setting 'host' (known: client_timeout,"),
        ("smtp", "url = 25", "newsletter.toml: [smtp] url must be a string like smtp://host:587, got 25"),
        ("smtp", 'tls = "ssl"', "newsletter.toml: [smtp] tls must be none, starttls or implicit, got 'ssl'"),
        ("smtp", "connections = 65", "newsletter.toml: [smtp] connections must be a whole number from 1 to 64"),
        ("smtp", "rate = -1", "newsletter.toml: [smtp] rate must be a number of messages per second (0: no limit)"),
        ("smtp", "timeout = 0", "newsletter.toml: [smtp] timeout must be a number of seconds from 0.1 to 3600"),
        ("smtp", "ca_file = 1", "newsletter.toml: [smtp] ca_file must be a path, got 1"),
        ("smtp", 'helo = "a\\nb"', "newsletter.toml: [smtp] helo must be one line of text"),
        ("smtp", 'usename = "x"', "newsletter.toml: [smtp]: unknown setting 'usename' (known: ca_file,"),
        ("intake", 'timeout = "soon"', "newsletter.toml [intake]: 'timeout' (seconds) must be a number from 0.05"),
        ("intake", "max_mb = 0", "newsletter.toml [intake]: 'max_mb' must be a number from 0.001 to 1000, got 0"),
        ("intake", "feeds = 3", "newsletter.toml [intake]: 'feeds' must be a list of tables"),
        ("intake", 'user_agent = "a\\nb"', "newsletter.toml [intake]: 'user_agent' must be one line of text"),
        ("intake", "feed = 1", "newsletter.toml [intake]: unknown setting 'feed' (known: feeds,"),
        ("intake.feeds", 'section = "World"', "newsletter.toml [[intake.feeds]] #1: 'url' is required"),
    ],
)
def test_a_bad_value_in_the_other_tables_is_one_line_naming_file_table_and_key(
    tmp_path: Path, section: str, table: str, line: str
) -> None:
    from newsletter.delivery import DKIM, SMTP
    from newsletter.intake import INTAKE
    from newsletter.web.app.options import WEB

    header = "[[intake.feeds]]" if section == "intake.feeds" else f"[{section}]"
    settings = settings_with(tmp_path / "paper", f"{header}\n{table}\n")
    spec = {"dkim": DKIM, "web": WEB, "smtp": SMTP, "intake": INTAKE, "intake.feeds": INTAKE}[section]
    with pytest.raises(ConfigError) as caught:
        settings.options(spec)
    assert str(caught.value).startswith(line) and "\n" not in str(caught.value)


def test_the_other_tables_are_read_once_typed_from_the_file_and_the_environment(tmp_path: Path) -> None:
    from newsletter.delivery import DKIM, SMTP, DkimOptions, config_from_settings, key_dir
    from newsletter.intake import INTAKE, FeedSource, intake_options
    from newsletter.web.app.options import WEB, WebOptions

    root = tmp_path / "paper"
    settings = settings_with(
        root,
        '[dkim]\nselector = "mb1"\nkey_dir = "keys"\n[smtp]\nurl = "smtp://127.0.0.1:2525"\nrate = 5\n'
        '[intake]\ntimeout = 2\n[[intake.feeds]]\nurl = "wire.xml"\nsection = "World"\n[web]\nconfirm_hours = 24\n',
        {"NEWSLETTER_SMTP__CONNECTIONS": "4", "NEWSLETTER_WEB__HOSTS": "a.example, B.example"},
    )
    for spec in (DKIM, SMTP, INTAKE, WEB):
        assert settings.options(spec) is settings.options(spec) is settings.for_language("en").options(spec)
    smtp = settings.options(SMTP)
    assert (smtp.url, smtp.connections, smtp.rate) == ("smtp://127.0.0.1:2525", 4, 5.0)
    assert config_from_settings(settings, environ={}).connections == 4
    dkim = DkimOptions.from_settings(settings)
    assert dkim is not None and dkim.domain == settings.sender.address.rsplit("@", 1)[-1].lower()
    assert dkim.key_dir == key_dir(settings) == root / "keys"
    assert (
        intake_options(settings).feeds == (FeedSource("wire.xml", "World"),) and intake_options(settings).timeout == 2
    )
    web = WebOptions.from_settings(settings)
    assert (web.hosts, web.confirm_hours) == (frozenset({"a.example", "b.example"}), 24)
    plain = settings_with(tmp_path / "plain", 'base_url = "https://News.example.org/daily/"\n')
    assert WebOptions.from_settings(plain).hosts == frozenset({"news.example.org"})
    assert DkimOptions.from_settings(plain) is None and plain.options(SMTP).url is None


def test_a_bad_smtp_value_stops_send_with_one_line_and_nothing_sent(demo_root: Path) -> None:
    from click.testing import CliRunner

    from newsletter.cli import cli

    (demo_root / "newsletter.toml").write_text("[smtp]\nconnections = 0\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["send", "--root", str(demo_root), "--date", "2016-12-30"], env={"NEWSLETTER_UNSUBSCRIBE_SECRET": "s" * 32}
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: newsletter.toml: [smtp] connections must be a whole number from 1 to 64, got 0"
    )
    assert not (demo_root / "outbox" / "2016-12-30" / "mail").exists()
