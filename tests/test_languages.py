"""Language editions: catalogues, `[list] languages`, the French and Arabic demo editions, right to left."""

from __future__ import annotations

import html as htmllib
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import edition_language, load_settings
from newsletter.edition import Personal, build, build_context, build_editions, i18n, make_environment, render_html
from newsletter.errors import ConfigError
from tests.helpers import REPO, make_demo_root, write_story

DAY = date(2016, 12, 30)
LOCALE_DIR = REPO / "newsletter" / "locale"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def catalogue(lang: str):
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def visible_text(html: str) -> str:
    """What a reader sees and hears: text nodes plus alt/title attributes, entities decoded."""
    body = re.sub(r"<style.*?</style>|<!--.*?-->", " ", html, flags=re.S)
    attrs = " ".join(re.findall(r'(?:alt|title)="([^"]*)"', body))
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", body) + " " + attrs)


@pytest.fixture(scope="module")
def editions(tmp_path_factory: pytest.TempPathFactory):
    root = make_demo_root(tmp_path_factory.mktemp("languages") / "paper", languages=True)
    settings = load_settings(root, environ={})
    return {b.language: b for b in build_editions(settings, DAY).builds}


# --- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "edition"),
    [
        ("fr-CA", "fr"),
        ("fr_FR", "fr"),
        ("FR", "fr"),
        ("ar-EG", "ar"),
        ("ar", "ar"),
        ("en-GB", "en"),
        ("de-DE", "en"),  # a language the list does not publish: the default
        ("", "en"),
        ("not a locale!", "en"),
    ],
)
def test_a_locale_picks_its_edition(tag, edition):
    assert edition_language(tag, ("en", "fr", "ar")) == edition


def test_one_language_by_default_from_the_locale(empty_root):
    settings = load_settings(empty_root, environ={})
    assert settings.languages == ("en",) and not settings.multilingual
    british = load_settings(empty_root, environ={"NEWSLETTER_LOCALE": "en_GB"})
    assert british.languages == ("en",) and british.for_language("en").locale == "en_GB"
    listed = load_settings(empty_root, environ={"NEWSLETTER_LIST__LANGUAGES": "en, fr,ar"})
    assert listed.languages == ("en", "fr", "ar") and listed.for_language("fr").locale == "fr"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[list]\nlanguages = ["en", "fr", "fr-CA"]', "'fr' and 'fr-CA' are the same language"),
        ('[list]\nlanguages = ["en", "xx-nowhere"]', "'list.languages': unknown language 'xx-nowhere'"),
        ('[list]\nlanguages = "en"\n', None),
        ("[list]\nlanguages = [1, 2]", "'list.languages' must be a list of language tags"),
        ('[list]\nlanguages = ["en"]\n[list.subject]\nfr = "{title}"', "'list.subject.fr': 'fr' is not one of"),
        ('[list]\nlanguages = ["en", "fr"]\n[list.subject]\nfr = "{secret}"', "'list.subject.fr': only {title}"),
        ('[list]\nlanguages = ["en", "fr"]\nsubject = "x"', "'list.subject' must be a table"),
    ],
)
def test_bad_language_settings_are_one_line_naming_the_key(empty_root, toml, message):
    (empty_root / "newsletter.toml").write_text(toml, encoding="utf-8")
    if message is None:
        assert load_settings(empty_root, environ={}).languages == ("en",)
        return
    with pytest.raises(ConfigError) as err:
        load_settings(empty_root, environ={})
    assert message in str(err.value) and "newsletter.toml" in str(err.value) and "\n" not in str(err.value)


# --- catalogues -------------------------------------------------------------------------------------


def test_catalogues_are_complete_and_keep_their_placeholders():
    template = {m.id for m in read_po((LOCALE_DIR / "messages.pot").open("rb")) if m.id}
    assert len(template) >= 20
    for lang in ("fr", "ar", "es"):
        cat = catalogue(lang)
        ids = {m.id for m in cat if m.id}
        assert ids == template, lang
        for m in cat:
            if not m.id:
                continue
            assert m.string and not m.fuzzy, (lang, m.id)
            assert sorted(PLACEHOLDER.findall(m.string)) == sorted(PLACEHOLDER.findall(m.id)), (lang, m.id)
    # English is the source language: its catalogue exists and leaves every string as written.
    assert {m.id for m in catalogue("en") if m.id} == template


def test_unsure_translations_are_marked_for_review_not_fuzzy():
    reviewed = [m for lang in ("fr", "ar", "es") for m in catalogue(lang) if m.id and m.user_comments]
    assert reviewed and all(m.user_comments[0].startswith("review:") for m in reviewed)


def test_the_template_holds_every_string_of_the_code_and_templates(tmp_path):
    """What `pybabel extract` finds today is what the catalogues translate (README, "Translations")."""
    out = tmp_path / "fresh.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    subprocess.run(
        [str(pybabel), "-q", "extract", "-F", "babel.cfg", "-k", "N_", "-o", str(out), "."],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh = {m.id for m in read_po(out.open("rb")) if m.id}
    shipped = {m.id for m in read_po((LOCALE_DIR / "messages.pot").open("rb")) if m.id}
    assert fresh == shipped


