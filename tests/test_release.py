"""The release as someone outside the project installs it: the wheel built from this checkout, installed
with pipx (itself installed into a fresh venv) into folders of its own, builds the demo edition; its
metadata is complete; shell completion works from the installed command."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.helpers import REPO, copy_demo_stories

DISTRIBUTION = "newsroom-newsletter"


def _wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(folder)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(folder.glob("newsroom_newsletter-*.whl"))


def test_the_version_is_released_in_the_changelog() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{version}] - " in changelog, f"CHANGELOG.md has no section for {version}"
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{version}] - ")


@pytest.mark.slow
def test_pipx_installs_the_wheel_and_it_builds_the_demo(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(archive.read(meta_name).decode())
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())
    assert meta["Name"] == DISTRIBUTION and meta["License-Expression"] == "MIT"
    assert meta.get_all("Classifier") and meta["Summary"] and meta["Requires-Python"]
    assert not meta.get_all("Project-URL")  # no made-up addresses: a publisher adds its own (docs/operations.md)
    assert "Requires-Dist: prometheus-client" in archive_text(wheel, meta_name)

    tools = tmp_path / "tools"
    subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True, timeout=120)
    subprocess.run([str(tools / "bin" / "pip"), "install", "-q", "pipx"], check=True, capture_output=True, timeout=300)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "VIRTUAL_ENV", "PIPX_"))},
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    installed = subprocess.run(
        [str(tools / "bin" / "pipx"), "install", str(wheel)], env=env, capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    command = tmp_path / "bin" / "newsletter"
    assert command.is_file(), installed.stdout

    paper = tmp_path / "paper"
    copy_demo_stories(paper / "stories")
    built = subprocess.run([str(command), "build"], cwd=paper, env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert "Syrian regime emboldened" in (paper / "outbox" / "2016-12-30" / "newsletter.html").read_text()

    version = subprocess.run([str(command), "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"newsletter, version {meta['Version']}"
    completion = subprocess.run(
        [str(command)], env={**env, "_NEWSLETTER_COMPLETE": "bash_source"}, capture_output=True, text=True, timeout=60
    )
    assert (
        "_newsletter_completion_setup" in completion.stdout
        and "_NEWSLETTER_COMPLETE=bash_complete" in completion.stdout
    )


def archive_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode()
