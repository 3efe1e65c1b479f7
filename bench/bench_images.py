"""Story photos: `newsletter build` of a 20-story edition with 20 camera-size photos, cold and warm.

python bench/run.py images

Side by side, in one run: the same edition without photos (the reference), with 20 photos of
6,000 × 4,000 px (JPEG, EXIF orientation 6) built cold (nothing processed yet), then warm (every
photo already published: no image work). Targets: warm within 1.3x of the reference. Where Pillow
writes AVIF, the same photos again with `[images] avif = true`, cold and warm (what AVIF costs).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, features

RUNS = 3
STORIES = 20


def _paper(root: Path, photos: bool) -> None:
    stories = root / "stories"
    stories.mkdir(parents=True)
    for i in range(STORIES):
        image = ""
        if photos:
            # Distinct originals: each one is its own work (a shared one would be processed once).
            img = Image.new("RGB", (6000, 4000), (20 + i * 9, 80, 160))
            img.paste((200, 30 + i * 8, 30), (i * 200, 500, i * 200 + 1500, 2500))
            exif = Image.Exif()
            exif[0x0112] = 6
            img.save(stories / f"photo-{i}.jpg", "JPEG", quality=88, exif=exif.tobytes())
            image = f"image:\n  src: photo-{i}.jpg\n  alt: Photo {i}\n"
        (stories / f"story-{i}.md").write_text(
            f'---\ntitle: "Story {i}"\npublished: 2016-12-30T0{i % 6}:{i:02d}:00+01:00\nsection: "S{i % 4}"\n'
            f"priority: {i}\n{image}---\nA paragraph of the story, long enough to be a body.\n",
            encoding="utf-8",
        )


def _build(root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(root), "--date", "2016-12-30"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def figures() -> Iterator[tuple[str, float, str]]:
    plain, cold, warm, avif_cold, avif_warm = [], [], [], [], []
    avif = features.check("avif")
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as tmp:
            without, wit, modern = Path(tmp) / "plain", Path(tmp) / "photos", Path(tmp) / "avif"
            _paper(without, photos=False)
            _paper(wit, photos=True)
            plain.append(_build(without))
            cold.append(_build(wit))
            warm.append(_build(wit))
            shutil.rmtree(wit / "outbox")
            if avif:
                _paper(modern, photos=True)
                (modern / "newsletter.toml").write_text("[images]\navif = true\n", encoding="utf-8")
                avif_cold.append(_build(modern))
                avif_warm.append(_build(modern))
    if avif_cold:
        yield "images.build_cold_20_photos_avif_s", statistics.median(avif_cold), "s ([images] avif = true)"
        yield "images.build_warm_20_photos_avif_s", statistics.median(avif_warm), "s"
        yield "images.avif_cold_vs_cold", statistics.median(avif_cold) / statistics.median(cold), "x"
    ref = statistics.median(plain)
    yield "images.build_no_photos_s", ref, "s (reference: the same 20 stories without photos)"
    yield "images.build_cold_20_photos_s", statistics.median(cold), "s"
    yield "images.build_warm_20_photos_s", statistics.median(warm), "s"
    yield "images.cold_vs_reference", statistics.median(cold) / ref, "x"
    yield "images.warm_vs_reference", statistics.median(warm) / ref, "x (target <= 1.3)"
