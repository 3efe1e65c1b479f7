"""Several newsletters in one configuration: `[newsletters.<id>]`, each built with its own List-Id, outbox,
ledger names and section of the archive; the single `[list]` form is one newsletter, unchanged."""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import ledger_name, parse_ledger_key, parse_ledger_name
from newsletter.edition import build_editions
from newsletter.letters import chosen_settings, find_newsletter, for_newsletter, newsletters
from tests.helpers import DEMO_DATE, write_story

BASE = "https://newsletter.example.org"


def _build(root: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["build", "--root", str(root), "--date", DEMO_DATE.isoformat(), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _headers(path: Path) -> email.message.EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def _add_table(root: Path, text: str) -> None:
    toml = root / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")


def test_a_single_list_is_one_newsletter_with_its_settings_unchanged(demo_root: Path) -> None:
    settings = load_settings(demo_root, environ={})
    (letter,) = newsletters(settings)
    assert letter.id == "daily" and not letter.configured
    assert for_newsletter(settings, letter) is settings
    assert ledger_name(settings, DEMO_DATE) == "2016-12-30"
    (demo_root / "newsletter.toml").write_text('[list]\nid = "brief.paper.example"\n', encoding="utf-8")
    assert newsletters(load_settings(demo_root, environ={}))[0].id == "brief.paper.example"


def test_build_makes_every_scheduled_newsletter_each_with_its_list_id(languages_root: Path) -> None:
    out = _build(languages_root)
    assert "Built edition 2016-12-30 of weekly:" in out and "Built edition 2016-12-30 (fr):" in out
    outbox = languages_root / "outbox"
    daily, weekly = outbox / "2016-12-30" / "en" / "newsletter.eml", outbox / "weekly" / "2016-12-30" / "newsletter.eml"
    assert daily.is_file() and weekly.is_file()
    assert not (outbox / "breaking").exists()  # on demand: `newsletter alert` sends it
    assert _headers(daily)["List-Id"] == "The Morning Brief <morning-brief.newsletter.example.org>"
    assert _headers(weekly)["List-Id"] == "The Weekly Read <weekly.newsletter.example.org>"
    assert _headers(weekly)["From"].startswith("The Weekly Read <")
    assert _headers(weekly)["Subject"].startswith("The Weekly Read · the week to")
    # One story, two newsletters: the markets story leads nowhere in particular but is in both.
    markets = "Markets head into the final session"
    assert markets in (outbox / "2016-12-30" / "en" / "newsletter.txt").read_text(encoding="utf-8")
    weekly_text = (outbox / "weekly" / "2016-12-30" / "newsletter.txt").read_text(encoding="utf-8")
    assert markets in weekly_text
    assert "Syrian regime" not in weekly_text  # its section is not one the weekly takes
    assert "les musées" not in weekly_text  # an English-only newsletter takes no French story


def test_one_newsletter_with_newsletter_option(languages_root: Path) -> None:
    out = _build(languages_root, "--newsletter", "weekly")
    assert "of weekly" in out and "(fr)" not in out
    assert not (languages_root / "outbox" / "2016-12-30").exists()
    wrong = CliRunner().invoke(cli, ["build", "--root", str(languages_root), "--newsletter", "nope"])
    assert wrong.exit_code == 1
    assert wrong.output.strip() == "Error: no newsletter 'nope' (known: daily, weekly, breaking)"


def test_each_public_newsletter_has_its_section_of_the_archive(languages_root: Path) -> None:
    _build(languages_root)
    site = languages_root / "site"
    for name in ("index.html", "feed.xml", "sitemap.xml", "editions/2016-12-30/index.html", "latest/index.html"):
        assert (site / "weekly" / name).is_file(), name
    assert f"{BASE}/weekly/editions/2016-12-30/" in (site / "weekly" / "sitemap.xml").read_text(encoding="utf-8")
    assert f"{BASE}/editions/2016-12-30/" not in (site / "weekly" / "sitemap.xml").read_text(encoding="utf-8")
    front = (site / "index.html").read_text(encoding="utf-8")
    assert f'href="{BASE}/weekly/"' in front and "The Weekly Read" in front
    assert "Breaking News" not in front  # on demand: no archive
    robots = (site / "robots.txt").read_text(encoding="utf-8")
    assert f"Sitemap: {BASE}/weekly/sitemap.xml" in robots and f"Sitemap: {BASE}/ar/sitemap.xml" in robots
    # The daily's own archive is where it always was, its latest/ untouched by the weekly.
    assert "/weekly/" not in (site / "latest" / "index.html").read_text(encoding="utf-8")


def test_a_private_newsletter_stays_out_of_the_archive(languages_root: Path) -> None:
    toml = languages_root / "newsletter.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            'languages = ["en"]\nsections', 'languages = ["en"]\npublic = false\nsections'
        ),
        encoding="utf-8",
    )
    assert not find_newsletter(load_settings(languages_root, environ={}), "weekly").public
    _build(languages_root)
    assert (languages_root / "outbox" / "weekly" / "2016-12-30" / "newsletter.eml").is_file()
    site = languages_root / "site"
    assert not (site / "weekly").exists()
    assert "weekly" not in (site / "robots.txt").read_text(encoding="utf-8")
    assert "/weekly/" not in (site / "index.html").read_text(encoding="utf-8")


