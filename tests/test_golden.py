"""Golden files: the demo edition as readers get it, with the clock and ids frozen.

A change to templates, stories or rendering shows up here as a diff to review like code. To accept
an intended change, regenerate on purpose:  UPDATE_GOLDEN=1 ./scripts/test tests/test_golden.py
"""

from __future__ import annotations

import difflib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REPO

from newsletter.config import load_settings
from newsletter.edition.build import build

GOLDEN = Path(__file__).parent / "golden" / "2016-12-30"
FROZEN_NOW = datetime(2016, 12, 30, 5, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def outputs() -> dict[str, bytes]:
    settings = load_settings(REPO, environ={})
    result = build(settings, now=FROZEN_NOW, unique="golden")
    return {
        "newsletter.html": result.rendered.html.encode(),
        "newsletter.txt": result.rendered.text.encode(),
        "newsletter.eml": result.eml,
        "manifest.json": (json.dumps(result.manifest, indent=2, ensure_ascii=False) + "\n").encode(),
    }


def _readable(data: bytes, name: str) -> list[str]:
    text = data.decode("utf-8", "replace")
    if name.endswith(".html"):  # one long line from MJML: break before tags so a diff points somewhere
        text = re.sub(r"(?=<(?:div|table|tr|td|p|h\d|a|img|ul|li|style|mj-)\b)", "\n", text)
    return text.splitlines(keepends=True)


@pytest.mark.parametrize("name", ["newsletter.html", "newsletter.txt", "newsletter.eml", "manifest.json"])
def test_matches_golden(outputs, name):
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(outputs[name])
    expected = path.read_bytes()
    if outputs[name] != expected:
        diff = "".join(
            difflib.unified_diff(
                _readable(expected, name), _readable(outputs[name], name), f"golden/{name}", f"rendered/{name}", n=2
            )
        )
        pytest.fail(f"{name} differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{diff[:6000]}")