def test_a_missing_translation_falls_back_to_english(tmp_path, monkeypatch):
    po = tmp_path / "fr" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "Read more"\nmsgstr ""\n\n'
        '#, fuzzy\nmsgid "Unsubscribe"\nmsgstr "Désinscription douteuse"\n\n'
        'msgid "Good morning"\nmsgstr "Bonjour"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.translations.cache_clear()
    try:
        fr = i18n.translations("fr-CA")
        assert fr.gettext("Good morning") == "Bonjour"
        assert fr.gettext("Read more") == "Read more"  # empty: English, never ""
        assert fr.gettext("Unsubscribe") == "Unsubscribe"  # fuzzy: not trusted
        assert fr.gettext("More stories") == "More stories"  # absent
        assert i18n.translations("de").gettext("Read more") == "Read more"  # no catalogue at all
    finally:
        i18n.translations.cache_clear()


def test_an_edition_in_a_language_without_a_catalogue_is_in_english(empty_root):
    write_story(empty_root, "a.md", 'title: "Guten Morgen"\npublished: 2016-12-30T05:00:00+01:00\nlang: de')
    (empty_root / "newsletter.toml").write_text('[list]\nlanguages = ["de"]\n', encoding="utf-8")
    result = build(load_settings(empty_root, environ={}), DAY)
    assert "View in your browser" in result.rendered.html and "Freitag, 30. Dezember 2016" in result.rendered.html


# --- the demo's three editions ----------------------------------------------------------------------


def test_three_editions_each_with_its_own_stories(editions):
    assert list(editions) == ["en", "fr", "ar"]
    en, fr, ar = editions["en"], editions["fr"], editions["ar"]
    assert len(en.edition.stories) == 7 and all(s.lang in ("", "en") for s in en.edition.stories)
    assert {s.lang for s in fr.edition.stories} == {"fr"} and {s.lang for s in ar.edition.stories} == {"ar"}
    assert all(s.title.startswith("Exemple") for s in fr.edition.stories)  # samples, marked as such
    assert all(s.title.startswith("مثال") and "sample" in s.tags for s in ar.edition.stories)
    assert [b.manifest["language"] for b in editions.values()] == ["en", "fr", "ar"]
    assert fr.rendered.subject == "The Morning Brief · l’essentiel du vendredi 30 décembre 2016"  # [list.subject]
    assert ar.rendered.subject == "The Morning Brief — الجمعة، 30 ديسمبر 2016"
    ids = {re.search(rb"Message-ID: <([^>]+)>", b.eml).group(1) for b in editions.values()}  # type: ignore[union-attr]
    assert len(ids) == 3
    assert b"Content-Language: fr" in fr.eml and b"Content-Language: ar" in ar.eml


@pytest.mark.parametrize("lang", ["fr", "ar"])
def test_no_english_interface_string_in_the_french_and_arabic_editions(editions, lang):
    rendered = editions[lang].rendered
    seen = {"html": visible_text(rendered.html), "text": rendered.text}
    translations = {m.id: m.string for m in catalogue(lang) if m.id}
    checked = 0
    for msgid, translated in translations.items():
        if translated == msgid:  # the same word in both languages ("Podcast")
            continue
        for piece in PLACEHOLDER.split(msgid):
            piece = piece.strip(" .:[]()")
            if len(piece) < 4 or piece in translated:  # "Photo" is French too
                continue
            for part, text in seen.items():
                assert piece not in text, f"{lang} {part}: English {piece!r} (from {msgid!r})"
                checked += 1
    assert checked > 20
    # and the things a reader meets first are in the edition's language
    expected = {
        "fr": ("Bonjour", "Voir dans votre navigateur", "Se désabonner", "Lire la suite", "vendredi 30 décembre 2016"),
        "ar": ("صباح الخير", "اعرضها في متصفحك", "إلغاء الاشتراك", "اقرأ المزيد", "الجمعة، 30 ديسمبر 2016"),
    }[lang]
    for words in expected:
        assert words in seen["html"] and words in seen["text"], words
    assert (
        "L’essentiel de l’actualité internationale" in seen["html"] if lang == "fr" else "أهم الأخبار" in seen["html"]
    )


