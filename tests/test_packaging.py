"""A plain (non-editable) install renders with its own templates: they ship inside the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.helpers import REPO, copy_demo_config, copy_demo_stories


@pytest.mark.slow
def test_wheel_ships_templates_and_builds_without_a_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(wheels)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(wheels.glob("newsroom_newsletter-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "newsletter/templates/newsletter.mjml.j2" in names
    assert "newsletter/templates/partials/story_card.mjml.j2" in names
    assert "newsletter/py.typed" in names  # PEP 561: type checkers of projects using the package read its hints
    for lang in ("en", "fr", "ar", "es"):  # the catalogues, compiled when first used
        assert f"newsletter/locale/{lang}/LC_MESSAGES/messages.po" in names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    paper = tmp_path / "paper"
    copy_demo_stories(paper / "stories")
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import newsletter; print(newsletter.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(target))
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "build"], env=env, cwd=paper, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Syrian regime emboldened" in (paper / "outbox" / "2016-12-30" / "newsletter.html").read_text()

    # The French and Arabic editions, in their own words, from the installed package's catalogues.
    shutil.rmtree(paper / "stories")
    copy_demo_stories(paper / "stories", languages=True)
    copy_demo_config(paper)
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "build"], env=env, cwd=paper, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Se désabonner" in (paper / "outbox" / "2016-12-30" / "fr" / "newsletter.html").read_text()
    assert "إلغاء الاشتراك" in (paper / "outbox" / "2016-12-30" / "ar" / "newsletter.txt").read_text()
