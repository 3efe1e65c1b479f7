"""The CLI is a contract: every command has help with an example and is documented in the README."""

from __future__ import annotations

import re
import tomllib

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from tests.helpers import REPO


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        out.append((full, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, full + " "))
    return out


COMMANDS = _commands(cli)


def test_there_are_commands():
    assert {"build", "check"} <= {name for name, _ in COMMANDS}


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_has_help_with_example_and_root(name, command):
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert (command.help or "").strip(), f"{name} has no help"
    if not isinstance(command, click.Group):
        assert "Example" in result.output, f"`newsletter {name} --help` shows no example"
        assert "--root" in result.output, f"`newsletter {name}` takes no --root"


@pytest.mark.parametrize("name", [n for n, _ in COMMANDS])
def test_command_is_in_the_docs(name):
    docs = "".join(page.read_text() for page in sorted((REPO / "docs").glob("*.md")) if page.name != "cli.md")
    assert f"newsletter {name}" in docs, f"no page of docs/ (the generated reference aside) shows `newsletter {name}`"


def test_readme_starts_with_the_two_commands():
    readme = (REPO / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert block[0].endswith("newsletter build") and "pip install" in block[0]
    assert block[1] == "./scripts/test"
    assert "./scripts/test" in (REPO / ".ci" / "run").read_text()


def test_ci_checks_formatting_lint_and_types_before_the_tests() -> None:
    """.ci/run does what scripts/check does, in the same order, and mypy runs strict (pyproject.toml)."""
    for script in (REPO / ".ci" / "run", REPO / "scripts" / "check"):
        lines = [line.strip() for line in script.read_text().splitlines()]
        steps = [".venv/bin/ruff format --check .", ".venv/bin/ruff check .", ".venv/bin/mypy"]
        at = [lines.index(step) for step in steps]
        tests = next(i for i, line in enumerate(lines) if "scripts/test" in line and not line.startswith("#"))
        assert at == sorted(at) and at[-1] < tests, script
    mypy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["strict"] is True and mypy["packages"] == ["newsletter"]
    assert (REPO / "newsletter" / "py.typed").is_file()


def test_no_test_names_a_path_of_one_machine() -> None:
    """The suite passes on a fresh clone in any folder: no /work/…, /home/…, /tmp/… literals in tests/."""
    pattern = re.compile(r"""["'](/(?:work|home|root|tmp|Users|srv|opt)/[^"']*)["']""")
    found = [
        f"{path.relative_to(REPO)}:{n}: {m.group(1)}"
        for path in sorted((REPO / "tests").rglob("*.py"))
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for m in pattern.finditer(text)
    ]
    assert found == []
