"""Web figures: the public app under load, and the archive's build times.

- one-click unsubscribe POSTs per second handled by one worker (`newsletter serve`, a real uvicorn
  subprocess; distinct signed tokens, each recorded in the suppression list and the store);
- subscribe POSTs per second, counted until every confirmation email is in the outbox (each one is
  rendered from MJML and written after its answer);
- the demo edition's web side after a build (`publish_edition`): first write and an unchanged rewrite;
- a whole archive of 1,000 editions × 15 stories rebuilt by `rebuild_site` (story files read and
  rendered, 16,000 pages written). The manifests are made by the real selection (`select_edition`)
  rather than by building 1,000 emails, which is not what is measured here;
- one-click POSTs driven by `wrk` when it is installed (`apt-get install wrk`; optional): this version,
  a bare Starlette app on the same server (the ceiling of the framework here) and, with
  BENCH_WEB_BEFORE=/an/earlier/checkout, that version, round by round; medians of 3 runs of
  BENCH_WEB_SECONDS (4) each; rate, p50 and p99 latency, and the CPU the server and wrk each spent per
  request (load-independent, unlike the rate on a shared machine).

python bench/run.py web                     (BENCH_WEB_ONLY=app: the public app's figures only)
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx

from newsletter.config import load_settings
from newsletter.delivery import SuppressionList, make_token, suppression_path
from newsletter.edition import build, load_stories, select_edition
from newsletter.web import publish_edition, rebuild_site

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-bench-secret"
LIST_ID = "morning-brief.newsletter.example.org"
CLIENTS = 8
RUNS = 3
WRK_SECONDS = int(os.environ.get("BENCH_WEB_SECONDS", "4"))
WRK_TOKENS = 40_000


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The reference: a bare Starlette app on the same server (uvicorn, httptools, uvloop, one worker) that
# answers a one-click POST with a page of the same size and does nothing else.
_BARE = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
PAGE = "x" * 1515
async def one_click(request):
    await request.body()
    return HTMLResponse(PAGE)
app = Starlette(routes=[Route("/u/{token}", one_click, methods=["POST"]), Route("/healthz", one_click)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", log_level="warning")
"""


