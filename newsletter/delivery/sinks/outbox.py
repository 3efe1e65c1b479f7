"""`OutboxSink`: one `.eml` file per recipient in a folder — the default, which needs no server."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ...errors import DeliveryError, WriteError
from ...fsutil import remove_temp_files, write_atomic
from .base import Envelope, Outcome, Sink

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def file_name(recipient: str) -> str:
    """`ann@example.com.eml`; odd characters replaced, with a short hash so two addresses never collide."""
    safe = _UNSAFE.sub("_", recipient)[:120]
    if safe != recipient or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{hashlib.sha256(recipient.encode()).hexdigest()[:8]}"
    return f"{safe}.eml"


class OutboxSink(Sink):
    """Writes each message atomically to `folder/<recipient>.eml`; a resend overwrites the same file.

    No fsync per file: the ledger records a message as sent only after its rename, which is atomic for
    a crashing process; syncing ten thousand small files would cost more than the rest of the run.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(f"{self.folder}: cannot create the outbox folder ({exc.strerror or exc})") from None
        # A run killed mid-write left its temp files; this run holds the edition's lock, so none is live.
        remove_temp_files(self.folder)

    def send(self, envelope: Envelope) -> Outcome:
        path = self.folder / file_name(envelope.recipient)
        try:
            write_atomic(path, envelope.data, fsync=False)
        except OSError as exc:  # the folder, not this message: read-only, full, gone — no retry can help
            raise WriteError(
                f"{self.folder}: cannot write {path.name} ({exc.strerror or exc}); stopped, the rest stay pending"
            ) from None
        return Outcome("sent", None, f"written to {path.name}")

    def describe(self) -> str:
        return f"outbox {self.folder}"
