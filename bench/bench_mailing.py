"""Mailing figures (issue 3): personalization speed, SMTP delivery against the sink's ceiling, memory.

python bench/run.py mailing

- Personalize 100,000 subscribers of a 20-story edition into ready-to-send message bytes (null sink),
  against the naive way (render + compile + `EmailMessage` for each subscriber), measured in the same run.
- The whole `send_edition` (list read and validated, ledger, personalization, null sink), for scale.
- Deliver 10,000 messages to a local aiosmtpd (in its own process) with 1 and 4 connections, against
  that server's ceiling: a minimal raw-socket client sending pre-built messages, best of 1, 4 and 8
  connections.
- Peak memory (RSS) of a `send_edition` process for 10,000 and for 1,000,000 subscribers.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from bench_edition import _twenty_story_root

from newsletter.config import load_settings
from newsletter.delivery.personalize import Personalizer
from newsletter.delivery.send import send_edition
from newsletter.delivery.sinks.base import Envelope
from newsletter.delivery.sinks.memory import NullSink
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.edition.build import build

DAY = date(2016, 12, 30)
SECRET = "bench-secret-not-a-real-one"
NAMES = ["Ann Smith", "", "José Ñandú", "O'Brien & Sons", "用户 名字", "Zoë 👍", "Bob", "Renée Dupont-Lefèvre"]
PERSONALIZE = 100_000
NAIVE = 60
DELIVER = 10_000
MEMORY_SIZES = (10_000, 1_000_000)
RUNS = 3

# A counting aiosmtpd in its own process: the benchmark's client and the server do not share a GIL.
_SERVER = textwrap.dedent(
    """
    import socket, sys, threading
    from aiosmtpd.controller import Controller

    class Count:
        n = 0
        async def handle_DATA(self, server, session, envelope):
            Count.n += 1
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    sys.stdin.read()
    print(Count.n, flush=True)
    controller.stop()
    """
)

_MEMORY = textwrap.dedent(
    """
    import resource, sys
    from datetime import date
    from pathlib import Path
    from newsletter.config import load_settings
    from newsletter.delivery.send import send_edition
    from newsletter.delivery.sinks.memory import NullSink

    root, n = Path(sys.argv[1]), int(sys.argv[2])
    names = ["Ann Smith", "", "José Ñandú", "O'Brien & Sons", "用户 名字"]
    with (root / f"list-{n}.csv").open("w", encoding="utf-8") as fh:
        fh.write("email,name,locale\\n")
        for i in range(n):
            fh.write(f"reader{i}@example.com,{names[i % 5]},en\\n")
    sink = NullSink()
    report = send_edition(load_settings(root), date(2016, 12, 30), subscribers=f"list-{n}.csv", sink=sink,
                          progress=False)
    assert report.sent == n and sink.messages == n, report.summary()
    rss_now = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmRSS:"))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, report.elapsed, rss_now, flush=True)
    """
)


def _write_list(root: Path, n: int, name: str) -> None:
    with (root / name).open("w", encoding="utf-8") as fh:
        fh.write("email,name,locale\n")
        for i in range(n):
            fh.write(f"reader{i}@example.com,{NAMES[i % len(NAMES)]},en\n")


def _personalize(p: Personalizer, sender: str) -> float:
    sink = NullSink()
    names = NAMES
    t0 = time.perf_counter()
    for i in range(PERSONALIZE):
        address = f"reader{i}@example.com"
        sink.send(Envelope(sender, address, p.message(address, names[i & 7])))
    elapsed = time.perf_counter() - t0
    assert sink.messages == PERSONALIZE
    return PERSONALIZE / elapsed


def _naive(p: Personalizer) -> float:
    t0 = time.perf_counter()
    for i in range(NAIVE):
        p.naive(f"reader{i}@example.com", NAMES[i & 7])
    return (time.perf_counter() - t0) / NAIVE


async def _blast(port: int, connections: int, total: int, data: bytes) -> float:
    """The server's ceiling: MAIL/RCPT/DATA with pre-built, pre-stuffed bytes and nothing else."""
    payload = data.replace(b"\r\n.", b"\r\n..") + b".\r\n"

    async def reply(reader: asyncio.StreamReader) -> bytes:
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                return line

    async def one(count: int, start: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reply(reader)
        writer.write(b"EHLO bench.example\r\n")
        await reply(reader)
        for i in range(start, start + count):
            writer.write(b"MAIL FROM:<morning@newsletter.example.org>\r\n")
            await reply(reader)
            writer.write(b"RCPT TO:<reader%d@example.com>\r\n" % i)
            await reply(reader)
            writer.write(b"DATA\r\n")
            await reply(reader)
            writer.write(payload)
            assert (await reply(reader)).startswith(b"250")
        writer.write(b"QUIT\r\n")
        await reply(reader)
        writer.close()

    per = total // connections
    t0 = time.perf_counter()
    await asyncio.gather(*(one(per, n * per) for n in range(connections)))
    return per * connections / (time.perf_counter() - t0)


class _Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def close(self) -> int:
        out, _ = self.proc.communicate("", timeout=60)
        return int(out.strip() or 0)


def figures() -> Iterator[tuple[str, float, str]]:
    os.environ.setdefault(SECRET_ENV, SECRET)
    with tempfile.TemporaryDirectory() as tmp:
        root = _twenty_story_root(Path(tmp))
        settings = load_settings(root, environ={})
        built = build(settings, DAY)
        now = datetime(2016, 12, 30, 5, 0, tzinfo=UTC)
        p = Personalizer(settings, built.edition, secret=SECRET.encode(), date=now)
        assert p.fast, p.mismatch
        sample = p.message("reader1@example.com", "Ann Smith")
        yield "mailing.edition_stories", len(built.edition.stories), "stories"
        yield "mailing.message_size", len(sample) / 1000, "KB"

        # 1. Personalization against the naive way.
        fast = statistics.median(_personalize(p, settings.sender.address) for _ in range(RUNS))
        naive = statistics.median(_naive(p) for _ in range(RUNS))
        yield "mailing.personalize_100k_null_sink.median", fast, "msg/s"
        yield "mailing.naive_per_message.median", naive * 1000, "ms"
        yield "mailing.naive.median", 1 / naive, "msg/s"
        yield "mailing.fast_vs_naive", fast * naive, "x"

        # The whole send, for scale: read + validate + ledger + personalize + null sink.
        _write_list(root, 20_000, "list-20k.csv")
        enrol, deliver = [], []
        for run in range(RUNS):
            for f in (root / "data" / "ledger").glob("*") if (root / "data" / "ledger").exists() else []:
                f.unlink()
            report = send_edition(settings, DAY, subscribers="list-20k.csv", sink=NullSink(), progress=False)
            assert report.sent_now == 20_000, (run, report.summary())
            enrol.append(20_000 / (report.elapsed - report.send_seconds))
            deliver.append(20_000 / report.send_seconds)
        yield "mailing.send_edition_20k_null_sink.read_validate_enrol.median", statistics.median(enrol), "rows/s"
        yield "mailing.send_edition_20k_null_sink.deliver_phase.median", statistics.median(deliver), "msg/s"

        # 2. SMTP delivery against the sink's own ceiling.
        _write_list(root, DELIVER, "list-10k.csv")
        server = _Server()
        try:
            ceilings = {
                n: statistics.median(asyncio.run(_blast(server.port, n, DELIVER, sample)) for _ in range(RUNS))
                for n in (1, 4, 8)
            }
            ceiling = max(ceilings.values())
            for n, rate in ceilings.items():
                yield f"mailing.smtp_sink_ceiling_{n}_conn.median", rate, "msg/s"
            url = f"smtp://127.0.0.1:{server.port}"
            for connections in (1, 4):
                rates = []
                for _ in range(RUNS):
                    for f in (root / "data" / "ledger").glob("*"):
                        f.unlink()
                    report = send_edition(
                        settings, DAY, subscribers="list-10k.csv", smtp=url, connections=connections, progress=False
                    )
                    assert report.sent_now == DELIVER and report.ok, report.summary()
                    rates.append(DELIVER / report.send_seconds)
                rate = statistics.median(rates)
                yield f"mailing.smtp_deliver_10k_{connections}_conn.median", rate, "msg/s"
                yield f"mailing.smtp_deliver_10k_{connections}_conn.of_ceiling", rate / ceiling * 100, "%"
        finally:
            received = server.close()
        yield "mailing.smtp_sink_received_total", received, "messages"

        # 3. Memory: one process per size, the list written by that process (streamed) then sent.
        env = {**os.environ, SECRET_ENV: SECRET}
        peaks = {}
        for n in MEMORY_SIZES:
            for f in (root / "data" / "ledger").glob("*"):
                f.unlink()
            out = subprocess.run(
                [sys.executable, "-c", _MEMORY, str(root), str(n)], env=env, capture_output=True, text=True, check=True
            ).stdout.split()
            peaks[n] = int(out[0]) / 1e6
            yield f"mailing.peak_rss_{n}_subscribers", peaks[n], "MB"
            yield f"mailing.rss_after_send_{n}_subscribers", int(out[2]) / 1e6, "MB"
            yield f"mailing.send_edition_{n}_subscribers_null_sink", float(out[1]), "s"
        yield "mailing.peak_rss_growth_10k_to_1M", peaks[MEMORY_SIZES[1]] - peaks[MEMORY_SIZES[0]], "MB"
