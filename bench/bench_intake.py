"""Story intake figures: a 1,000-entry RSS feed from a local file, imported, then imported again; and
the quality of page imports over the test pages in tests/fixtures/intake/pages.

Speed targets: the first import ≤ 2 s; re-importing the unchanged file ≤ 0.5 s, writing nothing. A
third figure re-imports the same entries from a file whose bytes changed (a new lastBuildDate), the
case where every entry is parsed and compared but none rewritten.

Quality (see `quality()`): pages imported; instants right to the minute among pages stating a full
timestamp; sections and titles as expected.json says; words of article kept against trafilatura's own
plain-text output of the same page; boilerplate passages (listed per page in expected.json) found in
the story bodies — with our rules, and with the extractor alone keeping links and images (as imports
did before the rules) for comparison.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import trafilatura

from newsletter.config import load_settings
from newsletter.errors import IntakeError
from newsletter.intake import import_feed
from newsletter.intake.convert import html_to_markdown, plain_text
from newsletter.intake.metadata import parse_instant
from newsletter.intake.pages import parse_page
from newsletter.textutil import count_words

ENTRIES = 1000
RUNS = 5
PAGES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "intake" / "pages"


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
    # Last: the extractor's models and the pages' trees would otherwise weigh on the timed runs above.
    yield from quality()


def _plain_words(markdown: str) -> int:
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", markdown)  # images are not words
    return count_words(re.sub(r"\]\([^)]*\)", "]", text).replace("[", "").replace("]", ""))


def quality() -> Iterator[tuple[str, float, str]]:
    expected: dict[str, dict[str, Any]] = {
        k: v
        for k, v in json.loads((PAGES / "expected.json").read_text(encoding="utf-8")).items()
        if k.endswith(".html")
    }
    imported = instants = timed = sections = titles = 0
    kept_words = extractor_words = 0
    leaks = leaks_before = passages = phrases = phrases_kept = 0
    for name, want in sorted(expected.items()):
        data = (PAGES / name).read_bytes()
        text = data.decode("utf-8")
        passages += len(want["boilerplate"])
        # The extractor alone, as imports used it before our rules: links and images kept.
        before = trafilatura.extract(
            text, output_format="html", include_links=True, include_images=True, include_formatting=True
        )
        before_md = html_to_markdown(before or "", "https://example.org/")
        leaks_before += sum(p in before_md for p in want["boilerplate"])
        try:
            item = parse_page(data, source=name, url=None, timezone=ZoneInfo("Europe/Paris"), file=PAGES / name).item
        except IntakeError as exc:
            print(f"intake quality: {exc}")
            continue
        imported += 1
        stated, has_time = parse_instant(want["published"])
        if has_time and not want.get("date_only") and stated is not None and stated.tzinfo is not None:
            timed += 1
            right = abs((item.published - stated).total_seconds()) <= 60
            instants += right
            if not right:
                print(f"intake quality: {name}: published {item.published.isoformat()}, page says {want['published']}")
        sections += (item.section or None) == want["section"]
        titles += item.title == want["title"]
        kept_words += _plain_words(item.body)
        # The extractor's plain text, less its first line when that is the headline (a story shows its
        # title apart from the body); what remains beyond our body is what our rules removed.
        lines = (trafilatura.extract(text) or "").splitlines()
        if lines and lines[0].strip() in (item.title, want["title"]):
            lines = lines[1:]
        extractor_words += count_words(plain_text(" ".join(lines)))
        phrases += len(want["article"])
        phrases_kept += sum(p in item.body for p in want["article"])
        leaked = [p for p in want["boilerplate"] if p in item.body]
        leaks += len(leaked)
        for phrase in leaked:
            print(f"intake quality: {name}: boilerplate kept: {phrase!r}")
    total = len(expected)
    yield f"intake quality: pages imported (of {total})", imported, "pages"
    yield f"intake quality: instants right ±1 min (of {timed} pages stating a full timestamp)", instants, "pages"
    yield f"intake quality: sections as expected (of {total})", sections, "pages"
    yield f"intake quality: titles as expected (of {total})", titles, "pages"
    yield f"intake quality: article phrases kept (of {phrases} listed)", phrases_kept, "phrases"
    yield "intake quality: words kept vs the extractor's plain output (less the headline)", kept_words, "words"
    yield "intake quality: words in the extractor's plain output (less the headline)", extractor_words, "words"
    yield "intake quality: words kept, share of the extractor's plain output", 100 * kept_words / extractor_words, "%"
    yield f"intake quality: boilerplate passages kept (of {passages} listed)", leaks, "passages"
    yield f"intake quality: boilerplate passages kept by the extractor alone (of {passages})", leaks_before, "passages"
