"""Preview figures: what an editor waits for. Medians.

- rebuild after a story is saved (in process): `Previewer.changed()` then the edition again;
- a page served from the cache, through the whole ASGI stack (host check, Jinja, headers);
- the index of 30 editions right after a story is saved (one edition rendered again) and after a
  template is saved (all of them);
- live reload end to end on a real `newsletter preview` subprocess: save a story → "change" event.

python bench/run.py preview
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette would like httpx2 for its test client
    from starlette.testclient import TestClient

from newsletter.web.preview.app import create_app
from newsletter.web.preview.state import Previewer

REPO = Path(__file__).resolve().parent.parent
DAY = date(2016, 12, 30)
LEAD_FILE = "stories/2016/12/30/syrian-regime-emboldened-ahead-of-russia-backed-peace-talks.md"
RUNS = 20


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _demo(tmp: Path, extra_days: int = 0) -> Path:
    root = tmp / f"paper-{extra_days}"
    shutil.copytree(REPO / "stories", root / "stories", ignore=shutil.ignore_patterns("fr", "ar"))
    for n in range(1, extra_days):
        day = DAY - timedelta(days=n)
        (root / "stories" / f"day-{n:02d}.md").write_text(
            f"---\ntitle: The story of {day.isoformat()}\npublished: {day.isoformat()}T04:00:00+01:00\n"
            f"summary: One story for the edition of {day.isoformat()}, to fill the index.\n---\nBody.\n",
            encoding="utf-8",
        )
    return root


def _live_reload(root: Path, runs: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "preview", "--root", str(root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    story = root / LEAD_FILE
    original = story.read_text(encoding="utf-8")
    samples = []
    try:
        httpx.get(url + f"editions/{DAY}/", timeout=10)  # someone looks at the edition
        with httpx.Client(timeout=10) as client, client.stream("GET", url + "events") as stream:
            lines = stream.iter_lines()
            next(line for line in lines if line.startswith("data:"))  # hello
            for i in range(runs):
                started = time.perf_counter()
                story.write_text(original.replace("Syrian regime", f"Syrian regime ({i})"), encoding="utf-8")
                next(line for line in lines if line == "event: change")
                samples.append(time.perf_counter() - started)
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    return samples


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = _demo(Path(tmp))
        previewer = Previewer(root)
        previewer.edition(DAY)
        story = root / LEAD_FILE
        original = story.read_text(encoding="utf-8")
        samples = []
        for i in range(RUNS):
            story.write_text(original.replace("Syrian regime", f"Syrian regime ({i})"), encoding="utf-8")
            started = time.perf_counter()
            previewer.changed()
            assert previewer.edition(DAY).ok
            samples.append(time.perf_counter() - started)
        yield "preview_rebuild_after_story_save", _median_ms(samples), "ms"

        with TestClient(create_app(previewer, watch=False), base_url="http://127.0.0.1:8000") as client:
            client.get(f"/editions/{DAY}/")
            samples = []
            for _ in range(RUNS):
                started = time.perf_counter()
                assert client.get(f"/editions/{DAY}/").status_code == 200
                samples.append(time.perf_counter() - started)
            yield "preview_cached_edition_page", _median_ms(samples), "ms"

        many_root = _demo(Path(tmp), extra_days=30)
        many = Previewer(many_root)
        one = many_root / "stories" / "day-05.md"
        template = many_root / "templates" / "newsletter.txt.j2"
        template.parent.mkdir()
        shutil.copy(REPO / "templates" / "newsletter.txt.j2", template)
        with TestClient(create_app(many, watch=False), base_url="http://127.0.0.1:8000") as client:
            client.get("/editions/")
            for name, path in (("story", one), ("template", template)):
                text = path.read_text(encoding="utf-8")
                samples = []
                for i in range(5):
                    path.write_text(text + "\n" * (i + 1), encoding="utf-8")
                    started = time.perf_counter()
                    many.changed()
                    assert client.get("/editions/").status_code == 200
                    samples.append(time.perf_counter() - started)
                # a story touches one edition; a template, all 30 of them
                yield f"preview_index_30_editions_after_{name}_save", _median_ms(samples), "ms"

        yield "preview_live_reload_save_to_event", _median_ms(_live_reload(root, 10)), "ms"


if __name__ == "__main__":
    for name, value, unit in figures():
        print(f"{name}: {value:.4g} {unit}")
