"""Golden files: the demo editions as readers get them, with the clock and ids frozen.

The English edition is `golden/2016-12-30/`; the French and Arabic ones (the repo's newsletter.toml
publishes three languages) are `golden/2016-12-30/fr/` and `golden/2016-12-30/ar/`; the demo's second
newsletter, the weekly, is `golden/weekly/2016-12-30/` (its own List-Id, sender, subject and stories). A change to
templates, catalogues, stories or rendering shows up here as a diff to review like code. To accept an
intended change, regenerate on purpose:  UPDATE_GOLDEN=1 ./scripts/test tests/test_golden.py
"""

from __future__ import annotations

import difflib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.edition import build_editions
from newsletter.letters import find_newsletter, for_newsletter
from tests.helpers import DEMO_DATE as DAY
from tests.helpers import make_demo_root

GOLDEN = Path(__file__).parent / "golden" / "2016-12-30"
FROZEN_NOW = datetime(2016, 12, 30, 5, 0, tzinfo=UTC)
WEEKLY = Path(__file__).parent / "golden" / "weekly" / "2016-12-30"
FOLDERS = {"en": GOLDEN, "fr": GOLDEN / "fr", "ar": GOLDEN / "ar", "weekly": WEEKLY}
NAMES = ["newsletter.html", "newsletter.txt", "newsletter.eml", "manifest.json"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    # A copy of the demo: the build publishes its photos into site/images/, never into the checkout.
    root = make_demo_root(tmp_path_factory.mktemp("golden") / "paper", languages=True)
    settings = load_settings(root, environ={})
    editions = build_editions(settings, DAY, now=FROZEN_NOW, unique="golden")
    assert [b.language for b in editions.builds] == ["en", "fr", "ar"]
    weekly = build_editions(
        for_newsletter(settings, find_newsletter(settings, "weekly")), DAY, now=FROZEN_NOW, unique="golden"
    )
    assert [b.language for b in weekly.builds] == ["en"]
    return {
        ("weekly" if result.settings.newsletter == "weekly" else result.language): {
            "newsletter.html": result.rendered.html.encode(),
            "newsletter.txt": result.rendered.text.encode(),
            "newsletter.eml": result.eml,
            "manifest.json": (json.dumps(result.manifest, indent=2, ensure_ascii=False) + "\n").encode(),
        }
        for result in editions.builds + weekly.builds
    }


def _readable(data: bytes, name: str) -> list[str]:
    text = data.decode("utf-8", "replace")
    if name.endswith(".html"):  # one long line from MJML: break before tags so a diff points somewhere
        text = re.sub(r"(?=<(?:div|table|tr|td|p|h\d|a|img|ul|li|style|mj-)\b)", "\n", text)
    return text.splitlines(keepends=True)


@pytest.mark.parametrize("lang", list(FOLDERS))
@pytest.mark.parametrize("name", NAMES)
def test_matches_golden(outputs, lang, name):
    path = FOLDERS[lang] / name
    rendered = outputs[lang][name]
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rendered)
    expected = path.read_bytes()
    if rendered != expected:
        diff = "".join(
            difflib.unified_diff(
                _readable(expected, name), _readable(rendered, name), f"golden/{name}", f"rendered/{name}", n=2
            )
        )
        pytest.fail(f"{lang}/{name} differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{diff[:6000]}")
