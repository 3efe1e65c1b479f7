"""Bounce figures: messages classified per second on a 10,000-message mbox, and a whole dry run over it.

The mbox mixes the sample reports of tests/fixtures/bounces (every MTA format, ARF, auto-replies,
unrecognised and malformed mail) round-robin, each with its own Message-ID, so the mix is what a busy
bounce mailbox holds rather than one easy format.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from newsletter.bounces.classify import classify
from newsletter.bounces.run import process
from newsletter.bounces.sources import MboxSource
from newsletter.config import load_settings

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "bounces"
MESSAGES = 10_000


def _write_mbox(path: Path) -> int:
    samples = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]
    with path.open("wb") as fh:
        for i in range(MESSAGES):
            raw = samples[i % len(samples)]
            raw = re.sub(rb"(?im)^message-id:\s*<", f"Message-ID: <{i}.".encode(), raw, count=1)
            fh.write(b"From MAILER-DAEMON Wed Nov 30 06:01:12 2016\n" + raw.rstrip(b"\n") + b"\n\n")
    return path.stat().st_size


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        mbox = Path(tmp) / "bounces.mbox"
        size = _write_mbox(mbox)
        yield "bounces mbox size", size / 1e6, "MB"
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            count = 0
            for item in MboxSource(mbox).items():
                if item.data is not None:
                    classify(item.data)
                    count += 1
            rates.append(count / (time.perf_counter() - t0))
        yield f"bounces classified (read + classify, {count} messages)", statistics.median(rates), "msg/s"
        root = Path(tmp) / "paper"
        (root / "stories").mkdir(parents=True)
        (root / "subscribers.csv").write_text(
            "email\nghost@example.net\ngone@example.com\nnouser@example.net\ncomplainer@example.com\n", encoding="utf-8"
        )
        (root / "newsletter.toml").write_text('[mailing]\nsubscribers = "subscribers.csv"\n', encoding="utf-8")
        settings = load_settings(root, environ={})
        t0 = time.perf_counter()
        report = process(settings, MboxSource(mbox), dry_run=True)
        took = time.perf_counter() - t0
        yield f"bounces whole dry run ({report.read} messages, state and policy included)", report.read / took, "msg/s"
