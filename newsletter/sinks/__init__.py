"""Where messages go: the outbox folder, an SMTP server, memory (tests) or nowhere (benchmarks)."""

from __future__ import annotations

from .base import Envelope, Outcome, Sink
from .memory import MemorySink, NullSink
from .outbox import OutboxSink
from .smtp import SmtpSink

__all__ = ["Envelope", "MemorySink", "NullSink", "OutboxSink", "Outcome", "Sink", "SmtpSink"]
