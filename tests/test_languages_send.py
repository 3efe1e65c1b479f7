"""Each reader their language: `send` over a mixed-locale list, to a real aiosmtpd server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.delivery import SECRET_ENV

SECRET = "languages-test-secret-0123456789abcdef"
# address → (locale as listed, the edition it must get)
READERS = {
    "ann@example.org": ("en-GB", "en"),
    "marie@example.org": ("fr-CA", "fr"),
    "luc@example.org": ("fr", "fr"),
    "karim@example.org": ("ar-EG", "ar"),
    "salma@example.org": ("ar_MA", "ar"),
    "hans@example.org": ("de-DE", "en"),  # not published: the default
    "nobody@example.org": ("", "en"),
    "odd@example.org": ("!!not a locale", "en"),
}
GREETING = {"en": "Good morning", "fr": "Bonjour", "ar": "صباح الخير"}
FOOTER = {"en": "Unsubscribe:", "fr": "Se désabonner", "ar": "إلغاء الاشتراك:"}


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def write_list(root: Path, extra: str = "") -> Path:
    lines = ["email,name,locale"] + [f"{a},Reader {i},{loc}" for i, (a, (loc, _)) in enumerate(READERS.items())]
    path = root / "subscribers.csv"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.slow
def test_every_reader_gets_exactly_one_message_in_their_language(languages_root, smtp_server):
    # a second row for an address with another locale must not bring a second message
    subs = write_list(languages_root, "MARIE@example.org,Marie again,ar\nbad-address,,fr\n")
    root = str(languages_root)
    result = run(
        "send",
        "--newsletter",
        "daily",
        "--root",
        root,
        "--date",
        "2016-12-30",
        "--subscribers",
        str(subs),
        "--smtp",
        smtp_server.url,
    )
    assert result.exit_code == 0, result.output
    got = Counter(rcpt for record in smtp_server.received for rcpt in record.rcpt_tos)
    assert got == Counter(list(READERS)), got
    for record in smtp_server.received:
        (address,) = record.rcpt_tos
        lang = READERS[address][1]
        msg = record.message
        assert msg["Content-Language"] == lang
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert GREETING[lang] in text and FOOTER[lang] in text, (address, lang)
        assert f'lang="{lang}"' in html
        for other in set(GREETING) - {lang}:
            assert GREETING[other] not in text
        if lang == "ar":
            assert 'dir="rtl"' in html and "الجمعة" in msg["Subject"]
        if lang == "fr":
            assert "vendredi 30 décembre 2016" in msg["Subject"]
    assert "subscribers.csv:10:" in result.output and "already has the fr edition" in result.output
    assert "subscribers.csv:11: invalid email address 'bad-address'" in result.output
    assert result.output.count("subscribers.csv:11:") == 1  # a bad line is named once, not once per language
    for lang in ("en", "fr", "ar"):
        assert f"[{lang}] Edition 2016-12-30:" in result.output
    ledgers = sorted(p.name for p in (languages_root / "data" / "ledger").glob("*.sqlite"))
    assert ledgers == ["2016-12-30.ar.sqlite", "2016-12-30.en.sqlite", "2016-12-30.fr.sqlite"]

    # a rerun sends nobody anything, even to a reader whose locale changed in between
    subs.write_text(subs.read_text(encoding="utf-8").replace("ann@example.org,Reader 0,en-GB", "ann@example.org,A,fr"))
    before = len(smtp_server.received)
    again = run(
        "send",
        "--newsletter",
        "daily",
        "--root",
        root,
        "--date",
        "2016-12-30",
        "--subscribers",
        str(subs),
        "--smtp",
        smtp_server.url,
    )
    assert again.exit_code == 0, again.output
    assert len(smtp_server.received) == before
    assert "ann@example.org already has the en edition of 2016-12-30 (sent)" in again.output

    status = run("status", "--newsletter", "daily", "--root", root, "--date", "2016-12-30")
    assert status.exit_code == 0, status.output
    assert "Edition 2016-12-30 (en): 4 recipient(s) — sent 4" in status.output
    assert "Edition 2016-12-30 (fr): 2 recipient(s) — sent 2" in status.output
    assert "Edition 2016-12-30 (ar): 2 recipient(s) — sent 2" in status.output
    assert "Edition 2016-12-30 (all languages): 8 recipient(s) — sent 8" in status.output
    assert "Status: complete" in status.output


def test_a_test_copy_in_one_language(languages_root, smtp_server):
    result = run("send", "--newsletter", "daily", "--root", str(languages_root), "--date", "2016-12-30",
                 "--to", "me@example.org",
                 "--lang", "ar", "--smtp", smtp_server.url)  # fmt: skip
    assert result.exit_code == 0, result.output
    (record,) = smtp_server.received
    assert record.message["Content-Language"] == "ar"
    assert not (languages_root / "data" / "ledger").exists()  # outside the ledgers


def test_one_language_keeps_one_ledger_named_as_before(demo_root):
    subs = write_list(demo_root)
    result = run("send", "--root", str(demo_root), "--date", "2016-12-30", "--subscribers", str(subs))
    assert result.exit_code == 0, result.output
    assert [p.name for p in (demo_root / "data" / "ledger").glob("*.sqlite")] == ["2016-12-30.sqlite"]
    mail = demo_root / "outbox" / "2016-12-30" / "mail"
    assert len(list(mail.glob("*.eml"))) == len(READERS)  # everyone, in the one language
    assert "[en]" not in result.output


def test_readers_of_a_language_without_an_edition_that_day_are_told_about(languages_root):
    toml = languages_root / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('"ar"]', '"ar", "es"]'), encoding="utf-8")
    subs = write_list(languages_root, "ana@example.org,Ana,es-MX\n")
    result = run(
        "send",
        "--newsletter",
        "daily",
        "--root",
        str(languages_root),
        "--date",
        "2016-12-30",
        "--subscribers",
        str(subs),
    )
    assert result.exit_code == 0, result.output
    assert "es: edition not built (no es stories published between" in result.output
    assert not list((languages_root / "outbox").rglob("ana@example.org.eml"))
    assert len(list((languages_root / "outbox").rglob("*.eml"))) == len(READERS)


@pytest.mark.parametrize("lang", ["en", "fr", "ar"])
def test_every_language_edition_is_personalized_on_the_fast_path(lang, languages_root):
    """Splicing names into the rendered edition gives what a full render gives, right to left included
    (a long Latin name wraps the Arabic greeting onto a line that must be marked right to left too)."""
    from datetime import UTC, date, datetime

    from newsletter.config import load_settings
    from newsletter.delivery.personalize import Personalizer, compare_messages
    from newsletter.edition import build

    settings = load_settings(languages_root, environ={}).for_language(lang)
    p = Personalizer(settings, build(settings, date(2016, 12, 30)).edition, secret=b"k", date=datetime.now(UTC))
    assert p.fast, p.mismatch
    for name in ("", "Ann", "كريم", "Jean-Baptiste Alexandre de la Rochefoucauld-Montmorency " * 2, "Eve <b>"):
        assert compare_messages(p.message("r@example.org", name), p.naive("r@example.org", name)) is None, name


def test_status_of_language_editions_exits_by_state(languages_root):
    """Not started (5) until a language is sent, incomplete (4) while a language with stories of its own
    has no ledger, complete (0) once every language edition is out."""
    root = str(languages_root)
    subs = write_list(languages_root)
    before = run("status", "--newsletter", "daily", "--root", root, "--date", "2016-12-30")
    assert before.exit_code == 5, before.output
    assert "Status: not started" in before.output

    one = run(
        "send",
        "--newsletter",
        "daily",
        "--root",
        root,
        "--date",
        "2016-12-30",
        "--subscribers",
        str(subs),
        "--lang",
        "en",
    )
    assert one.exit_code == 0, one.output
    partial = run("status", "--newsletter", "daily", "--root", root, "--date", "2016-12-30")
    assert partial.exit_code == 4, partial.output
    assert "Edition 2016-12-30 (fr): not sent yet" in partial.output
    assert "Status: incomplete" in partial.output

    rest = run("send", "--newsletter", "daily", "--root", root, "--date", "2016-12-30", "--subscribers", str(subs))
    assert rest.exit_code == 0, rest.output
    done = run("status", "--newsletter", "daily", "--root", root, "--date", "2016-12-30")
    assert done.exit_code == 0, done.output
    assert "Status: complete" in done.output
