"""A big archive: `newsletter build --date 2016-12-30` with 20,000 archived stories beside the demo.

python bench/run.py archive

Times the real command (a process each) with no archive, then with 20,000 archived stories (2010–2015):
cold (no story index yet: every front matter is read once) and warm (the index is fresh: a stat walk).
Targets: warm <= 1.3x and cold <= 10x the time with no archive. Then the peak memory (RSS) of a cold
and a warm build with 100,000 archived stories (target: under 250 MB).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = 3
BODY = "\n\n".join(
    f"Paragraph {n} of an archived story, of the length a real one has, with a [link](https://paper.example/{n})."
    for n in range(8)
)

_PEAK = textwrap.dedent(
    """
    import resource, subprocess, sys
    subprocess.run(sys.argv[1:], check=True, capture_output=True)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
    """
)


def _archive(root: Path, count: int) -> None:
    for i in range(count):
        year, day = 2010 + i % 6, 1 + i % 28
        folder = root / "stories" / "archive" / str(year) / f"{1 + i % 12:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"story-{i:06d}.md").write_text(
            f"---\ntitle: Archived story {i}\npublished: {year}-{1 + i % 12:02d}-{day:02d}T08:{i % 60:02d}:00+01:00\n"
            f"section: Archive\nsummary: One of many archived stories.\n---\n{BODY}\n",
            encoding="utf-8",
        )


def _build(root: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(root), "--date", "2016-12-30"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def _peak(root: Path) -> float:
    cmd = [sys.executable, "-m", "newsletter", "build", "--root", str(root), "--date", "2016-12-30"]
    out = subprocess.run([sys.executable, "-c", _PEAK, *cmd], check=True, capture_output=True, text=True).stdout
    return int(out.strip()) / 1e6


def _index(root: Path) -> Path:
    return root / "data" / "story-index.sqlite"


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "paper"
        shutil.copytree(REPO / "stories", root / "stories")
        _build(root)  # warm the interpreter's caches
        none = statistics.median(_build(root) for _ in range(RUNS))
        yield "archive.build_no_archive.median", none, "s"

        _archive(root, 20_000)
        colds = []
        for _ in range(2):
            _index(root).unlink(missing_ok=True)
            colds.append(_build(root))
        cold = statistics.median(colds)
        warm = statistics.median(_build(root) for _ in range(RUNS))
        yield "archive.build_20k_cold.median", cold, "s"
        yield "archive.build_20k_warm.median", warm, "s"
        yield "archive.cold_vs_none", cold / none, "x"
        yield "archive.warm_vs_none", warm / none, "x"

        _archive(root, 100_000)
        _index(root).unlink(missing_ok=True)
        yield "archive.peak_rss_100k_cold", _peak(root), "MB"
        yield "archive.peak_rss_100k_warm", _peak(root), "MB"
