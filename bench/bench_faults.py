"""A flaky relay: the send loop's rate against a faulty server, as a share of the clean rate in the same run.

python bench/run.py faults

2,000 messages through a local aiosmtpd (its own process) with 8 connections, twice: to clean addresses,
then to addresses the server treats badly once each — ~10 % deferred (451 at RCPT, 451 at the end of
DATA, some 421 with the connection closed) and ~10 % of connections dropped mid-DATA (after the data,
before any reply, so nothing is stored). Every message must arrive exactly once. The figure is the
faulty run's rate as a percentage of the clean run's (target: >= 60 %).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from bench_edition import _twenty_story_root

from newsletter.config import load_settings
from newsletter.delivery.send import send_edition
from newsletter.delivery.unsubscribe import SECRET_ENV

DAY = date(2016, 12, 30)
N = 2000
CONNECTIONS = 8
RUNS = 5

# Faults for addresses starting with "f", on the first try only, chosen by a stable hash of the address.
_SERVER = textwrap.dedent(
    """
    import asyncio, hashlib, socket, sys
    from collections import Counter
    from aiosmtpd.controller import Controller

    def plan(address):
        if not address.startswith("f"):
            return "ok"
        n = int(hashlib.sha256(address.encode()).hexdigest()[:8], 16) % 100
        return ("rcpt451" if n < 4 else "data451" if n < 8 else "rcpt421" if n < 10 else
                "drop" if n < 20 else "ok")

    class Faulty:
        def __init__(self):
            self.tries, self.got, self.faults = Counter(), Counter(), Counter()
        async def handle_RCPT(self, server, session, envelope, address, options):
            first = self.tries[address] == 0
            self.tries[address] += 1
            action = plan(address) if first else "ok"
            self.faults[action] += 1
            if action == "rcpt451":
                return "451 4.7.1 <%s>: greylisted, try again later" % address
            if action == "rcpt421":  # the reply goes out, then the server closes the connection
                asyncio.get_running_loop().call_later(0.05, server.transport.close)
                return "421 4.7.0 Too many connections, closing"
            envelope.rcpt_tos.append(address)
            session.action = action
            return "250 2.1.5 OK"
        async def handle_DATA(self, server, session, envelope):
            action = getattr(session, "action", "ok")
            if action == "drop":
                server.transport.abort()
                return "451 4.4.2 dropped"  # never reaches the client
            if action == "data451":
                return "451 4.3.0 Temporary failure, try again later"
            for rcpt in envelope.rcpt_tos:
                self.got[rcpt] += 1
            return "250 2.0.0 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Faulty()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    for line in sys.stdin:
        prefix = line.strip()
        got = {a: n for a, n in handler.got.items() if a.startswith(prefix)}
        faults = {k: v for k, v in handler.faults.items() if k != "ok"}
        print(len(got), sum(got.values()), max(got.values(), default=0), repr(faults), flush=True)
        handler.faults.clear()
    controller.stop()
    """
)


def _write_list(root: Path, prefix: str) -> str:
    name = f"list-{prefix}.csv"
    with (root / name).open("w", encoding="utf-8") as fh:
        fh.write("email,name\n")
        for i in range(N):
            fh.write(f"{prefix}{i}@example.com,Reader {i}\n")
    return name


def figures() -> Iterator[tuple[str, float, str]]:
    os.environ.setdefault(SECRET_ENV, "bench-secret-not-a-real-one")
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdin is not None and server.stdout is not None
    port = int(server.stdout.readline())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = _twenty_story_root(Path(tmp))
            settings = load_settings(root, {"smtp.url": f"smtp://127.0.0.1:{port}"}, environ={})
            shares, clean_rates, faulty_rates = [], [], []
            for run in range(RUNS):
                rates = {}
                for kind in ("c", "f"):
                    prefix = f"{kind}{run}x"
                    report = send_edition(
                        settings, DAY, subscribers=_write_list(root, prefix), connections=CONNECTIONS, progress=False
                    )
                    server.stdin.write(prefix + "\n")
                    server.stdin.flush()
                    distinct, total, most, faults = server.stdout.readline().split(maxsplit=3)
                    assert report.ok and report.sent_now == N, report.summary()
                    assert (int(distinct), int(total), int(most)) == (N, N, 1), "not delivered exactly once"
                    rates[kind] = N / report.send_seconds
                    if kind == "f":
                        print(f"  run {run}: faults {faults.strip()}, retried {report.retried}", file=sys.stderr)
                    for f in (root / "data" / "ledger").glob("*"):
                        f.unlink()
                clean_rates.append(rates["c"])
                faulty_rates.append(rates["f"])
                shares.append(rates["f"] / rates["c"] * 100)
            yield "faults.clean_2000_8_conn.median", statistics.median(clean_rates), "msg/s"
            yield "faults.faulty_2000_8_conn.median", statistics.median(faulty_rates), "msg/s"
            yield "faults.faulty_of_clean.median", statistics.median(shares), "%"
            yield "faults.faulty_of_clean.worst", min(shares), "%"
            yield "faults.delivered_exactly_once", N, "messages per run"
    finally:
        server.communicate("", timeout=60)