def test_ledgers_and_messages_are_named_by_newsletter(languages_root: Path) -> None:
    settings = load_settings(languages_root, environ={})
    daily, weekly, breaking = chosen_settings(settings, None)
    assert ledger_name(daily.for_language("fr"), DEMO_DATE) == "2016-12-30.fr"  # the files it always had
    assert ledger_name(weekly, DEMO_DATE) == "weekly.2016-12-30"
    assert ledger_name(breaking, DEMO_DATE) == "breaking.2016-12-30"
    assert parse_ledger_key("weekly.2016-12-30") == ("weekly", DEMO_DATE, "")
    assert parse_ledger_key("2016-12-30.fr") == ("", DEMO_DATE, "fr")
    assert parse_ledger_name("weekly.2016-12-30") is None  # not the default newsletter's
    assert parse_ledger_key("backup-2016-12-30") is None
    (built,) = build_editions(weekly, DEMO_DATE, unique="x").builds
    assert b"Message-ID: <weekly.edition-2016-12-30.x@" in built.eml


def test_selection_by_folder_tag_and_priority(languages_root: Path) -> None:
    write_story(
        languages_root,
        "alerts/quake.md",
        'title: "Quake"\npublished: 2016-12-30T04:00:00+01:00\nsection: World\ntags: [breaking]\npriority: 3',
    )
    _add_table(
        languages_root,
        '[newsletters.topics]\nname = "Topics"\nlanguages = ["en"]\nfolders = ["alerts"]\ntags = ["Breaking"]\n',
    )
    settings = load_settings(languages_root, environ={})
    topics = for_newsletter(settings, find_newsletter(settings, "topics"))
    (built,) = build_editions(topics, DEMO_DATE).builds
    assert [s.title for s in built.edition.stories] == ["Quake"]
    breaking = for_newsletter(settings, find_newsletter(settings, "breaking"))  # min_priority = 8
    assert [s.title for s in build_editions(breaking, DEMO_DATE).builds[0].edition.stories] == [
        "Syrian regime emboldened ahead of Russia-backed peace talks"
    ]


def test_a_newsletter_palette_and_templates_stand_in_for_the_shared_ones(languages_root: Path) -> None:
    palette = Path(__file__).resolve().parent.parent / "templates" / "palette.j2"
    mine = languages_root / "weekly" / "palette.j2"
    mine.parent.mkdir()
    mine.write_text(palette.read_text(encoding="utf-8").replace('"masthead": "#0b1f3a"', '"masthead": "#2d0b3a"'))
    toml = languages_root / "newsletter.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            'rhythm = "weekly"', 'rhythm = "weekly"\npalette = "weekly/palette.j2"'
        ),
        encoding="utf-8",
    )
    _build(languages_root)
    assert "#2d0b3a" in (languages_root / "outbox" / "weekly" / "2016-12-30" / "newsletter.html").read_text()
    assert "#2d0b3a" not in (languages_root / "outbox" / "2016-12-30" / "en" / "newsletter.html").read_text()


