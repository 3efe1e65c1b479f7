"""Story intake figures: a 1,000-entry RSS feed from a local file, imported, then imported again.

Targets (issue 6): the first import ≤ 2 s; re-importing the unchanged file ≤ 0.5 s, writing nothing.
A third figure re-imports the same entries from a file whose bytes changed (a new lastBuildDate), the
case where every entry is parsed and compared but none rewritten.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from newsletter.config import load_settings
from newsletter.intake import import_feed

ENTRIES = 1000
RUNS = 5


def make_feed(entries: int = ENTRIES, build: str = "Tue, 05 Mar 2024 09:00:00 +0000") -> str:
    start = datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    items = []
    for i in range(entries):
        when = format_datetime(start - timedelta(minutes=7 * i))
        items.append(
            f"""<item><title>Story {i}: council debates the harbour plan, round {i % 17}</title>
<link>https://news.example.org/2024/03/story-{i}</link><guid>https://news.example.org/2024/03/story-{i}</guid>
<pubDate>{when}</pubDate><dc:creator>Reporter {i % 23}</dc:creator><category>Section {i % 6}</category>
<description>What happened in story {i}, in one sentence for the inbox.</description>
<content:encoded><![CDATA[<p>Story {i} begins with <a href="/2024/03/context-{i}">some context</a> and
<em>a quote</em>.</p><p>A second paragraph gives the details of the plan and what the council decided.</p>
<h2>What next</h2><ul><li>A vote in April</li><li>A public meeting</li></ul>]]></content:encoded>
<media:content url="https://cdn.example.org/{i}.jpg" medium="image"><media:description>Photo {i}</media:description>
</media:content></item>"""
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:media="http://search.yahoo.com/mrss/"><channel><title>Bench</title>'
        f"<link>https://news.example.org/</link><lastBuildDate>{build}</lastBuildDate>{''.join(items)}"
        "</channel></rss>"
    )


def _files(root: Path) -> dict[str, int]:
    return {p.as_posix(): p.stat().st_mtime_ns for p in (root / "stories").rglob("*.md")}


def figures() -> Iterator[tuple[str, float, str]]:
    first, first_cpu, again, rebuilt = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        feed = base / "feed.xml"
        for run in range(RUNS):
            feed.write_text(make_feed(), encoding="utf-8")
            root = base / f"paper{run}"
            (root / "stories").mkdir(parents=True)
            settings = load_settings(root, environ={})

            started, cpu = time.perf_counter(), time.process_time()
            report = import_feed(settings, str(feed))
            first.append(time.perf_counter() - started)
            first_cpu.append(time.process_time() - cpu)
            assert report.written == ENTRIES and not report.failed, report.failed[:3]
            written = _files(root)

            started = time.perf_counter()
            report = import_feed(settings, str(feed))
            again.append(time.perf_counter() - started)
            assert (report.written, report.updated, report.unchanged) == (0, 0, ENTRIES)
            assert _files(root) == written, "re-import rewrote files"

            feed.write_text(make_feed(build="Tue, 05 Mar 2024 09:30:00 +0000"), encoding="utf-8")
            started = time.perf_counter()
            report = import_feed(settings, str(feed))
            rebuilt.append(time.perf_counter() - started)
            assert (report.written, report.updated, report.unchanged) == (0, 0, ENTRIES)
            assert _files(root) == written, "re-import of changed bytes rewrote files"
    yield "intake: import 1,000-entry feed from a file", statistics.median(first), "s"
    # On a shared machine the wall time includes waiting for a core; the CPU time does not.
    yield "intake: import 1,000-entry feed from a file, CPU time", statistics.median(first_cpu), "s"
    yield "intake: re-import unchanged (files written: 0)", statistics.median(again), "s"
    yield "intake: re-import, feed bytes changed, entries not (files written: 0)", statistics.median(rebuilt), "s"
