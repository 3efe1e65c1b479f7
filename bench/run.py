"""Benchmarks, run by hand: `python bench/run.py [area ...]`.

Prints one `name: value unit` line per figure. Each area is a module `bench/bench_<area>.py` with a
`figures()` generator yielding (name, value, unit); medians over repeated runs, measured here.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    areas = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    for area in areas:
        module = importlib.import_module(f"bench_{area}")
        for name, value, unit in module.figures():
            print(f"{name}: {value:.4g} {unit}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
