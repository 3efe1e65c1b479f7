"""The documentation site builds with `mkdocs build --strict` (a warning, a broken link or anchor fails it),
and its command reference is generated from the click commands: every command is on the page."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import click
import pytest

from newsletter.cli import cli
from tests.helpers import IN_CI, REPO


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        names.append(f"{prefix}{name}")
        if isinstance(command, click.Group):
            names.extend(_commands(command, f"{prefix}{name} "))
    return names


def test_the_site_builds_strictly_with_every_command(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocs_click") is None:
        if IN_CI:
            pytest.fail("mkdocs and mkdocs-click are missing: .ci/run installs the `docs` extra")
        pytest.skip("the `docs` extra is not installed (pip install -e '.[docs]')")
    out = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reference = (out / "cli" / "index.html").read_text(encoding="utf-8")
    for name in _commands(cli):
        assert f"newsletter {name}" in reference, f"the command reference lacks `newsletter {name}`"
    operations = (out / "operations" / "index.html").read_text(encoding="utf-8")
    for needle in ("/metrics", "--log-format json", "db backup", "db restore", "deploy/systemd/", "pipx install"):
        assert needle in operations, needle