class _Server:
    def __init__(self, root: Path, tree: str = "") -> None:
        """`newsletter serve` for `root`, from this checkout or (`tree`) an earlier one's package;
        `tree="bare"`: the bare Starlette reference."""
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env["NEWSLETTER_UNSUBSCRIBE_SECRET"] = SECRET
        command = [sys.executable, "-m", "newsletter", "serve", "--root", str(root), "--port", str(self.port)]
        # Checked: every answered POST's address recorded (the reference records nothing; an earlier
        # version may keep its records in another file layout than this one reads).
        self.records = not tree
        if tree == "bare":
            command, tree = [sys.executable, "-c", _BARE, str(self.port)], ""
        if tree:
            env["PYTHONPATH"] = tree
        self.proc = subprocess.Popen(
            command,
            env=env,
            cwd=tree or None,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("serve did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=20)


def _hammer(url: str, requests: list[tuple[str, dict[str, str]]], latencies: list[float] | None = None) -> float:
    """POST every (path, form) over CLIENTS keep-alive connections; requests per second (and each
    request's time from its first byte sent to its answer's last received, into `latencies`).

    A bare asyncio HTTP/1.1 client, so the load generator (on the same two cores) costs the server as
    little CPU as possible; each connection waits for its answer before sending the next request.
    """
    host, port = url.removeprefix("http://").split(":")
    chunks = [requests[i::CLIENTS] for i in range(CLIENTS)]
    failures: list[bytes] = []

    async def connection(chunk: list[tuple[str, dict[str, str]]]) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for path, form in chunk:
            body = urlencode(form).encode()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\nX-Forwarded-For: {form.get('_ip', '192.0.2.1')}\r\n\r\n"
            )
            sent = time.perf_counter()
            writer.write(head.encode() + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if latencies is not None:
                latencies.append(time.perf_counter() - sent)
            if status.split()[1] not in (b"200", b"303"):
                failures.append(status)
        writer.close()

    async def run_all() -> None:
        await asyncio.gather(*(connection(c) for c in chunks))

    started = time.perf_counter()
    asyncio.run(run_all())
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests, e.g. {failures[0]!r}")
    return len(requests) / elapsed


def _app_figures(tmp: Path) -> Iterator[tuple[str, float, str]]:
    root = tmp / "app"
    root.mkdir()
    (root / "newsletter.toml").write_text(
        '[web]\nhosts = ["127.0.0.1"]\nsubscribe_per_ip = 0\nsubscribe_per_address = 0\n', encoding="utf-8"
    )
    server = _Server(root)
    try:
        tokens = [make_token(SECRET.encode(), LIST_ID, f"reader{n}@example.org") for n in range(4000)]
        _hammer(server.url, [(f"/u/{t}", {"List-Unsubscribe": "One-Click"}) for t in tokens[:300]])  # warm up
        times: list[float] = []
        posts = [(f"/u/{t}", {"List-Unsubscribe": "One-Click"}) for t in tokens[300:]]
        server_cpu, client_cpu = _process_cpu(server.proc.pid), _own_cpu()
        rate = _hammer(server.url, posts, times)
        server_cpu, client_cpu = _process_cpu(server.proc.pid) - server_cpu, _own_cpu() - client_cpu
        yield "one-click unsubscribe POSTs, 1 worker", rate, "requests/s"
        # Load-independent: the server's CPU (all its threads) per POST, and what the load generator
        # on the same cores spent beside it.
        yield "one-click unsubscribe POST, server CPU per request", server_cpu / len(posts) * 1e6, "us"
        yield "one-click unsubscribe POST, load generator CPU per request", client_cpu / len(posts) * 1e6, "us"
        times.sort()
        yield "one-click unsubscribe POST latency, p50", times[len(times) // 2] * 1000, "ms"
        yield "one-click unsubscribe POST latency, p99", times[int(len(times) * 0.99)] * 1000, "ms"
        with SuppressionList(suppression_path(load_settings(root))) as suppressed:
            missing = [n for n in range(4000) if f"reader{n}@example.org" not in suppressed]
        assert not missing, f"{len(missing)} one-click addresses not on the suppression list"
        page = httpx.get(server.url + "/subscribe").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        n = 400
        forms = [("/subscribe", {"email": f"new{k}@example.org", "csrf": csrf, "_ip": f"10.0.{k // 250}.{k % 250}"})
                 for k in range(n)]  # fmt: skip
        outbox = root / "outbox" / datetime.now(UTC).astimezone(load_settings(root).timezone).date().isoformat()
        started = time.perf_counter()
        answered = _hammer(server.url, forms)
        while len(list((outbox / "confirm").glob("*.eml"))) < n:
            time.sleep(0.02)
        yield "subscribe POSTs answered, 1 worker", answered, "requests/s"
        yield "subscribe POSTs with confirmation email written, 1 worker", n / (time.perf_counter() - started), "/s"
    finally:
        server.stop()


_WRK_SCRIPT = """
local tokens, i = {}, 0
function init(args) for line in io.lines(args[1]) do tokens[#tokens + 1] = line end end
function request()
  i = i % #tokens + 1
  return wrk.format("POST", "/u/" .. tokens[i],
    {["Content-Type"] = "application/x-www-form-urlencoded"}, "List-Unsubscribe=One-Click")
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def _wrk_round(server: _Server, root: Path, rnd: int) -> dict[str, float]:
    """One `wrk` run of WRK_SECONDS, 1 thread, CLIENTS connections, each POST a distinct signed token;
    then every answered POST's address must be on the suppression list."""
    addresses = [f"wrk{rnd}-{n}@example.org" for n in range(WRK_TOKENS)]
    tokens = root / f"tokens{rnd}.txt"
    tokens.write_text("\n".join(make_token(SECRET.encode(), LIST_ID, a) for a in addresses) + "\n", encoding="ascii")
    script = root / "one-click.lua"
    script.write_text(_WRK_SCRIPT, encoding="utf-8")
    server_cpu, client_cpu = _process_cpu(server.proc.pid), _cpu()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CLIENTS}", f"-d{WRK_SECONDS}s", "-s", str(script), server.url, "--", str(tokens)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    server_cpu, client_cpu = _process_cpu(server.proc.pid) - server_cpu, _cpu() - client_cpu
    done, micros, errors, p50, p99 = (int(v) for v in out.stdout.split("RESULT ", 1)[1].split())
    assert errors == 0, out.stdout
    if server.records:
        with SuppressionList(suppression_path(load_settings(root))) as suppressed:
            recorded = len(suppressed.which(addresses))
        assert recorded >= min(done, WRK_TOKENS), f"{done} POSTs answered, {recorded} addresses recorded"
    return {"rate": done / micros * 1e6, "p50": p50 / 1000, "p99": p99 / 1000,
            "server_us": server_cpu / done * 1e6, "client_us": client_cpu / done * 1e6}  # fmt: skip


def _wrk_figures(tmp: Path) -> Iterator[tuple[str, float, str]]:
    """One-click POSTs driven by `wrk` (C; optional, `apt-get install wrk`): a load generator that
    costs the two cores little. BENCH_WEB_BEFORE=/an/earlier/checkout runs its server beside this one,
    round by round, for a before/after ratio in the same run."""
    if shutil.which("wrk") is None:
        return
    trees = {"": "", "bare Starlette": "bare", "before": os.environ.get("BENCH_WEB_BEFORE", "")}
    rounds: dict[str, list[dict[str, float]]] = {}
    for name, tree in trees.items():
        if name and not tree:
            continue
        root = tmp / f"wrk-{name or 'this'}"
        root.mkdir()
        (root / "newsletter.toml").write_text('[web]\nhosts = ["127.0.0.1"]\n', encoding="utf-8")
        rounds[name] = []
    for rnd in range(RUNS):
        for name in rounds:
            server = _Server(tmp / f"wrk-{name or 'this'}", trees[name])
            try:
                _wrk_round(server, tmp / f"wrk-{name or 'this'}", 100 + rnd)  # warm up
                rounds[name].append(_wrk_round(server, tmp / f"wrk-{name or 'this'}", rnd))
            finally:
                server.stop()
    for name, found in rounds.items():
        label = "one-click POSTs (wrk, 1 worker)" + (f", {name}" if name else "")
        for key, unit in (
            ("rate", "requests/s"),
            ("p50", "ms"),
            ("p99", "ms"),
            ("server_us", "us"),
            ("client_us", "us"),
        ):
            yield f"{label}.{key}.median", statistics.median(r[key] for r in found), unit
    for other in ("bare Starlette", "before"):
        if other in rounds:
            for key in ("rate", "server_us"):
                ratio = statistics.median(r[key] for r in rounds[""]) / statistics.median(r[key] for r in rounds[other])
                yield f"one-click POSTs (wrk), {key} this / {other}", ratio, "x"


def _demo_figures(tmp: Path) -> Iterator[tuple[str, float, str]]:
    root = tmp / "demo"
    shutil.copytree(REPO / "stories", root / "stories")
    settings = load_settings(root)
    result = build(settings, date(2016, 12, 30))
    first, again = [], []
    for _ in range(9):
        shutil.rmtree(root / "site", ignore_errors=True)
        shutil.rmtree(root / "data", ignore_errors=True)
        t0 = time.perf_counter()
        publish_edition(settings, result.manifest, result.edition.stories)
        t1 = time.perf_counter()
        publish_edition(settings, result.manifest, result.edition.stories)
        first.append(t1 - t0)
        again.append(time.perf_counter() - t1)
    yield "demo edition web side, first write", statistics.median(first), "s"
    yield "demo edition web side, unchanged rewrite", statistics.median(again), "s"


def _archive_figures(tmp: Path) -> Iterator[tuple[str, float, str]]:
    root = tmp / "archive"
    body = "\n\n".join(
        "Paragraph {n} of the story: officials said on Thursday that the plan would go ahead, "
        "with [details](https://www.example.org/details) still to come and *more* later."
        for _ in range(6)
    )
    start = date(2014, 1, 1)
    for e in range(1000):
        day = start + timedelta(days=e)
        folder = root / "stories" / day.strftime("%Y/%m/%d")
        folder.mkdir(parents=True)
        for s in range(15):
            published = datetime.combine(day - timedelta(days=1), datetime.min.time()).replace(hour=8, minute=s)
            (folder / f"story-{s}.md").write_text(
                f'---\ntitle: "Story {s} of {day}"\npublished: {published.isoformat()}+01:00\n'
                f'summary: "What happened, in one line."\nsection: "Section {s % 4}"\npriority: {15 - s}\n---\n'
                + body.replace("{n}", str(s)),
                encoding="utf-8",
            )
    settings = load_settings(root)
    stories = load_stories(settings.stories_dir, root, settings.base_url).stories
    import json

    for e in range(1000):
        day = start + timedelta(days=e)
        ed = select_edition(stories, day, settings)
        manifest = {
            "edition": day.isoformat(),
            "subject": f"{settings.title} — {day.isoformat()}",
            "preheader": ed.lead.summary,
            "stories": [
                {
                    "id": s.id,
                    "file": s.path,
                    "title": s.title,
                    "placement": "lead" if s is ed.lead else "section",
                    "anchor": ed.anchor(s),
                }
                for s in ed.stories
            ],
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        out = settings.outbox_dir / day.isoformat()
        out.mkdir(parents=True)
        (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    cpu0 = _cpu()
    t0 = time.perf_counter()
    report = rebuild_site(settings)
    elapsed = time.perf_counter() - t0
    assert report.editions == 1000 and len(report.written) > 16_000, report.summary(root)
    yield "archive of 1000 editions x 15 stories, full rebuild", elapsed, "s"
    # On a shared machine the wall time says more about the neighbours than about the work.
    yield "the same rebuild, CPU time of all its processes", _cpu() - cpu0, "s"
    full = elapsed
    again, again_cpu = [], []
    for _ in range(3):
        cpu0 = _cpu()
        t0 = time.perf_counter()
        report = rebuild_site(settings)
        again.append(time.perf_counter() - t0)
        again_cpu.append(_cpu() - cpu0)
        assert report.editions == 1000 and not report.written, report.summary(root)
    yield "same archive, rebuild with nothing changed.median", statistics.median(again), "s"
    yield "same archive, rebuild with nothing changed, CPU.median", statistics.median(again_cpu), "s"
    yield "nothing changed as a share of the full rebuild", statistics.median(again) / full * 100, "%"
    # One story edited: its edition (and only it) is rendered again.
    story = next((root / "stories" / "2015").rglob("story-3.md"))
    story.write_text(story.read_text(encoding="utf-8").replace("Story 3", "Story three"), encoding="utf-8")
    t0 = time.perf_counter()
    report = rebuild_site(settings)
    yield "same archive, one story edited", time.perf_counter() - t0, "s"


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process, all its threads (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _cpu() -> float:
    """User + system CPU seconds of this process and of its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def figures() -> Iterator[tuple[str, float, str]]:
    """Every figure; BENCH_WEB_ONLY=app: only the public app's (one-click and sign-up POSTs)."""
    only_app = os.environ.get("BENCH_WEB_ONLY", "") == "app"
    with tempfile.TemporaryDirectory() as tmp:
        if not only_app:
            yield from _demo_figures(Path(tmp))
        yield from _app_figures(Path(tmp))
        yield from _wrk_figures(Path(tmp))
        if not only_app:
            yield from _archive_figures(Path(tmp))