def test_the_arabic_edition_is_right_to_left_end_to_end(editions):
    ar = editions["ar"]
    html = ar.rendered.html
    assert re.search(r'<html lang="ar" dir="rtl"', html)
    assert "→" not in html and html.count("←") == len(ar.edition.stories)  # the read-more arrows point left
    assert "direction:rtl" in html  # the photo column sits on the right of its card
    texts = re.findall(r'<div style="font-family:[^"]*"', html)  # every mj-text: right or centred, never left
    assert texts and not [t for t in texts if "text-align:left" in t]
    # Latin names and addresses inside Arabic sentences are isolated
    assert "<bdi>The Morning Brief</bdi>" in html and "<bdi>morning@newsletter.example.org</bdi>" in html
    assert "<bdi>FRANCE 24 (مثال)</bdi>" in html
    # a combining mark (tanween) in an alt text survives MJML as the character, not as a Rust escape
    assert "ليلاً" in html and "\\u{" not in html
    assert "https://newsletter.example.org/ar/editions/2016-12-30/" in html  # its own web copy


def test_the_arabic_text_part_reads_right_to_left(editions):
    lines = editions["ar"].rendered.text.split("\n")
    byline = next(line for line in lines if "FRANCE 24" in line)
    assert byline.startswith("\u200f")  # a Latin start would make the client set the line left to right
    masthead = next(line for line in lines if "THE MORNING BRIEF" in line)
    assert masthead.startswith("\u200f")
    urls = [line for line in lines if line.lstrip("\u200f").startswith("https://")]
    assert urls and all(not line.startswith("\u200f") for line in urls)  # a URL stays left to right
    assert not any("\u200f" in line for line in editions["en"].rendered.text.split("\n"))


def test_a_latin_name_in_the_arabic_greeting_is_isolated(languages_root):
    settings = load_settings(languages_root, environ={}).for_language("ar")
    edition = build(settings, DAY).edition
    ctx = build_context(edition, settings, Personal(name="Ann <b>"))
    html = render_html(make_environment(settings), ctx, settings.root)
    assert "صباح الخير، <bdi>Ann &lt;b&gt;</bdi>" in html
    assert ctx["greeting"] == "صباح الخير، Ann <b>"  # the text part has no markup


# --- building ---------------------------------------------------------------------------------------


def test_build_writes_one_folder_per_language(languages_root):
    result = CliRunner().invoke(cli, ["build", "--root", str(languages_root)])
    assert result.exit_code == 0, result.output
    for lang in ("en", "fr", "ar"):
        folder = languages_root / "outbox" / "2016-12-30" / lang
        assert {p.name for p in folder.iterdir()} == {
            "newsletter.html",
            "newsletter.txt",
            "newsletter.eml",
            "manifest.json",
        }
        assert "(en)" in result.output and "(ar)" in result.output
    assert not (languages_root / "outbox" / "2016-12-30" / "newsletter.html").exists()
    check = CliRunner().invoke(cli, ["check", "--root", str(languages_root)])
    assert check.exit_code == 0 and "OK: 13 stories" in check.output


def test_one_language_keeps_todays_layout(demo_root):
    result = CliRunner().invoke(cli, ["build", "--root", str(demo_root)])
    assert result.exit_code == 0, result.output
    assert (demo_root / "outbox" / "2016-12-30" / "newsletter.html").is_file()
    assert "(en)" not in result.output


def test_a_language_without_stories_is_not_built_and_says_so(languages_root):
    toml = languages_root / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('"ar"]', '"ar", "es"]'), encoding="utf-8")
    result = CliRunner().invoke(cli, ["build", "--root", str(languages_root)])
    assert result.exit_code == 0, result.output
    assert "edition 2016-12-30 (es) not built: no es stories published between" in result.output
    assert not (languages_root / "outbox" / "2016-12-30" / "es").exists()
    shutil.rmtree(languages_root / "stories")
    write_story(languages_root, "x.md", 'title: "Seul"\npublished: 2016-12-30T05:00:00+01:00\nlang: fr')
    only_fr = CliRunner().invoke(cli, ["build", "--root", str(languages_root)])
    assert only_fr.exit_code == 0 and "(en) not built" in only_fr.output
    assert [p.name for p in (languages_root / "outbox" / "2016-12-30").iterdir() if p.name != "es"] != []


def test_a_story_in_a_language_the_list_does_not_publish_goes_to_the_default_edition(languages_root):
    write_story(languages_root, "de.md", 'title: "Auf Deutsch"\npublished: 2016-12-30T05:00:00+01:00\nlang: de')
    editions = build_editions(load_settings(languages_root, environ={}), DAY)
    titles = {b.language: [s.title for s in b.edition.stories] for b in editions.builds}
    assert "Auf Deutsch" in titles["en"] and "Auf Deutsch" not in titles["fr"] + titles["ar"]


def test_the_wheel_ships_the_catalogues(tmp_path):
    """The `.po` files are inside the package folder, so the wheel carries them (tests/test_packaging.py
    builds the wheel; here: they are where the package looks, and not ignored by git)."""
    for lang in ("en", "fr", "ar", "es"):
        path = Path(i18n.__file__).parent.parent / "locale" / lang / "LC_MESSAGES" / "messages.po"
        assert path.is_file()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "newsletter/locale/fr/LC_MESSAGES/messages.po"], cwd=REPO, check=False
    )
    assert ignored.returncode == 1
