"""Scaling figures: one sender's ceiling on each backend, and many senders against slow relays.

python bench/run.py scale          (BENCH_SCALE_N=200000 for a shorter run; default 1,000,000)

BENCH_SCALE_BEFORE=/path/to/an/earlier/checkout adds that version's one-sender figures to the same run
(its package imported from there), each backend's runs alternating with this version's, and the
after/before ratios; BENCH_SCALE_RUNS=3 takes medians of that many runs (default 1, or 3 with a
BEFORE); BENCH_SCALE_FLEET=0 leaves out the relay part; BENCH_SCALE_BACKENDS=postgresql measures one backend only.

- One sender, the 20-story edition, N subscribers, the null sink: `send_edition` end to end (list read
  and validated, enrolment, personalization, ledger), on SQLite and on PostgreSQL, each in a process of
  its own; and PostgreSQL's figure as a share of SQLite's.
- Relays that take 20 ms per message (aiosmtpd, each in its own process): 1, 2 and 4 `newsletter send`
  processes, each in its own folder with its own relay and 4 connections, sharing one PostgreSQL
  database. The rate is the mailing's: messages over the time from the first to the last one received.

The PostgreSQL server is a throw-away cluster (tests/pg_cluster.py: initdb + pg_ctl, fsync off).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

from bench_edition import _twenty_story_root

from newsletter.delivery.unsubscribe import SECRET_ENV

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pg_cluster

SECRET = "bench-secret-not-a-real-one"
N = int(os.environ.get("BENCH_SCALE_N", "1000000"))
RELAY_MESSAGES = 6000
RELAY_DELAY = 0.020
CONNECTIONS = 4
SENDERS = (1, 2, 4)

_NULL = textwrap.dedent(
    """
    import sys
    from datetime import date
    from pathlib import Path
    from newsletter.config import load_settings
    from newsletter.delivery.send import send_edition
    from newsletter.delivery.sinks.memory import NullSink

    root, n = Path(sys.argv[1]), int(sys.argv[2])
    sink = NullSink()
    report = send_edition(load_settings(root), date(2016, 12, 30), subscribers=f"list-{n}.csv", sink=sink,
                          progress=False)
    assert report.sent == n and sink.messages == n, report.summary()
    print(report.elapsed, flush=True)
    """
)

# A relay that takes RELAY_DELAY per message, and little CPU: a minimal asyncio SMTP responder (aiosmtpd
# parses the data line by line in Python, which on this machine would make the relay the bottleneck, not
# the 20 ms). Prints its port, then (on stdin EOF) count, first, last arrival times.
_RELAY = textwrap.dedent(
    """
    import asyncio, socket, sys, threading, time

    delay = float(sys.argv[1])
    times = []

    async def session(reader, writer):
        writer.write(b"220 relay ESMTP\\r\\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-relay\\r\\n250-PIPELINING\\r\\n250 8BITMIME\\r\\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\\r\\n")
                    await reader.readuntil(b"\\r\\n.\\r\\n")
                    await asyncio.sleep(delay)
                    times.append(time.time())
                    writer.write(b"250 2.0.0 queued\\r\\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\\r\\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 OK\\r\\n")
                await writer.drain()
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(session, "127.0.0.1", 0, limit=2**24)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print(len(times), min(times, default=0), max(times, default=0), flush=True)

    asyncio.run(main())
    """
)


def _write_list(root: Path, n: int) -> None:
    with (root / f"list-{n}.csv").open("w", encoding="utf-8") as fh:
        fh.write("email,name,locale\n")
        names = ["Ann Smith", "", "José Ñandú", "O'Brien & Sons", "用户 名字"]
        for i in range(n):
            fh.write(f"reader{i}@example.com,{names[i % 5]},en\n")


def _null_send(root: Path, n: int, url: str, tree: str = "") -> float:
    shutil.rmtree(root / "data" / "ledger", ignore_errors=True)  # a repeated run starts from no ledger
    env = {**os.environ, SECRET_ENV: SECRET, "NEWSLETTER_DATABASE_URL": url}
    if tree:
        env["PYTHONPATH"] = tree
    out = subprocess.run(
        [sys.executable, "-c", _NULL, str(root), str(n)], env=env, capture_output=True, text=True, cwd=tree or None
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return n / float(out.stdout.split()[0])


def _fleet(base: Path, senders: int, url: str) -> float:
    env = {**os.environ, SECRET_ENV: SECRET, "NEWSLETTER_DATABASE_URL": url}
    relays = [
        subprocess.Popen(
            [sys.executable, "-c", _RELAY, str(RELAY_DELAY)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(senders)
    ]
    ports = [int(r.stdout.readline()) for r in relays]  # type: ignore[union-attr]
    procs = []
    for k, port in enumerate(ports):
        folder = base / f"fleet{senders}-{k}"
        shutil.copytree(base / "paper", folder, ignore=shutil.ignore_patterns("data", "outbox", "list-*.csv"))
        shutil.copy(base / "paper" / f"list-{RELAY_MESSAGES}.csv", folder / "list.csv")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "newsletter",
                    "send",
                    "--root",
                    str(folder),
                    "--date",
                    "2016-12-30",
                    "--subscribers",
                    "list.csv",
                    "--smtp",
                    f"smtp://127.0.0.1:{port}",
                    "--connections",
                    str(CONNECTIONS),
                    "--no-progress",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    total, first, last = 0, float("inf"), 0.0
    for r in relays:
        count, lo, hi = r.communicate("")[0].split()
        total += int(count)
        if int(count):
            first, last = min(first, float(lo)), max(last, float(hi))
    assert total >= RELAY_MESSAGES, total
    return total / (last - first)


def _one_sender(root: Path, cluster: pg_cluster.PgCluster) -> Iterator[tuple[str, float, str]]:
    """One sender to the null sink on each backend: medians of RUNS, with the earlier version's runs
    alternating with this one's when BENCH_SCALE_BEFORE names one (each version in a folder of its own)."""
    before = os.environ.get("BENCH_SCALE_BEFORE", "")
    runs = int(os.environ.get("BENCH_SCALE_RUNS", "3" if before else "1"))
    old_root = root.parent / "paper-before"
    if before:
        shutil.copytree(root, old_root, ignore=shutil.ignore_patterns("data"))
    medians = {}
    for backend in os.environ.get("BENCH_SCALE_BACKENDS", "sqlite,postgresql").split(","):
        ours, old = [], []
        for _ in range(runs):
            ours.append(_null_send(root, N, _database(cluster, backend, "")))
            if before:
                old.append(_null_send(old_root, N, _database(cluster, backend, before), before))
        print(
            f"  {backend} runs, this version: {[round(r) for r in ours]}; before: {[round(r) for r in old]}",
            file=sys.stderr,
        )
        medians[backend] = statistics.median(ours)
        yield f"scale.one_sender_{N}_null_sink.{backend}", medians[backend], "msg/s"
        if old:
            yield f"scale.one_sender_{N}_null_sink.{backend}.before", statistics.median(old), "msg/s"
            yield f"scale.one_sender_{N}_null_sink.{backend}.of_before", medians[backend] / statistics.median(old), "x"
    if len(medians) == 2:
        yield "scale.one_sender.postgresql_share_of_sqlite", 100 * medians["postgresql"] / medians["sqlite"], "%"


def _database(cluster: pg_cluster.PgCluster, backend: str, tree: str) -> str:
    """ "" for SQLite; else a new PostgreSQL database at the schema of the version in `tree` ("": this one)."""
    if backend == "sqlite":
        return ""
    if not tree:
        return cluster.new_database()
    url = cluster.new_database(upgrade=False)
    env = {**os.environ, "PYTHONPATH": tree, "NEWSLETTER_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "newsletter", "db", "upgrade"], env=env, cwd=tree, check=True)
    return url


def figures() -> Iterator[tuple[str, float, str]]:
    cluster = pg_cluster.PgCluster().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            root = _twenty_story_root(base)
            _write_list(root, N)
            _write_list(root, RELAY_MESSAGES)
            yield from _one_sender(root, cluster)
            if os.environ.get("BENCH_SCALE_FLEET", "1") == "0":
                return
            rates = {}
            for senders in SENDERS:
                rates[senders] = _fleet(base, senders, cluster.new_database())
                yield f"scale.relay_20ms.{senders}_senders_x{CONNECTIONS}_connections", rates[senders], "msg/s"
                time.sleep(1)
            yield "scale.relay_20ms.4_senders_over_1", rates[4] / rates[1], "x"
    finally:
        cluster.stop()
