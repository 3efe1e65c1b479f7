"""The systemd units in deploy/systemd/: systemd's own checker finds nothing to say about them, they are
sandboxed, and what they run is a real command line of this version of the newsletter."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from tests.helpers import IN_CI, REPO

UNITS = REPO / "deploy" / "systemd"
INSTALLED = "/usr/local/bin/newsletter"  # where the units expect the command (README's "Deployment")
SERVICES = ("newsletter-schedule.service", "newsletter-web.service", "newsletter-worker@.service")
SANDBOX = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "CapabilityBoundingSet": "",
}


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if IN_CI:
            pytest.fail("systemd-analyze is missing (apt-get install systemd)")
        pytest.skip("systemd-analyze is not installed")
    return found


def _service(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text(encoding="utf-8"))
    return parser["Service"]


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """The units with the command pointed at this checkout's `newsletter` (verify checks it exists)."""
    command = Path(sys.executable).parent / "newsletter"
    assert command.is_file(), command
    for unit in UNITS.iterdir():
        if unit.suffix in (".service", ".timer"):
            (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, str(command)), encoding="utf-8")
    return tmp_path


def test_systemd_analyze_verify_is_clean(units: Path) -> None:
    names = [n.replace("@.service", "@1.service") for n in sorted(p.name for p in units.iterdir())]
    result = subprocess.run(
        [_analyze(), "verify", "--man=no", *[f"./{n}" for n in names]],
        cwd=units,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stderr


def test_every_long_running_unit_is_sandboxed(units: Path) -> None:
    for name in SERVICES:
        service = _service(name)
        for key, expected in SANDBOX.items():
            assert service.get(key) == expected, f"{name}: {key}"
        writable, folder = service["ReadWritePaths"].split(), service["WorkingDirectory"]
        assert f"{folder}/data" in writable and f"{folder}/outbox" in writable, name
        assert service["EnvironmentFile"] == "/etc/newsletter/secrets.env", name
        assert service["Restart"] == "on-failure" and service["User"] == "newsletter", name
        exposure = subprocess.run(
            [_analyze(), "security", "--offline=yes", "--threshold=40", f"./{name.replace('@.', '@1.')}"],
            cwd=units,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert exposure.returncode == 0, f"{name}: exposure above 4.0\n{exposure.stdout[-400:]}"


def test_the_units_run_real_command_lines() -> None:
    """Each ExecStart parses as this version's command line: an option renamed or removed breaks this test
    (`--help` last, so nothing runs, but every option before it is parsed)."""
    for name in SERVICES:
        argv = shlex.split(_service(name)["ExecStart"])
        assert argv[0] == INSTALLED
        result = CliRunner().invoke(cli, [*argv[1:], "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        assert f"Usage: newsletter {argv[3]}" in result.output or f"Usage: cli {argv[3]}" in result.output, name