def test_a_quiet_newsletter_does_not_stop_the_others(languages_root: Path) -> None:
    _add_table(languages_root, '[newsletters.climate]\nname = "Climate"\nlanguages = ["en"]\ntags = ["climate"]\n')
    result = CliRunner().invoke(cli, ["build", "--root", str(languages_root), "--date", DEMO_DATE.isoformat()])
    assert result.exit_code == 0, result.output
    assert "climate: not built: edition 2016-12-30: no stories published between" in result.output
    assert (languages_root / "outbox" / "weekly" / "2016-12-30" / "newsletter.eml").is_file()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[newsletters.weekly]\nrhythm = "fortnightly"',
            "[newsletters.weekly] rhythm must be one of daily, weekly, on-demand",
        ),
        (
            '[newsletters.weekly]\nrhythm = "weekly"\nday = "someday"',
            "[newsletters.weekly] day must be a day of the week",
        ),
        ('[newsletters.weekly]\nday = "monday"', "[newsletters.weekly] day is for a weekly newsletter"),
        ('[newsletters.weekly]\nat = "7am"', "[newsletters.weekly] at must be a 24-hour time HH:MM"),
        ('[newsletters.weekly]\nmin_priority = "high"', "[newsletters.weekly] min_priority must be a whole number"),
        ('[newsletters.weekly]\ntags = "a"\nsections = 3', "[newsletters.weekly] sections must be a list of names"),
        ('[newsletters.weekly]\nlanguages = ["de"]', "[newsletters.weekly] languages: 'de' is not one of"),
        (
            '[newsletters.weekly]\nsender_address = "nope"',
            "[newsletters.weekly] sender_address must be an email address",
        ),
        ('[newsletters.weekly]\nlist_id = "a b"', "[newsletters.weekly] list_id must be a dotted name"),
        ("[newsletters.weekly]\npublic = 3", "[newsletters.weekly] public must be true or false"),
        ('[newsletters.weekly]\nsubject = "{nope}"', "[newsletters.weekly]: 'subject': only {title} and {date}"),
        ('[newsletters.weekly]\nfrequency = "daily"', "[newsletters.weekly]: unknown setting 'frequency'"),
        ('[newsletters.Weekly_1]\nname = "x"', "[newsletters.Weekly_1]: a newsletter id is lower-case letters"),
        ("[newsletters]\nweekly = 3", "[newsletters] weekly must be a table [newsletters.weekly]"),
    ],
)
def test_a_bad_newsletter_table_is_one_line_naming_the_file_and_key(demo_root: Path, table: str, message: str) -> None:
    (demo_root / "newsletter.toml").write_text(table + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["build", "--root", str(demo_root)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("Error: newsletter.toml: ") and message in lines[0], lines[0]
    assert not (demo_root / "outbox").exists()


def test_every_newsletter_table_is_read_before_any_command_works(demo_root: Path) -> None:
    (demo_root / "newsletter.toml").write_text('[newsletters.weekly]\nrhythm = "yearly"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["status", "--root", str(demo_root)])
    assert result.exit_code == 1 and "[newsletters.weekly] rhythm must be one of" in result.output
    assert re.search(r"^Error: newsletter\.toml: ", result.output)


def test_send_and_status_go_through_each_newsletter_with_its_own_ledger(
    languages_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "newsletters-test-secret-0123456789abcdef")
    (languages_root / "readers.csv").write_text("email,name,locale\nada@example.org,Ada,en\nbo@example.org,Bo,fr\n")
    args = ["--root", str(languages_root), "--date", DEMO_DATE.isoformat()]
    sent = CliRunner().invoke(cli, ["send", *args, "--subscribers", "readers.csv", "--no-progress"])
    assert sent.exit_code == 0, sent.output
    # A list file is one newsletter's readers: without --newsletter the default newsletter's only.
    assert "weekly: skipped: readers.csv is one newsletter's list; send it to this one with --newsletter weekly" in (
        sent.output
    )
    assert "Newsletter breaking:" not in sent.output  # on demand: `newsletter alert`
    assert not (languages_root / "outbox" / "weekly").exists()
    weekly = CliRunner().invoke(cli, ["send", *args, "--newsletter", "weekly", "--subscribers", "readers.csv"])
    assert weekly.exit_code == 0 and "sent 2" in weekly.output, weekly.output
    ledgers = sorted(p.name for p in (languages_root / "data" / "ledger").glob("*.sqlite"))
    assert ledgers == [f"2016-12-30.{lang}.sqlite" for lang in ("ar", "en", "fr")] + ["weekly.2016-12-30.sqlite"]
    weekly_mail = sorted(p.name for p in (languages_root / "outbox" / "weekly" / "2016-12-30" / "mail").glob("*.eml"))
    assert weekly_mail == ["ada@example.org.eml", "bo@example.org.eml"]
    again = CliRunner().invoke(cli, ["send", *args, "--newsletter", "weekly", "--subscribers", "readers.csv"])
    assert again.exit_code == 0 and "sent 2 (0 this run)" in again.output, again.output
    assert len(list((languages_root / "outbox" / "weekly" / "2016-12-30" / "mail").glob("*.eml"))) == 2
    status = CliRunner().invoke(cli, ["status", *args, "--newsletter", "weekly"])
    assert status.exit_code == 0, status.output
    assert "Edition 2016-12-30: 2 recipient(s) — sent 2" in status.output
    tuesday = CliRunner().invoke(cli, ["send", "--root", str(languages_root), "--date", "2016-12-27", "--no-progress"])
    assert "weekly: not due on 2016-12-27 (a weekly, sent on its day); skipped" in tuesday.output
    assert not (languages_root / "outbox" / "weekly" / "2016-12-27").exists()
