"""SMTP transactions in as few round trips as the relay allows: PIPELINING (RFC 2920) and CHUNKING (RFC 3030).

Against Postfix's `smtp-sink` (offers PIPELINING; dumps what it received), aiosmtpd told to offer
PIPELINING (it reads pipelined commands, it just does not say so) and a small BDAT server (neither of
the others offers CHUNKING). Every reply must come out of a pipelined transaction exactly as it does
one command at a time, and every message must arrive byte for byte.
"""

from __future__ import annotations

import asyncio
import binascii
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.delivery.personalize import _qp_static
from newsletter.delivery.sinks.base import Envelope
from newsletter.delivery.sinks.smtp import SmtpConfig, SmtpSink
from tests.helpers import IN_CI
from tests.test_smtp_server import FaultHandler, SmtpTestServer, envelope, free_port, serve, sink_for

DOTS = "A line.\r\n.\r\n..two dots\r\n.one dot\r\n. space\r\nlast\r\n"


class Pipelining(FaultHandler):
    """The scripted faults of test_smtp_server, PIPELINING offered, and a MAIL FROM that says "later"."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("later@"):
            return "451 4.3.2 Try again later"
        envelope.mail_from = address
        return "250 2.1.0 OK"


class OneByOne(Pipelining):
    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return responses


SCRIPT = {
    "greylisted@example.com": ["rcpt451"],
    "unknown@example.com": ["rcpt550"],
    "spam@example.com": ["554"],
    "closing@example.com": ["421"],
    "dropped@example.com": ["drop"],
}


def _outcomes(handler: FaultHandler) -> tuple[list[tuple[str, str, int | None, str]], SmtpSink, SmtpTestServer]:
    handler.script = dict(SCRIPT)
    with serve(handler) as server:
        sink = sink_for(server)
        with sink:
            seen = []
            for to in ["ok1@example.com", *SCRIPT, "ok2@example.com"]:
                o = sink.send(envelope(to, DOTS))
                seen.append((to, o.status, o.code, o.stage))
            o = sink.send(Envelope("later@example.org", "ok3@example.com", envelope("ok3@example.com").data))
            seen.append(("ok3@example.com", o.status, o.code, o.stage))
            o = sink.send(envelope("ok4@example.com", DOTS))
            seen.append(("ok4@example.com", o.status, o.code, o.stage))
        return seen, sink, server


def test_pipelined_replies_read_as_one_by_one() -> None:
    piped, sink, server = _outcomes(Pipelining())
    assert sink.extensions == {"PIPELINING"}
    plain, plain_sink, _ = _outcomes(OneByOne())
    assert plain_sink.extensions == frozenset()
    assert (
        piped
        == plain
        == [
            ("ok1@example.com", "sent", 250, "data"),
            ("greylisted@example.com", "transient", 451, "rcpt"),
            ("unknown@example.com", "permanent", 550, "rcpt"),
            ("spam@example.com", "permanent", 554, "data"),
            ("closing@example.com", "transient", 421, "data"),
            ("dropped@example.com", "transient", None, "data"),
            ("ok2@example.com", "sent", 250, "data"),
            ("ok3@example.com", "transient", 451, "mail"),
            ("ok4@example.com", "sent", 250, "data"),
        ]
    )
    # The connection closed by 421 and the dropped one were replaced; the others were kept.
    assert sink.connects == plain_sink.connects == 3
    got = {r.rcpt_tos[0]: r.data for r in server.received}
    assert sorted(got) == ["ok1@example.com", "ok2@example.com", "ok4@example.com"]
    assert got["ok4@example.com"] == envelope("ok4@example.com", DOTS).data  # the dots arrive unstuffed


def test_pipelining_over_starttls(tmp_path: Path) -> None:
    server = SmtpTestServer(Pipelining(), tls="starttls", tmp=tmp_path).start()
    try:
        with sink_for(server, ca_file=server.ca_file) as sink:
            assert all(sink.send(envelope(f"tls{i}@example.com", DOTS)).sent for i in range(5))
        assert sink.extensions == {"PIPELINING"}
    finally:
        server.stop()
    assert [r.data for r in server.received] == [envelope(f"tls{i}@example.com", DOTS).data for i in range(5)]


# --- Postfix's smtp-sink ----------------------------------------------------------------------------


@pytest.fixture
def smtp_sink() -> Iterator[tuple[int, Path]]:
    """`smtp-sink` on a free port, dumping each transaction into its own file under `dumps/`."""
    if shutil.which("smtp-sink") is None:
        if IN_CI:
            pytest.fail("smtp-sink is missing: .ci/run must install Debian's postfix")
        pytest.skip("Postfix's smtp-sink is not installed (apt-get install postfix)")
    # smtp-sink drops to nobody when started as root: the dumps go where nobody can write (pytest's
    # tmp_path is private to its user).
    dumps = Path(tempfile.mkdtemp(prefix="newsletter-smtp-sink-"))
    dumps.chmod(0o777)
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(["smtp-sink", *user, "-d", f"{dumps}/%M.", f"127.0.0.1:{port}", "64"])
    try:
        deadline = time.monotonic() + 10
        while True:  # listening once a connection is taken
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, dumps
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(dumps, ignore_errors=True)


def test_smtp_sink_gets_every_message_whole(smtp_sink: tuple[int, Path]) -> None:
    port, dumps = smtp_sink
    sink = SmtpSink(SmtpConfig(host="127.0.0.1", port=port, connections=2, timeout=5))
    sent: dict[str, bytes] = {}
    with sink:
        for i in range(12):
            to = f"reader{i}@example.com"
            safe = i % 2 == 0  # half claim to need no stuffing (and need none), half carry leading dots
            env = envelope(to, "No dot leads here.\r\nNor here.\r\n" if safe else DOTS)
            env = Envelope(env.sender, to, env.data, dot_safe=safe)
            assert sink.send(env).sent
            sent[to] = env.data
    assert sink.extensions == {"PIPELINING"}
    deadline = time.monotonic() + 10
    while len(list(dumps.iterdir())) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    got = {}
    for dump in dumps.iterdir():
        text = dump.read_bytes()
        to = text.split(b"X-Rcpt-Args: <", 1)[1].split(b">", 1)[0].decode()
        got[to] = text[text.index(b"From: a@example.org") :].rstrip(b"\n") + b"\n"
    assert got == {to: data.replace(b"\r\n", b"\n") for to, data in sent.items()}


# --- CHUNKING ---------------------------------------------------------------------------------------


class BdatServer:
    """A minimal relay offering PIPELINING and CHUNKING: BDAT LAST only, as the client sends it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, bytes]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 bdat ESMTP\r\n")
        rcpt: str | None = None
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-bdat\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
            elif verb == b"RCPT":
                to = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                refused = to.startswith("unknown")
                rcpt = None if refused else to
                writer.write(b"550 5.1.1 No such user\r\n" if refused else b"250 2.1.5 OK\r\n")
            elif verb == b"BDAT":
                data = await reader.readexactly(int(line.split()[1]))  # consumed even when refused
                if rcpt is None:
                    writer.write(b"554 5.5.1 No valid recipients\r\n")
                else:
                    self.received.append((rcpt, data))
                    writer.write(b"250 2.0.0 queued\r\n")
                rcpt = None
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:  # MAIL, RSET
                writer.write(b"250 OK\r\n")
            await writer.drain()
        writer.close()

    def __enter__(self) -> BdatServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(asyncio.start_server(self._session, "127.0.0.1", self.port), self.loop).result(
            5
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_chunking_sends_the_message_as_it_is() -> None:
    with BdatServer() as server:
        sink = SmtpSink(SmtpConfig(host="127.0.0.1", port=server.port, timeout=5))
        with sink:
            first = sink.send(envelope("one@example.com", DOTS))
            refused = sink.send(envelope("unknown@example.com", DOTS))
            last = sink.send(envelope("two@example.com", DOTS))
        assert sink.extensions == {"PIPELINING", "CHUNKING"}
    assert (first.status, refused.status, refused.code, refused.stage, last.status) == (
        "sent",
        "permanent",
        550,
        "rcpt",
        "sent",
    )
    assert sink.connects == 1  # the refused message's chunk was read past, the connection kept
    # BDAT carries the bytes as they are: no dot doubled, the lone "." line just a line.
    assert server.received == [(to, envelope(to, DOTS).data) for to in ("one@example.com", "two@example.com")]


# --- messages that need no stuffing -----------------------------------------------------------------


def test_encoded_body_lines_never_start_with_a_dot() -> None:
    text = ".lead\n..\n.\n" + "." + "x" * 80 + "\n" + "." * 160 + "\nplain . text\n"
    data = _qp_static(text)
    lines = data.split(b"\r\n")
    assert not any(line.startswith(b".") for line in lines)
    assert max(len(line) for line in lines) <= 76
    assert binascii.a2b_qp(data.replace(b"\r\n", b"\n")).decode() == text
