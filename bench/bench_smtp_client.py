"""The SMTP client's shape: the sender's threads and `Wire` against one asyncio event loop, same relay.

python bench/run.py smtp_client        (BENCH_SMTP_N=3000 messages per run by default)

Both send the same ~122 KB dot-safe message over 8 connections to Postfix's `smtp-sink` with PIPELINING
(MAIL RCPT DATA in one write, the message and its end line in another), round by round, medians of 3:

- threads: 8 threads, each with its connection and the sender's own `Wire.transaction` (what
  `SmtpSink` runs per message);
- asyncio: 8 tasks on one event loop (uvloop when installed, as `serve` uses), asyncio streams, the same
  commands and the same replies read.

Only the transport is measured (no personalizing, no ledger): messages a second, and the client's CPU
per message, which does not depend on how busy the machine is. The figures inform whether the sender
should move to asyncio; they change nothing by themselves.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator

from bench_relay import _sink

from newsletter.delivery.sinks.base import Envelope, Stage
from newsletter.delivery.sinks.wire import Wire

N = int(os.environ.get("BENCH_SMTP_N", "3000"))
CONNECTIONS = 8
RUNS = 3
SENDER, RECIPIENT = "morning@newsletter.example.org", "reader@example.com"


def _message() -> bytes:
    """~122 KB of 76-character lines, none starting with a dot (as the personalizer's messages are)."""
    line = b"x" * 74 + b"\r\n"
    head = b"From: <%s>\r\nTo: <%s>\r\nSubject: bench\r\n\r\n" % (SENDER.encode(), RECIPIENT.encode())
    return head + line * (122_000 // len(line))


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _greet(sock: socket.socket) -> None:
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"EHLO bench.example.org\r\n")
    while reader.readline()[3:4] == b"-":
        pass


def _threads(port: int, data: bytes) -> tuple[float, float]:
    """Messages a second and CPU seconds per message, 8 threads each with a `Wire`."""
    envelope = Envelope(SENDER, RECIPIENT, data, dot_safe=True)
    left = [N]
    lock = threading.Lock()

    def connection() -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            _greet(sock)
            wire = Wire(sock, pipelining=True, chunking=False)
            stage: list[Stage] = ["mail"]
            while True:
                with lock:
                    if left[0] == 0:
                        break
                    left[0] -= 1
                assert wire.transaction(envelope, stage).status == "sent"
            wire.quit()

    cpu, started = _cpu(), time.perf_counter()
    threads = [threading.Thread(target=connection) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return N / (time.perf_counter() - started), (_cpu() - cpu) / N


async def _reply(reader: asyncio.StreamReader) -> int:
    while (line := await reader.readline())[3:4] == b"-":
        pass
    return int(line[:3])


def _asyncio(port: int, data: bytes) -> tuple[float, float]:
    """Messages a second and CPU seconds per message, 8 tasks on one event loop."""
    left = [N]
    group = b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (SENDER.encode(), RECIPIENT.encode())

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=65536)
        await reader.readline()
        writer.write(b"EHLO bench.example.org\r\n")
        await _reply(reader)
        while left[0]:
            left[0] -= 1
            writer.write(group)
            codes = [await _reply(reader) for _ in range(3)]
            assert codes == [250, 250, 354], codes
            writer.writelines((data, b".\r\n"))
            await writer.drain()
            assert await _reply(reader) == 250
        writer.write(b"QUIT\r\n")
        await _reply(reader)
        writer.close()

    async def run_all() -> None:
        await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))

    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # uvloop is installed wherever the public app runs
        factory = None
    cpu, started = _cpu(), time.perf_counter()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(run_all())
    return N / (time.perf_counter() - started), (_cpu() - cpu) / N


def figures() -> Iterator[tuple[str, float, str]]:
    data = _message()
    sink, port = _sink()
    try:
        found: dict[str, list[tuple[float, float]]] = {"threads": [], "asyncio": []}
        for _ in range(RUNS):  # round by round: a change in the machine's load hits both
            found["threads"].append(_threads(port, data))
            found["asyncio"].append(_asyncio(port, data))
    finally:
        sink.terminate()
        sink.wait()
    for name, runs in found.items():
        yield f"smtp_client.{name}.rate.median", statistics.median(r[0] for r in runs), "msg/s"
        yield f"smtp_client.{name}.cpu_per_message.median", statistics.median(r[1] for r in runs) * 1e6, "us"
    cpu = {name: statistics.median(r[1] for r in runs) for name, runs in found.items()}
    yield "smtp_client.asyncio_over_threads.cpu_per_message", cpu["asyncio"] / cpu["threads"], "x"
