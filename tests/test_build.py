"""End to end: `newsletter build` and `check` as a user runs them; the .eml; deterministic output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import cli
from tests.helpers import check_eml_tool, write_story


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_build_demo_edition_as_a_process(demo_root):
    proc = run_cli("build", cwd=demo_root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Built edition 2016-12-30: 7 stories in 6 section(s)")
    out = demo_root / "outbox" / "2016-12-30"
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "newsletter.eml",
        "newsletter.html",
        "newsletter.txt",
    ]
    msg = message_from_bytes((out / "newsletter.eml").read_bytes(), policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.get_payload()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    headline = "Syrian regime emboldened ahead of Russia-backed peace talks"
    assert headline in plain.get_content() and headline in html.get_content()
    assert html.get_content().replace("\r\n", "\n").rstrip("\n") == (out / "newsletter.html").read_text().rstrip("\n")
    assert plain.get_content().replace("\r\n", "\n") == (out / "newsletter.txt").read_text()
    assert msg["Subject"] == "The Morning Brief — Friday, December 30, 2016"
    assert msg["From"] == "The Morning Brief <morning@newsletter.example.org>"
    assert msg["To"].addresses[0].addr_spec == "morning-brief@newsletter.example.org"
    assert msg["List-Id"] == "The Morning Brief <morning-brief.newsletter.example.org>"
    assert msg["MIME-Version"] == "1.0" and msg["Date"] and msg["Message-ID"].startswith("<edition-2016-12-30.")
    raw = (out / "newsletter.eml").read_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["edition"] == "2016-12-30" and manifest["timezone"] == "Europe/Paris"
    assert manifest["window"] == {"start": "2016-12-29T06:00:00+01:00", "end": "2016-12-30T06:00:00+01:00"}
    assert manifest["stories"][0]["file"].endswith("syrian-regime-emboldened-ahead-of-russia-backed-peace-talks.md")
    assert manifest["stories"][0]["placement"] == "lead"
    assert manifest["sizes"]["html_bytes"] == len((out / "newsletter.html").read_bytes())
    assert "built_at" in manifest


def test_eml_passes_the_independent_checker(demo_root):
    check_eml = check_eml_tool()
    assert run_cli("build", "--root", str(demo_root)).returncode == 0
    eml = demo_root / "outbox" / "2016-12-30" / "newsletter.eml"
    proc = subprocess.run([sys.executable, str(check_eml), str(eml)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert "RESULT: PASS" in proc.stdout


def test_rebuild_is_byte_identical_but_for_date_and_ids(demo_root):
    runner = CliRunner()
    out = demo_root / "outbox" / "2016-12-30"
    first = {}
    for attempt in range(2):
        result = runner.invoke(cli, ["build", "--root", str(demo_root), "--date", "2016-12-30"])
        assert result.exit_code == 0, result.output
        files = {p.name: p.read_bytes() for p in out.iterdir()}
        if attempt == 0:
            first = files
    assert files["newsletter.html"] == first["newsletter.html"]
    assert files["newsletter.txt"] == first["newsletter.txt"]

    def strip(eml: bytes) -> list[bytes]:
        return [ln for ln in eml.split(b"\r\n") if not ln.startswith((b"Date:", b"Message-ID:"))]

    assert strip(files["newsletter.eml"]) == strip(first["newsletter.eml"])
    m1, m2 = json.loads(first["manifest.json"]), json.loads(files["manifest.json"])
    m1.pop("built_at"), m2.pop("built_at")
    assert m1 == m2


def test_no_date_builds_newest_edition_and_date_flag_picks_one(empty_root):
    write_story(empty_root, "a.md", 'title: "Old"\npublished: 2016-12-20T05:00:00+01:00')
    write_story(empty_root, "b.md", 'title: "New"\npublished: 2016-12-30T05:00:00+01:00')
    runner = CliRunner()
    assert runner.invoke(cli, ["build", "--root", str(empty_root)]).exit_code == 0
    assert (empty_root / "outbox" / "2016-12-30" / "newsletter.html").exists()
    result = runner.invoke(cli, ["build", "--root", str(empty_root), "--date", "2016-12-20"])
    assert result.exit_code == 0 and "Built edition 2016-12-20: 1 stories" in result.output


def test_empty_edition_is_an_error_not_an_email(demo_root):
    proc = run_cli("build", "--root", str(demo_root), "--date", "2016-12-25")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "Error: edition 2016-12-25: no stories published between 2016-12-24T06:00+01:00 and 2016-12-25T06:00+01:00"
    )
    assert not (demo_root / "outbox" / "2016-12-25").exists()


def test_bad_date_flag(demo_root):
    proc = run_cli("build", "--root", str(demo_root), "--date", "30/12/2016")
    assert proc.returncode == 2 and "--date" in proc.stderr


def test_no_stories_folder(tmp_path):
    proc = run_cli("build", "--root", str(tmp_path))
    assert proc.returncode == 1 and "no stories under" in proc.stderr


def test_template_error_leaves_no_partial_outbox(demo_root):
    (demo_root / "templates").mkdir()
    (demo_root / "templates" / "newsletter.txt.j2").write_text("{{ lead.title }\n")
    proc = run_cli("build", "--root", str(demo_root))
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: templates/newsletter.txt.j2:1: ")
    assert not (demo_root / "outbox").exists()


def test_write_failure_is_one_line_and_leaves_whole_files(demo_root):
    assert run_cli("build", "--root", str(demo_root)).returncode == 0
    out = demo_root / "outbox" / "2016-12-30"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_story(demo_root, "late.md", 'title: "Late story"\npublished: 2016-12-30T05:59:00+01:00\npriority: 99')
    # manifest.json turned into a folder: its rename fails after the other files were staged
    (out / "manifest.json").unlink()
    (out / "manifest.json").mkdir()
    proc = run_cli("build", "--root", str(demo_root))
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot write ") and "manifest.json" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    for name in ("newsletter.txt", "newsletter.eml"):
        assert (out / name).read_bytes() == before[name] or b"Late story" in (out / name).read_bytes()


def test_check_passes_on_demo_and_lints(demo_root):
    proc = run_cli("check", "--root", str(demo_root))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK: 7 stories, 0 warning(s)"


def test_check_reports_unknown_field_with_did_you_mean(demo_root):
    write_story(demo_root, "t.md", 'title: "T"\ntitel: "typo"\npublished: 2016-12-30T05:00:00+01:00')
    proc = run_cli("check", "--root", str(demo_root))
    assert proc.returncode == 0
    assert "warning: stories/t.md: field 'titel': unknown field, ignored (did you mean 'title'?)" in proc.stderr
    assert run_cli("build", "--root", str(demo_root)).returncode == 0


def test_check_warns_about_words_too_long_for_phones(demo_root):
    word = "Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz"
    write_story(demo_root, "w.md", f'title: "The {word} is repealed"\npublished: 2016-12-30T05:00:00+01:00')
    proc = run_cli("check", "--root", str(demo_root))
    assert proc.returncode == 0
    assert "warning: stories/w.md: field 'title': unbroken word of 63 characters will be split on phones" in proc.stderr


def test_check_reports_template_errors(demo_root):
    (demo_root / "templates" / "partials").mkdir(parents=True)
    (demo_root / "templates" / "partials" / "lead.mjml.j2").write_text("<mj-section>\n{% for x in %}\n")
    proc = run_cli("check", "--root", str(demo_root))
    assert proc.returncode == 1
    assert "templates/partials/lead.mjml.j2:2: " in proc.stderr


def test_python_dash_m_and_console_script_help():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "build" in proc.stdout and "check" in proc.stdout


def test_skip_invalid_with_every_story_broken_lists_them(empty_root):
    write_story(empty_root, "a.md", 'title: "A"\npublished: yesterday')
    write_story(empty_root, "b.md", 'titel: "B"\npublished: 2016-12-30T05:00:00+01:00')
    proc = run_cli("build", "--root", str(empty_root), "--skip-invalid")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "stories/a.md: field 'published': not an ISO 8601 datetime: 'yesterday'",
        "stories/b.md: field 'title': required field is missing",
        "Error: every story file is invalid (2 file(s), 2 problem(s)): nothing to build",
    ]
    assert not (empty_root / "outbox").exists()


def test_far_future_date_is_a_field_error(empty_root):
    write_story(empty_root, "f.md", 'title: "F"\npublished: 9999-12-31T23:59:59-23:59')
    proc = run_cli("check", "--root", str(empty_root))
    assert proc.returncode == 1
    assert "stories/f.md: field 'published': year 9999 is out of range (1900-9000)" in proc.stderr
    assert "Traceback" not in proc.stderr
