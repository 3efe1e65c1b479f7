"""One SMTP transaction on a connection smtplib has opened: pipelined where the server offers it.

smtplib connects, greets, starts TLS and logs in (`smtp.py`); from then on a `Wire` writes each
message's commands and reads the replies itself, as few round trips as the server allows:

    neither extension   MAIL · RCPT · DATA · message "."     four round trips, as smtplib takes
    PIPELINING          MAIL RCPT DATA · message "."          two (RFC 2920)
    + CHUNKING          MAIL RCPT BDAT n LAST message         one (RFC 3030), and never dot-stuffed

Addresses arrive checked (ASCII, no space, no angle bracket: `subscribers.check_address` and the VERP
return path), so they are written as they are instead of being parsed again for every message. A
message marked `dot_safe` (no line starts with a dot) goes as it is; any other is dot-stuffed here.
Replies are read from one buffer: a pipelined group's replies often arrive in one segment.
"""

from __future__ import annotations

import contextlib
import socket
import ssl

from .base import Envelope, Outcome, Stage

MAX_REPLY_LINE = 8192  # a longer line is not an SMTP reply (RFC 5321 4.5.3.1.5 allows 512)


class WireError(Exception):
    """The connection broke or answered with something that is not an SMTP reply: it is unusable."""


def one_line(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:500]


def outcome(code: int, reply: bytes | str, stage: Stage = "data") -> Outcome:
    text = f"{code} {one_line(reply)}".strip()
    if 200 <= code < 300:
        return Outcome("sent", code, text, stage=stage)
    if 500 <= code < 600:
        return Outcome("permanent", code, text, stage=stage)
    return Outcome("transient", code, text, stage=stage)


def dot_stuffed(data: bytes) -> bytes:
    """RFC 5321 4.5.2: every line that starts with a dot gets a second one."""
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


class Wire:
    """The command side of one open connection. `closing` is set once the server has said 421."""

    def __init__(self, sock: socket.socket, *, pipelining: bool, chunking: bool) -> None:
        self.sock = sock
        self.pipelining = pipelining
        self.chunking = chunking
        self.closing = False
        self._buf = b""
        # A plain socket takes several buffers in one call (no copy of the message to append a line to it);
        # TLS needs them joined.
        self._gather = not isinstance(sock, ssl.SSLSocket) and hasattr(sock, "sendmsg")
        with contextlib.suppress(OSError):  # a small command after a big write must not wait for an ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- replies --------------------------------------------------------------------------------------

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line, self._buf = self._buf[: end + 1], self._buf[end + 1 :]
                return line
            if len(self._buf) > MAX_REPLY_LINE:
                raise WireError("the server sent a reply line too long to be SMTP")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WireError("the server closed the connection")
            self._buf += chunk

    def reply(self) -> tuple[int, bytes]:
        """The next reply: its code and its text (the lines of a multi-line reply joined by newlines)."""
        lines = []
        while True:
            line = self._line()
            lines.append(line[4:].strip())
            if line[3:4] != b"-":
                break
        try:
            code = int(line[:3])
        except ValueError:
            raise WireError(f"not an SMTP reply: {one_line(line[:80])!r}") from None
        if code == 421:
            self.closing = True
        return code, b"\n".join(lines)

    # --- commands -------------------------------------------------------------------------------------

    def _write(self, *parts: bytes) -> None:
        """Write `parts` in order, in as few system calls as the socket allows."""
        if not self._gather:
            self.sock.sendall(b"".join(parts))
            return
        sent = self.sock.sendmsg(parts)
        for part in parts:  # what did not fit in the socket's buffer, without copying it
            if sent >= len(part):
                sent -= len(part)
                continue
            self.sock.sendall(memoryview(part)[sent:])
            sent = 0

    def command(self, line: bytes) -> tuple[int, bytes]:
        self.sock.sendall(line)
        return self.reply()

    def reset(self) -> None:
        """RSET after a refused transaction; a connection that cannot even do that is marked unusable."""
        if self.closing:
            return
        try:
            self.command(b"RSET\r\n")
        except (OSError, WireError):
            self.closing = True

    def quit(self) -> None:
        with contextlib.suppress(OSError, WireError):
            self.command(b"QUIT\r\n")

    def transaction(self, envelope: Envelope, stage: list[Stage]) -> Outcome:
        """MAIL, RCPT and the message; `stage[0]` follows along, so a dropped connection says where it dropped.

        Raises OSError or WireError when the connection breaks: then the message did not go.
        """
        mail = b"MAIL FROM:<%s>\r\n" % envelope.sender.encode("ascii")
        rcpt = b"RCPT TO:<%s>\r\n" % envelope.recipient.encode("ascii")
        if not self.pipelining:
            return self._one_by_one(mail, rcpt, envelope, stage)
        data = envelope.data
        if self.chunking:
            self._write(mail + rcpt + b"BDAT %d LAST\r\n" % len(data), data)
        else:
            self.sock.sendall(mail + rcpt + b"DATA\r\n")
        # Every command of the group gets its reply, in order; a 421 ends the group (the server closes).
        code, reply = self.reply()
        if code != 250:
            return self._refused(code, reply, "mail", pending=0 if code == 421 else 2)
        stage[0] = "rcpt"
        code, reply = self.reply()
        if code not in (250, 251):
            return self._refused(code, reply, "rcpt", pending=0 if code == 421 else 1)
        stage[0] = "data"
        code, reply = self.reply()
        if self.chunking:  # BDAT LAST's reply is the message's
            if not 200 <= code < 300:
                self.reset()
            return outcome(code, reply, "data")
        if code != 354:
            self.reset()
            return outcome(code, reply, "data")
        return self._content(envelope)

    def _one_by_one(self, mail: bytes, rcpt: bytes, envelope: Envelope, stage: list[Stage]) -> Outcome:
        code, reply = self.command(mail)
        if code != 250:
            self.reset()
            return outcome(code, reply, "mail")
        stage[0] = "rcpt"
        code, reply = self.command(rcpt)
        if code not in (250, 251):
            self.reset()
            return outcome(code, reply, "rcpt")
        stage[0] = "data"
        if self.chunking:  # BDAT waits for no go-ahead: the chunk follows its command at once
            self._write(b"BDAT %d LAST\r\n" % len(envelope.data), envelope.data)
            code, reply = self.reply()
            if not 200 <= code < 300:
                self.reset()
            return outcome(code, reply, "data")
        code, reply = self.command(b"DATA\r\n")
        if code != 354:
            self.reset()
            return outcome(code, reply, "data")
        return self._content(envelope)

    def _content(self, envelope: Envelope) -> Outcome:
        """After 354: the message, dot-stuffed unless it needs none, then the end-of-data line."""
        data = envelope.data if envelope.dot_safe else dot_stuffed(envelope.data)
        self._write(data, b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")
        code, reply = self.reply()
        return outcome(code, reply, "data")

    def _refused(self, code: int, reply: bytes, stage: Stage, *, pending: int) -> Outcome:
        """A pipelined command was refused: read the replies still owed for the group, then RSET."""
        for _ in range(pending):
            later, _text = self.reply()
            if later == 421:
                break
            if later == 354:  # DATA accepted with no recipient: end it empty (RFC 2920 3.1)
                self.command(b".\r\n")
        self.reset()
        return outcome(code, reply, stage)
