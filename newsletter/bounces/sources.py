"""Where bounce messages are read from: a Maildir, an mbox file, or an IMAP mailbox.

    Source.items()    yields Item(ref, data) one message at a time (data None + problem for an unreadable one)
    Source.done(ref)  the message was handled: move it to the `processed` folder, or flag it
    Source.close()

Nothing is ever deleted. An mbox is read as a stream, one message in memory at a time, so a
multi-gigabyte file costs its largest message, not its size; it is never rewritten (there is nothing
to move or flag), so reruns rely on the Message-ID memory alone. A message over `MAX_MESSAGE` bytes is
skipped with a line rather than read into memory: bounces are small, and a huge one is not a bounce.

A source that fails as a whole (a missing folder, an IMAP server that refuses the login or drops the
connection) raises `SourceError` with one line naming it; whatever was handled before stays handled.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ..errors import NewsletterError

MAX_MESSAGE = 20 * 1024 * 1024
PROCESSED_KEYWORD = "$NewsletterProcessed"  # an IMAP keyword: flag mode, and move without MOVE support
Processed = Literal["move", "flag"]


class SourceError(NewsletterError):
    """The mailbox cannot be read at all (or stopped being readable part-way): one line, naming it."""


@dataclass(frozen=True, slots=True)
class Item:
    ref: str  # where the message is: a file name, "offset N", or an IMAP UID
    data: bytes | None
    problem: str = ""


class Source:
    """Base class: see the module docstring for the contract."""

    name = "source"

    def items(self) -> Iterator[Item]:
        raise NotImplementedError

    def done(self, ref: str) -> None:
        """Mark a handled message so the next run does not see it (a no-op where that is impossible)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Maildir ---------------------------------------------------------------------------------------


class MaildirSource(Source):
    """A Maildir (`new/`, `cur/`, `tmp/`): handled messages move into its `.processed` subfolder
    (Maildir++, what Dovecot and Courier show as a folder) or get the Seen flag (`:2,S`)."""

    def __init__(self, path: Path, processed: Processed = "move", folder: str = "processed") -> None:
        self.path = Path(path)
        self.name = f"Maildir {self.path}"
        self.processed = processed
        self.target = self.path / f".{folder}"
        if not all((self.path / sub).is_dir() for sub in ("new", "cur", "tmp")):
            raise SourceError(f"{self.path}: not a Maildir (expected new/, cur/ and tmp/ folders)")

    def items(self) -> Iterator[Item]:
        for sub in ("new", "cur"):
            try:
                names = sorted(n for n in os.listdir(self.path / sub) if not n.startswith("."))
            except OSError as exc:
                raise SourceError(f"{self.path / sub}: cannot list ({exc.strerror})") from None
            for name in names:
                if self.processed == "flag" and sub == "cur" and "S" in name.partition(":2,")[2]:
                    continue  # already flagged by an earlier run (or read by someone: the Message-ID memory decides)
                path = self.path / sub / name
                ref = f"{sub}/{name}"
                try:
                    size = path.stat().st_size
                    if size > MAX_MESSAGE:
                        yield Item(ref, None, f"{size // (1024 * 1024)} MB: too large for a bounce, left alone")
                        continue
                    yield Item(ref, path.read_bytes())
                except FileNotFoundError:
                    continue  # taken by another reader meanwhile
                except OSError as exc:
                    yield Item(ref, None, f"cannot read ({exc.strerror})")

    def done(self, ref: str) -> None:
        sub, _, name = ref.partition("/")
        source = self.path / sub / name
        base, _, flags = name.partition(":2,")
        try:
            if self.processed == "move":
                for part in ("new", "cur", "tmp"):
                    (self.target / part).mkdir(parents=True, exist_ok=True)
                os.replace(source, self.target / sub / name)
            elif "S" not in flags:
                os.replace(source, self.path / "cur" / f"{base}:2,{''.join(sorted(flags + 'S'))}")
        except OSError as exc:
            raise SourceError(f"{source}: cannot mark as processed ({exc.strerror})") from None


# --- mbox ------------------------------------------------------------------------------------------


