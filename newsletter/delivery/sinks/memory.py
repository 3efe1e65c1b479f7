"""Sinks that keep or drop messages: `MemorySink` for tests, `NullSink` for benchmarks."""

from __future__ import annotations

import threading

from .base import Envelope, Outcome, Sink


class MemorySink(Sink):
    """Keeps every envelope in `.sent`, in order."""

    inline = True

    def __init__(self, concurrency: int = 1) -> None:
        self.concurrency = concurrency
        self.sent: list[Envelope] = []
        self._lock = threading.Lock()

    def send(self, envelope: Envelope) -> Outcome:
        with self._lock:
            self.sent.append(envelope)
        return Outcome("sent", 250, "stored in memory")

    def describe(self) -> str:
        return "memory"


class NullSink(Sink):
    """Accepts and drops everything, counting messages and bytes: the ceiling of the rest of the pipeline."""

    inline = True

    def __init__(self, concurrency: int = 1) -> None:
        self.concurrency = concurrency
        self.messages = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def send(self, envelope: Envelope) -> Outcome:
        with self._lock:
            self.messages += 1
            self.bytes += len(envelope.data)
        return Outcome("sent", 250, "dropped")

    def describe(self) -> str:
        return "null (messages dropped)"
