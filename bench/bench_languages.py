"""Language edition figures: three language editions (en, fr, ar) against one, same stories per edition.

python bench/run.py languages

The target: building the three editions of a morning costs at most 3.5 × building one. Each edition
has its own Jinja environment (its catalogue) and its own MJML compile; the stories are read once.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from newsletter.config import load_settings
from newsletter.edition import build_editions

RUNS = 15
STORIES = 10  # per language
DAY = date(2016, 12, 30)
FROZEN = datetime(2016, 12, 30, 5, tzinfo=UTC)
WORDS = {
    "en": "A paragraph of a generated story, written to weigh what a real one weighs, with a link in it.",
    "fr": "Un paragraphe d’article généré, écrit pour peser ce que pèse un vrai, avec un lien dedans.",
    "ar": "فقرة من خبر مولّد، كُتبت لتزن ما يزنه خبر حقيقي، وفيها رابط.",
}


def _root(tmp: Path, languages: list[str]) -> Path:
    root = tmp / "-".join(languages)
    for lang in languages:
        body = "\n\n".join(f"{WORDS[lang]} [{n}](https://paper.example/{lang}/ref/{n})" for n in range(6))
        for i in range(STORIES):
            path = root / "stories" / lang / f"story-{i:02d}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                f'---\ntitle: "{lang} story {i}: {WORDS[lang][:40]}"\n'
                f"published: 2016-12-29T{8 + i % 12:02d}:{i:02d}:00+01:00\nsection: Section {i % 4}\n"
                f'summary: "{WORDS[lang]}"\nurl: https://paper.example/{lang}/{i}\npriority: {i % 3}\n'
                f"lang: {lang}\n---\n{body}\n",
                encoding="utf-8",
            )
    quoted = ", ".join(f'"{lang}"' for lang in languages)
    (root / "newsletter.toml").write_text(f"[list]\nlanguages = [{quoted}]\n", encoding="utf-8")
    return root


def _median_ms(root: Path) -> tuple[float, int]:
    settings = load_settings(root, environ={})
    build_editions(settings, DAY, now=FROZEN, unique="bench")  # warm: imports, MJML engine
    samples = []
    count = 0
    for _ in range(RUNS):
        t0 = time.perf_counter()
        count = len(build_editions(settings, DAY, now=FROZEN, unique="bench").builds)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000, count


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        one, n1 = _median_ms(_root(Path(tmp), ["en"]))
        three, n3 = _median_ms(_root(Path(tmp), ["en", "fr", "ar"]))
        assert (n1, n3) == (1, 3)
        yield f"languages.one_edition_{STORIES}_stories.median", one, "ms"
        yield f"languages.three_editions_{STORIES}_stories_each.median", three, "ms"
        yield "languages.three_over_one", three / one, "× (target ≤ 3.5)"
