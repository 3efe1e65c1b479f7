"""The malformed-stories set: one file per kind of bad input under tests/fixtures/malformed/.

For each bad file: the exact one-line message from `load_stories` and from the CLI (`check` and `build`,
exit 1, nothing in outbox/). Several bad files are all listed in one run of the real `newsletter`
process, and `build --skip-invalid` builds the rest, naming what it skipped. Files that look odd but are
fine (BOM, CRLF, duplicate slugs, an overlong word, a misspelt optional field) build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.edition.build import build
from newsletter.edition.select import select_edition
from newsletter.edition.stories import load_stories
from tests.helpers import write_story

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "malformed"
BASE = "https://newsletter.example.org"

# Each bad fixture and what follows "stories/<file>: " in its one-line message. A story is left out only
# when it cannot be shown at all (LEFT_OUT); other faults are repaired: REPAIRED ones stay errors for
# `check` (the editor must still fix them), DROPPED ones (an unsafe link or image) are warnings.
LEFT_OUT = {
    "latin1.md": "not UTF-8 (byte 0xe9 on line 2); save the file as UTF-8",
    "nul-bytes.md": "contains NUL bytes; not a text file",
    "no-front-matter.md": "no front matter (the file must start with a '---' line, then YAML, then '---')",
    "unclosed-front-matter.md": "front matter is not closed (add a '---' line after the YAML)",
    "invalid-yaml.md": "front matter is not valid YAML on line 3: a value contains ': ' (put quotes around it)",
    "not-a-mapping.md": "front matter must be a YAML mapping of field: value",
    "duplicate-field.md": "field 'title': given twice (lines 2 and 4); keep one",
    "empty-title.md": "field 'title': must not be empty",
    "missing-published.md": "field 'published': required field is missing",
    "naive-published.md": (
        "field 'published': has no UTC offset: '2016-12-30T05:17:00' (write e.g. 2016-12-30T05:17:00+01:00)"
    ),
    "date-only-published.md": (
        "field 'published': needs a date and a time with an offset, e.g. 2016-12-30T05:30:00+01:00; got '2016-12-30'"
    ),
    "garbage-published.md": "field 'published': not an ISO 8601 datetime: 'last Friday'",
}
REPAIRED = {
    "image-no-alt.md": "field 'image.alt': missing: describe the photo for readers who cannot see it",
    "priority-not-int.md": "field 'priority': must be a whole number (higher comes first), got 'high'",
    "tags-wrong-type.md": "field 'tags': must be a list of words, e.g. [syria, russia]",
}
DROPPED = {
    "bad-url.md": (
        "field 'url': must be an absolute http/https URL, got 'www.france24.com/en/middle-east'; link dropped"
    ),
    "image-src-http.md": (
        "field 'image.src': must be an absolute https URL, got 'http://newsletter.example.org/images/a.jpg'; "
        "image dropped"
    ),
    "image-src-javascript.md": (
        "field 'image.src': must be an absolute https URL, got 'JaVa ScRiPt:alert(document.cookie)'; image dropped"
    ),
}
BAD = LEFT_OUT | REPAIRED  # errors for `check`
# Odd but acceptable: these build.
ACCEPTED = {
    "bom.md": "Saved with a byte order mark",
    "crlf.md": "Saved with Windows line endings",
    "misspelt-field.md": "A summary spelt wrong",
    "overlong-word.md": "A word longer than a phone screen",
    "duplicate-slug/world/briefing.md": "World briefing",
    "duplicate-slug/europe/briefing.md": "Europe briefing",
}
ACCEPTED_WARNINGS = [
    "stories/misspelt-field.md: field 'sumary': unknown field, ignored (did you mean 'summary'?)",
    "stories/duplicate-slug/europe/briefing.md: slug 'briefing' is also used by "
    "stories/duplicate-slug/world/briefing.md; both appear, with distinct anchors",
]
LONG_WORD = "Donaudampfschifffahrtsgesellschaftskapitänswitwenrentenversicherung" * 4
EDITION_FILES = ["manifest.json", "newsletter.eml", "newsletter.html", "newsletter.txt"]


def line(name: str) -> str:
    return f"stories/{name}: {(BAD | DROPPED)[name]}"


def in_load_order(names) -> list[str]:
    """load_stories walks files sorted as paths (folder by folder)."""
    return sorted(names, key=lambda n: Path(n).parts)


def make_root(tmp_path: Path, names) -> Path:
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True)
    for name in names:
        target = root / "stories" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / name, target)
    return root


def outbox_files(root: Path) -> list[str]:
    outbox = root / "outbox"
    return sorted(p.relative_to(outbox).as_posix() for p in outbox.rglob("*")) if outbox.exists() else []


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the folder alone, whatever NEWSLETTER_* the machine has."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)


def test_fixture_set_matches_the_tables() -> None:
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.md")}
    assert on_disk == set(BAD) | set(DROPPED) | set(ACCEPTED)
    # The bytes that matter survived git: no checkout may normalise them.
    assert b"\r\n" in (FIXTURES / "crlf.md").read_bytes()
    assert (FIXTURES / "bom.md").read_bytes().startswith(b"\xef\xbb\xbf")
    assert b"\x00" in (FIXTURES / "nul-bytes.md").read_bytes()
    assert b"Caf\xe9" in (FIXTURES / "latin1.md").read_bytes()


# --- each bad file on its own ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BAD | DROPPED))
def test_load_stories_gives_the_one_line_message(tmp_path: Path, name: str) -> None:
    root = make_root(tmp_path, [name])
    result = load_stories(root / "stories", root, BASE)
    if name in DROPPED:
        assert [str(w) for w in result.warnings] == [line(name)] and result.errors == []
    else:
        assert [str(e) for e in result.errors] == [line(name)] and result.warnings == []
        assert result.errors[0].path == f"stories/{name}"
    assert len(result.stories) == (name not in LEFT_OUT)  # left out only when it cannot be shown
    assert [s.path for s in result.skipped] == ([f"stories/{name}"] if name in LEFT_OUT else [])


@pytest.mark.parametrize("name", list(REPAIRED | DROPPED))
def test_a_repaired_story_is_built_and_still_reported(tmp_path: Path, name: str) -> None:
    root = make_root(tmp_path, [name])
    write_story(root, "good.md", "title: A good story\npublished: 2016-12-30T05:40:00+01:00")
    runner = CliRunner()
    checked = runner.invoke(cli, ["check", "--root", str(root)])
    if name in REPAIRED:  # the editor still has something to fix
        assert checked.exit_code == 1 and line(name) in checked.stderr.splitlines()
    else:
        assert checked.exit_code == 0 and f"warning: {line(name)}" in checked.stderr.splitlines()
    built = runner.invoke(cli, ["build", "--root", str(root)])
    assert built.exit_code == 0, built.output
    assert f"warning: {line(name)}" in built.stderr.splitlines()
    manifest = json.loads((root / "outbox" / "2016-12-30" / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(s["file"] for s in manifest["stories"]) == sorted(["stories/good.md", f"stories/{name}"])
    html = (root / "outbox" / "2016-12-30" / "newsletter.html").read_text(encoding="utf-8")
    assert "javascript:" not in html.lower().replace(" ", "").replace("\t", "")
    assert "www.france24.com/en/middle-east" not in html and "http://newsletter.example.org/images" not in html
    if name == "image-no-alt.md":
        assert re.search(r'<img [^>]*alt=""', html)


@pytest.mark.parametrize("name", list(LEFT_OUT))
def test_cli_check_and_build_refuse_with_the_same_line(tmp_path: Path, name: str) -> None:
    root = make_root(tmp_path, [name])
    write_story(root, "good.md", "title: A good story\npublished: 2016-12-30T05:40:00+01:00")
    runner = CliRunner()

    checked = runner.invoke(cli, ["check", "--root", str(root)])
    assert checked.exit_code == 1, checked.output
    assert checked.stderr.splitlines() == [line(name), "Error: 1 error(s), 0 warning(s)"]
    assert checked.stdout == ""

    built = runner.invoke(cli, ["build", "--root", str(root)])
    assert built.exit_code == 1, built.output
    assert built.stderr.splitlines() == [
        line(name),
        "Error: 1 problem(s) in 1 story file(s); fix them or pass --skip-invalid",
    ]
    assert built.stdout == ""
    assert outbox_files(root) == []


# --- all of them at once, through the real command ------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


@pytest.fixture
def everything(tmp_path: Path) -> Path:
    return make_root(tmp_path, [*BAD, *DROPPED, *ACCEPTED])


def test_check_lists_every_problem_in_one_run(everything: Path) -> None:
    proc = run_cli("check", "--root", str(everything), cwd=everything.parent)
    assert proc.returncode == 1
    assert proc.stdout == ""
    per_file = {f"stories/{n}": line(n) for n in DROPPED} | {"stories/misspelt-field.md": ACCEPTED_WARNINGS[0]}
    warnings = [per_file[f"stories/{n}"] for n in in_load_order([*DROPPED, "misspelt-field.md"])]
    assert proc.stderr.splitlines() == [
        *(f"warning: {w}" for w in [*warnings, *ACCEPTED_WARNINGS[1:]]),
        *(line(n) for n in in_load_order(BAD)),
        f"Error: {len(BAD)} error(s), {len(ACCEPTED_WARNINGS) + len(DROPPED)} warning(s)",
    ]
    assert outbox_files(everything) == []


def test_build_refuses_listing_every_problem_and_writes_nothing(everything: Path) -> None:
    proc = run_cli("build", "--root", str(everything), cwd=everything.parent)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        *(line(n) for n in in_load_order(LEFT_OUT)),
        f"Error: {len(LEFT_OUT)} problem(s) in {len(LEFT_OUT)} story file(s); fix them or pass --skip-invalid",
    ]
    assert outbox_files(everything) == []


def test_build_skip_invalid_builds_the_rest_naming_each_skipped_file(everything: Path) -> None:
    proc = run_cli("build", "--root", str(everything), "--skip-invalid", cwd=everything.parent)
    assert proc.returncode == 0, proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.endswith(" (skipped)")] == [
        f"{line(n)} (skipped)" for n in in_load_order(LEFT_OUT)
    ]
    shown = {**ACCEPTED, **REPAIRED, **DROPPED}
    assert proc.stdout.startswith(f"Built edition 2016-12-30: {len(shown)} stories in ")
    assert outbox_files(everything) == ["2016-12-30", *(f"2016-12-30/{f}" for f in EDITION_FILES)]

    out = everything / "outbox" / "2016-12-30"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["skipped_files"] == sorted(f"stories/{n}" for n in LEFT_OUT)
    assert [f"{e['file']}: field '{e['field']}': {e['problem']}" if e["field"] else f"{e['file']}: {e['problem']}"
            for e in manifest["skipped"]] == [line(n) for n in in_load_order(LEFT_OUT)]  # fmt: skip
    assert sorted(s["file"] for s in manifest["stories"]) == sorted(f"stories/{n}" for n in shown)
    html = (out / "newsletter.html").read_text(encoding="utf-8")
    for title in ACCEPTED.values():
        assert title in html
    for name in LEFT_OUT:
        assert name.removesuffix(".md") not in html
    # Both same-named stories are there, each with its own anchor.
    assert html.count('id="briefing"') == 1 and html.count('id="briefing-2"') == 1


# --- odd but accepted -----------------------------------------------------------------------------


def test_accepted_files_load_with_only_the_expected_warnings(tmp_path: Path) -> None:
    root = make_root(tmp_path, ACCEPTED)
    result = load_stories(root / "stories", root, BASE)
    assert result.errors == []
    assert [str(w) for w in result.warnings] == ACCEPTED_WARNINGS
    assert {s.path: s.title for s in result.stories} == {f"stories/{n}": t for n, t in ACCEPTED.items()}


def test_bom_is_dropped(tmp_path: Path) -> None:
    root = make_root(tmp_path, ["bom.md"])
    (story,) = load_stories(root / "stories", root, BASE).stories
    assert story.title == "Saved with a byte order mark"
    assert "\ufeff" not in story.title + "".join(b.html for b in story.blocks)
    assert [b.html for b in story.blocks] == ["<p>Windows editors add a BOM; the reader drops it.</p>\n"]


def test_crlf_line_endings_read_like_lf(tmp_path: Path) -> None:
    root = make_root(tmp_path, ["crlf.md"])
    (story,) = load_stories(root / "stories", root, BASE).stories
    assert story.title == "Saved with Windows line endings" and story.section == "Europe"
    assert [b.html for b in story.blocks] == ["<p>First paragraph.</p>\n", "<p>Second paragraph.</p>\n"]
    assert not any("\r" in t.content for b in story.blocks for t in b.tokens)


def test_misspelt_field_is_ignored_by_build(tmp_path: Path) -> None:
    root = make_root(tmp_path, ["misspelt-field.md"])
    result = build(load_settings(root, environ={}))
    (story,) = result.edition.stories
    assert story.summary == ""
    assert "This field is ignored" not in result.rendered.html
    assert [str(w) for w in result.warnings] == [ACCEPTED_WARNINGS[0]]


def test_duplicate_slugs_get_distinct_anchors(tmp_path: Path) -> None:
    root = make_root(tmp_path, ["duplicate-slug/world/briefing.md", "duplicate-slug/europe/briefing.md"])
    settings = load_settings(root, environ={})
    loaded = load_stories(settings.stories_dir, settings.root, settings.base_url)
    edition = select_edition(loaded.stories, date(2016, 12, 30), settings)
    # Ranked newest first at equal priority: Europe (05:28) keeps the plain slug, World (05:27) gets "-2".
    assert dict(edition.anchors) == {
        "duplicate-slug/europe/briefing": "briefing",
        "duplicate-slug/world/briefing": "briefing-2",
    }
    html = build(settings).rendered.html
    assert html.count('id="briefing"') == 1 and html.count('id="briefing-2"') == 1
    assert "World briefing" in html and "Europe briefing" in html


VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


class _Ancestry(HTMLParser):
    """Records, for the text holding `needle`, the open elements around it (tag, class, style)."""

    def __init__(self, needle: str) -> None:
        super().__init__(convert_charrefs=True)
        self.needle = needle
        self.stack: list[tuple[str, str, str]] = []
        self.found: list[list[tuple[str, str, str]]] = []
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._in_style = tag == "style"
        if tag not in VOID_TAGS:
            self.stack.append((tag, a.get("class") or "", (a.get("style") or "").replace(" ", "")))

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data.replace(" ", ""))
        if self.needle in data:
            self.found.append(list(self.stack))


def test_overlong_word_builds_and_is_allowed_to_wrap(tmp_path: Path) -> None:
    root = make_root(tmp_path, ["overlong-word.md"])
    runner = CliRunner()
    built = runner.invoke(cli, ["build", "--root", str(root)])
    assert built.exit_code == 0, built.output
    html = (root / "outbox" / "2016-12-30" / "newsletter.html").read_text(encoding="utf-8")
    scan = _Ancestry(LONG_WORD)
    scan.feed(html)
    assert scan.found, "the long word is missing from the HTML"
    for stack in scan.found:
        tags = [t for t, _, _ in stack]
        assert tags[-1] == "p"
        # Inline, for clients that drop <style>: a cell around the text may break long words…
        assert any("word-break:break-word" in style or "overflow-wrap:" in style for _, _, style in stack), stack
        # …and the <style> rule for body paragraphs lets them wrap anywhere, inside an .nl-body cell.
        assert any("nl-body" in cls.split() for _, cls, _ in stack), stack
    assert any(".nl-bodyp,.nl-bodyli{overflow-wrap:anywhere;word-break:break-word;}" in css for css in scan.css)