class MboxSource(Source):
    """An mbox file, read as a stream. `>From ` quoting (mboxrd) is undone; the file is never changed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"mbox {self.path}"
        if not self.path.is_file():
            raise SourceError(f"{self.path}: mbox file not found")

    def items(self) -> Iterator[Item]:
        try:
            fh: BinaryIO = self.path.open("rb")
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot open ({exc.strerror})") from None
        with fh:
            yield from self._split(fh)

    def _split(self, fh: BinaryIO) -> Iterator[Item]:
        lines: list[bytes] = []
        size = 0
        start = 0
        offset = 0
        too_big = False
        previous_blank = True

        def finish() -> Item | None:
            if too_big:
                return Item(f"offset {start}", None, f"message over {MAX_MESSAGE // (1024 * 1024)} MB, skipped")
            if not lines:
                return None
            if lines[-1] in (b"\n", b"\r\n"):  # the blank line that separates messages is not part of one
                lines.pop()
            return Item(f"offset {start}", b"".join(lines))

        first = True
        for line in fh:
            length = len(line)
            if line.startswith(b"From ") and previous_blank:
                if not first:
                    item = finish()
                    if item is not None:
                        yield item
                first = False
                lines, size, start, too_big = [], 0, offset, False
            elif first:
                if line.strip():
                    raise SourceError(f"{self.path}: not an mbox file (it does not start with a 'From ' line)")
            elif not too_big:
                if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
                    line = line[1:]
                size += len(line)
                if size > MAX_MESSAGE:
                    too_big, lines = True, []
                else:
                    lines.append(line)
            offset += length
            previous_blank = line in (b"\n", b"\r\n")
        if not first:
            item = finish()
            if item is not None:
                yield item


# --- IMAP ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapConfig:
    host: str
    user: str
    password: str
    folder: str = "INBOX"
    port: int = 993
    tls: Literal["imaps", "starttls"] = "imaps"
    ca_file: str | None = None  # an extra CA for a server with a private certificate
    processed: Processed = "move"
    processed_folder: str = "processed"
    timeout: float = 60.0


_IMAP_ERRORS: tuple[type[BaseException], ...] = (imaplib.IMAP4.error, OSError, socket.timeout, ssl.SSLError, EOFError)


class ImapSource(Source):
    """An IMAP mailbox over TLS (imapclient): handled messages are moved (MOVE, or COPY plus a keyword
    where the server lacks MOVE: nothing is expunged) or get the `$NewsletterProcessed` keyword."""

    def __init__(self, config: ImapConfig) -> None:
        self.config = config
        self.name = f"IMAP {config.user}@{config.host}:{config.port}/{config.folder}"
        self._client: Any = None
        self._can_move = False

    def _fail(self, what: str, exc: BaseException) -> SourceError:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, imaplib.IMAP4.abort | EOFError | ConnectionError | socket.timeout):
            what = f"{what}: the server closed or dropped the connection"
        return SourceError(f"{self.name}: {what} ({detail[:200]}); messages handled so far are kept, run again")

    def _connect(self) -> Any:
        from imapclient import IMAPClient
        from imapclient.exceptions import LoginError

        cfg = self.config
        context = ssl.create_default_context(cafile=cfg.ca_file) if cfg.ca_file else ssl.create_default_context()
        try:
            client = IMAPClient(
                cfg.host, port=cfg.port, ssl=cfg.tls == "imaps", ssl_context=context, timeout=cfg.timeout
            )
            if cfg.tls == "starttls":
                client.starttls(context)
        except _IMAP_ERRORS as exc:
            raise self._fail("cannot connect", exc) from None
        try:
            client.login(cfg.user, cfg.password)
        except LoginError:
            raise SourceError(f"{self.name}: login refused (check the user and NEWSLETTER_BOUNCES_PASSWORD)") from None
        except _IMAP_ERRORS as exc:
            raise self._fail("login failed", exc) from None
        return client

    def items(self) -> Iterator[Item]:
        cfg = self.config
        self._client = client = self._connect()
        try:
            self._can_move = client.has_capability("MOVE")
            client.select_folder(cfg.folder)
            if cfg.processed == "move" and not client.folder_exists(cfg.processed_folder):
                client.create_folder(cfg.processed_folder)
            uids = client.search(["NOT", "KEYWORD", PROCESSED_KEYWORD])
        except _IMAP_ERRORS as exc:
            raise self._fail(f"cannot open folder {cfg.folder!r}", exc) from None
        for uid in uids:
            try:
                # RFC822.SIZE first: a huge message is left alone, not fetched into memory.
                size = client.fetch([uid], ["RFC822.SIZE"]).get(uid, {}).get(b"RFC822.SIZE", 0)
                if size > MAX_MESSAGE:
                    yield Item(str(uid), None, f"{size // (1024 * 1024)} MB: too large for a bounce, left alone")
                    continue
                data = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
            except _IMAP_ERRORS as exc:
                raise self._fail(f"fetching message UID {uid}", exc) from None
            if data is None:
                continue  # expunged by someone else meanwhile
            yield Item(str(uid), bytes(data))

    def done(self, ref: str) -> None:
        cfg, uid = self.config, int(ref)
        try:
            if cfg.processed == "move" and self._can_move:
                self._client.move([uid], cfg.processed_folder)
            else:
                if cfg.processed == "move":
                    self._client.copy([uid], cfg.processed_folder)
                self._client.add_flags([uid], [PROCESSED_KEYWORD])
        except _IMAP_ERRORS as exc:
            raise self._fail(f"marking message UID {uid} as processed", exc) from None

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(*_IMAP_ERRORS):  # the connection is gone already; nothing is pending on it
                self._client.logout()
            self._client = None
