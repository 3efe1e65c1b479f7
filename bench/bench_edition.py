"""Edition pipeline figures: in-process render of a 20-story edition, and `newsletter build` as a process.

python bench/run.py edition
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from newsletter.config import load_settings
from newsletter.edition.build import build, write_edition
from newsletter.edition.message import list_copy, serialize
from newsletter.edition.render import make_environment, render_edition
from newsletter.edition.select import select_edition
from newsletter.edition.stories import load_stories

REPO = Path(__file__).resolve().parent.parent
RUNS = 30
FROZEN = datetime(2016, 12, 30, 5, tzinfo=UTC)


def _twenty_story_root(tmp: Path) -> Path:
    """The demo edition plus 13 generated stories: 20 in the 30 December window."""
    root = tmp / "paper"
    shutil.copytree(REPO / "stories", root / "stories", ignore=shutil.ignore_patterns("fr", "ar"))
    body = "\n\n".join(
        f"Paragraph {n} of a generated story, written to weigh what a real one weighs, with a "
        f"[link](https://paper.example/ref/{n}) and some *emphasis* in it."
        for n in range(6)
    )
    for i in range(13):
        (root / "stories" / f"generated-{i:02d}.md").write_text(
            f"---\ntitle: Generated story {i} for the benchmark edition\n"
            f"published: 2016-12-29T{8 + i % 12:02d}:{i:02d}:00+01:00\nsection: Section {i % 5}\n"
            f"summary: A standfirst of ordinary length for generated story {i}, one sentence or two.\n"
            f"url: https://paper.example/{i}\npriority: {i % 4}\n---\n{body}\n",
            encoding="utf-8",
        )
    return root


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = _twenty_story_root(Path(tmp))
        settings = load_settings(root, environ={})
        stories = load_stories(settings.stories_dir, settings.root, settings.base_url).stories
        env = make_environment(settings)
        ed = select_edition(stories, date(2016, 12, 30), settings)
        assert len(ed.stories) == 20, len(ed.stories)
        render_edition(ed, settings, env)  # warm: templates compiled once per process, as in a real run

        totals: list[float] = []
        stages: dict[str, list[float]] = {}
        demoted = 0
        for _ in range(RUNS):
            t0 = time.perf_counter()
            edition = select_edition(stories, ed.date, settings)
            t1 = time.perf_counter()
            rendered = render_edition(edition, settings, env)
            t2 = time.perf_counter()
            serialize(list_copy(settings, rendered.subject, rendered.text, rendered.html, FROZEN, key="bench"))
            t3 = time.perf_counter()
            totals.append(t3 - t0)
            demoted = len(rendered.demoted)
            for name, value in {"select": t1 - t0, **rendered.timings, "mime": t3 - t2}.items():
                stages.setdefault(name, []).append(value)
        yield "edition.render_20_stories.median", _median_ms(totals), "ms"
        yield "edition.render_20_stories.demoted_for_budget", demoted, "stories"
        for name, samples in stages.items():
            yield f"edition.render_20_stories.{name}", _median_ms(samples), "ms"

        # Whole build in process, with reading and writing, to show every stage.
        whole: dict[str, list[float]] = {}
        for _ in range(10):
            result = build(settings)
            write_edition(result)
            for name, value in result.timings.items():
                whole.setdefault(name, []).append(value)
        for name, samples in whole.items():
            yield f"edition.build_in_process.{name}", _median_ms(samples), "ms"

    demo = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(REPO / "stories", demo / "stories", ignore=shutil.ignore_patterns("fr", "ar"))
        runs = []
        for _ in range(9):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "newsletter", "build", "--root", str(demo)], check=True, capture_output=True
            )
            runs.append(time.perf_counter() - t0)
        yield "edition.newsletter_build_process.median", statistics.median(runs), "s"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        yield "edition.python_startup_alone", time.perf_counter() - t0, "s"
    finally:
        shutil.rmtree(demo)
