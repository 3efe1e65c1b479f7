"""The MJML we render is MJML that MJML's own tools accept: the reference compiler (node `mjml` 5) at
validationLevel "strict" compiles the demo edition written by `newsletter build --mjml` without a
single complaint, and what it makes says what our HTML says."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import cli

DAY = "2016-12-30"


def compile_reference(node_tools: Path, mjml: Path) -> tuple[int, dict[str, object]]:
    proc = subprocess.run(
        ["node", str(node_tools / "compile-mjml.js"), str(mjml)], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def visible_text(html: str) -> str:
    html = re.sub(r"<(style|title)\b.*?</\1>|<!--.*?-->", " ", html, flags=re.S | re.I)
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("&nbsp;", " ").split())


def test_the_demo_edition_compiles_with_the_reference_compiler_at_strict(demo_root: Path, node_tools: Path) -> None:
    result = CliRunner().invoke(cli, ["build", "--root", str(demo_root), "--mjml"])
    assert result.exit_code == 0, result.output
    out = demo_root / "outbox" / DAY
    mjml = out / "newsletter.mjml"
    source = mjml.read_text(encoding="utf-8")
    assert source.startswith("<mjml") and '<mj-style inline="inline">' in source
    code, report = compile_reference(node_tools, mjml)
    assert report["errors"] == [] and code == 0
    theirs = str(report["html"])
    ours = (out / "newsletter.html").read_text(encoding="utf-8")
    # The same email: same words, the dark-mode styles and the colour-scheme declaration carried through.
    assert visible_text(theirs) == visible_text(ours)
    for html in (theirs, ours):
        assert re.search(r"@media \(prefers-color-scheme: dark\)", html)
        assert '<meta name="color-scheme" content="light dark"' in html
    # What the inline style sheet sets is on the elements in both (MJML inlines it itself).
    assert re.search(r'<a href="https://[^"]+"[^>]*style="[^"]*color: ?#b0122b', theirs)


def test_the_reference_compiler_refuses_what_it_used_to(tmp_path: Path, node_tools: Path) -> None:
    """The check above has teeth: a tag-like text inside a style sheet (what email.css once held in a
    comment) is refused, and so is an element out of place."""
    bad = tmp_path / "bad.mjml"
    bad.write_text(
        '<mjml><mj-head><mj-style inline="inline">/* mail clients strip <style> */ p { color: red; }</mj-style>'
        "</mj-head><mj-body><mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section></mj-body></mjml>",
        encoding="utf-8",
    )
    code, report = compile_reference(node_tools, bad)
    assert code == 1 and "Malformed MJML" in str(report["errors"])
    bad.write_text("<mjml><mj-body><mj-text>x</mj-text></mj-body></mjml>", encoding="utf-8")
    code, report = compile_reference(node_tools, bad)
    assert code == 1 and "mj-text cannot be used inside mj-body" in str(report["errors"])


def test_build_writes_the_mjml_only_when_asked(demo_root: Path) -> None:
    runner = CliRunner()
    out = demo_root / "outbox" / DAY
    assert runner.invoke(cli, ["build", "--root", str(demo_root), "--mjml"]).exit_code == 0
    assert (out / "newsletter.mjml").is_file()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    # A later build without --mjml leaves no MJML of another build beside its HTML.
    assert runner.invoke(cli, ["build", "--root", str(demo_root)]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "newsletter.eml",
        "newsletter.html",
        "newsletter.txt",
    ]


def test_check_names_a_style_sheet_the_reference_compiler_would_refuse(demo_root: Path) -> None:
    """mjml-python builds such an email without a word, so `newsletter check` is where it must show."""
    templates = demo_root / "templates"
    templates.mkdir()
    (templates / "email.css").write_text(
        "{# a Jinja comment may say <style> #}\n/* mail clients\n   strip <style> */\n.nl-body p { margin: 0; }\n",
        encoding="utf-8",
    )
    (templates / "base.mjml.j2").write_text(
        (Path(__file__).parent.parent / "templates" / "base.mjml.j2")
        .read_text(encoding="utf-8")
        .replace("<mj-style>", "<mj-style>\n      /* <b> was here */", 1),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["check", "--root", str(demo_root)])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if "tag-like" in ln]
    assert len(lines) == 2
    assert lines[0].startswith("templates/base.mjml.j2:") and "'<b>'" in lines[0]
    assert lines[1].startswith("templates/email.css:3: tag-like text '<style>'")
    assert "Malformed MJML" in lines[1]
