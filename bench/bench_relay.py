"""A fast relay: `newsletter send` against Postfix's `smtp-source` sending the same message to `smtp-sink`.

python bench/run.py relay          (BENCH_RELAY_N=6000 messages per run by default)

Postfix's `smtp-sink` (/usr/sbin/smtp-sink; no Postfix daemon needed) accepts and discards mail as fast
as SMTP allows: the sender is the ceiling. `smtp-source` is the reference: C, a pre-formatted message
file, connections kept open (`-d`). Both send the same ~122 KB personalized message of the 20-story
edition over the same number of connections, side by side in one run; the figures are medians of 3 and
the ratios newsletter / smtp-source.

- 1 and 8 connections, one sender process (`--processes 1`);
- 8 connections with `--processes 2` (this machine's cores), against one process, round by round;
- load-independent: the CPU time per message with 8 connections of one sender process (all its
  threads), of two (both processes together), and of smtp-sink itself; and what those costs allow
  (`_ceiling`, a model): two processes against one on these two cores beside smtp-sink, and with the
  relay on other machines. smtp-sink is one single-threaded process that reads every line of DATA: on a
  two-core machine it needs about a core of its own, which caps what a second sender process can add.

BENCH_RELAY_BEFORE=/path/to/an/earlier/checkout adds that version's one-process figures to the same run
(its package imported from there), for a before/after side by side.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
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
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.edition.build import build

N = int(os.environ.get("BENCH_RELAY_N", "6000"))
RUNS = 3
SECRET = "bench-secret-not-a-real-one"

_SEND = textwrap.dedent(
    """
    import inspect, sys
    from datetime import date
    from pathlib import Path
    from newsletter.config import load_settings
    from newsletter.delivery.send import send_edition

    root, url, conns, procs, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    # An earlier version (BENCH_RELAY_BEFORE) has no processes: one process is all it does.
    extra = {"processes": procs} if "processes" in inspect.signature(send_edition).parameters else {}
    report = send_edition(load_settings(root), date(2016, 12, 30), subscribers=f"list{n}.csv", smtp=url,
                          connections=conns, progress=False, **extra)
    assert report.sent_now == n and report.ok, report.summary()
    print(report.send_seconds, flush=True)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sink() -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(["smtp-sink", *user, f"127.0.0.1:{port}", "256"], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("smtp-sink did not start")


def _source(port: int, connections: int, message: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [
            *("smtp-source", "-d", "-s", str(connections), "-m", str(N), "-F", str(message)),
            *("-f", "morning@newsletter.example.org", "-t", "reader@example.com", f"127.0.0.1:{port}"),
        ],
        check=True,
    )
    return N / (time.perf_counter() - t0)


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_per_message(root: Path, port: int, tree: str = "", processes: int = 1, sink: int = 0) -> tuple[float, float]:
    """CPU seconds per message of the sender with 8 connections (all its processes and threads), and of
    the relay (`sink`: smtp-sink's pid): the CPU of a send of N less that of N/5, over 4N/5 — the
    set-up (build, enrolment, forking) cancels out."""
    used, relay = [], []
    for n in (N // 5, N):
        before, relay_before = _cpu(), _process_cpu(sink) if sink else 0.0
        _newsletter(root, port, 8, processes, tree, n)
        used.append(_cpu() - before)
        relay.append(_process_cpu(sink) - relay_before if sink else 0.0)
    return (used[1] - used[0]) / (N - N // 5), (relay[1] - relay[0]) / (N - N // 5)


def _ceiling(sender: float, relay: float, processes: int, cores: int) -> float:
    """Messages a second `processes` sender processes can reach on `cores` cores beside a relay that needs
    `relay` CPU seconds a message on one core of its own (smtp-sink is one single-threaded process), each
    sender process at most one core (its interpreter lock): min(processes/sender, 1/relay,
    cores/(sender + relay)). A model from the measured CPU costs, not a measurement."""
    return min(processes / sender, 1 / relay, cores / (sender + relay))


def _newsletter(root: Path, port: int, connections: int, processes: int, tree: str = "", n: int = N) -> float:
    shutil.rmtree(root / "data" / "ledger", ignore_errors=True)
    env = {**os.environ, SECRET_ENV: SECRET}
    if tree:
        env["PYTHONPATH"] = tree
    out = subprocess.run(
        [sys.executable, "-c", _SEND, str(root), f"smtp://127.0.0.1:{port}", str(connections), str(processes), str(n)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tree or None,
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return n / float(out.stdout.split()[-1])


def _cpu_figures(root: Path, port: int, sink: int, before: str) -> Iterator[tuple[str, float, str]]:
    """Load-independent figures: CPU per message of one and of two sender processes (all of them
    together) and of smtp-sink, and what they allow on this machine's two cores and beside a relay on
    a core of its own."""
    one, two, relay = [], [], []
    for _ in range(RUNS):
        sender, used = _cpu_per_message(root, port, sink=sink)
        one.append(sender)
        relay.append(used)
        two.append(_cpu_per_message(root, port, processes=2, sink=sink)[0])
    c1, c2, s = statistics.median(one), statistics.median(two), statistics.median(relay)
    yield "relay.8_conn_1_proc.cpu_per_message.median", c1 * 1e6, "us"
    yield "relay.8_conn_2_proc.cpu_per_message.median", c2 * 1e6, "us"
    yield "relay.8_conn.2_proc_over_1_proc.cpu_per_message", c2 / c1, "x"
    yield "relay.8_conn.smtp_sink.cpu_per_message.median", s * 1e6, "us"
    yield "relay.8_conn.2_proc_over_1_proc.model_2_cores", _ceiling(c2, s, 2, 2) / _ceiling(c1, s, 1, 2), "x"
    # A relay on other machines (a Postfix of several processes): each sender process is one core's worth.
    yield "relay.8_conn.2_proc_over_1_proc.model_relay_elsewhere", 2 * c1 / c2, "x"
    if before:
        old_cpu = [_cpu_per_message(root, port, before)[0] for _ in range(RUNS)]
        yield "relay.8_conn_1_proc.before.cpu_per_message.median", statistics.median(old_cpu) * 1e6, "us"
        yield "relay.8_conn_1_proc.cpu_per_message.of_before", c1 / statistics.median(old_cpu), "x"


def figures() -> Iterator[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = _twenty_story_root(Path(tmp))
        for n in (N // 5, N):
            with (root / f"list{n}.csv").open("w", encoding="utf-8") as fh:
                fh.write("email,name\n")
                fh.writelines(f"reader{i}@example.com,Reader {i}\n" for i in range(n))
        settings = load_settings(root, environ={})
        built = build(settings, date(2016, 12, 30))
        p = Personalizer(settings, built.edition, secret=SECRET.encode(), date=datetime(2016, 12, 30, tzinfo=UTC))
        sample = p.message("reader1@example.com", "Reader 1")
        message = root / "message.txt"  # smtp-source adds CRLF to each line and stuffs the dots itself
        message.write_bytes(sample.replace(b"\r\n", b"\n"))
        yield "relay.message_size", len(sample) / 1000, "KB"
        sink, port = _sink()
        try:
            before = os.environ.get("BENCH_RELAY_BEFORE", "")
            configs = ((1, 1), (8, 1), (8, 2))
            ref: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
            ours: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
            old: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
            for _ in range(RUNS):  # round by round, so that a change in the machine's load hits every one
                for conns, procs in configs:
                    ref[conns, procs].append(_source(port, conns, message))
                    ours[conns, procs].append(_newsletter(root, port, conns, procs))
                    if before and procs == 1:
                        old[conns, procs].append(_newsletter(root, port, conns, procs, before))
            for conns, procs in configs:
                name = f"relay.{conns}_conn_{procs}_proc"
                median, reference = statistics.median(ours[conns, procs]), statistics.median(ref[conns, procs])
                yield f"{name}.smtp_source.median", reference, "msg/s"
                yield f"{name}.newsletter.median", median, "msg/s"
                yield f"{name}.of_smtp_source", median / reference, "x"
                if old[conns, procs]:
                    yield f"{name}.before.median", statistics.median(old[conns, procs]), "msg/s"
                    yield f"{name}.before.of_smtp_source", statistics.median(old[conns, procs]) / reference, "x"
            two = statistics.median(ours[8, 2]) / statistics.median(ours[8, 1])
            yield "relay.8_conn.2_proc_over_1_proc", two, "x"
            yield from _cpu_figures(root, port, sink.pid, before)
        finally:
            sink.terminate()
            sink.wait()
