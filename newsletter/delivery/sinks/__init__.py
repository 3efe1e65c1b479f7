"""Where messages go: the outbox folder, an SMTP server, memory (tests) or nowhere (benchmarks)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ...config import Settings
from ...errors import ConfigError
from .base import Envelope, Outcome, Sink
from .memory import MemorySink, NullSink
from .outbox import OutboxSink
from .smtp import SMTP, SmtpOptions, SmtpSink, config_from_settings, smtp_url


def mail_folder(settings: Settings, day: date, kind: str = "mail") -> Path:
    return settings.edition_dir(day) / kind


def make_sink(
    settings: Settings,
    day: date,
    *,
    smtp: str | None = None,
    connections: int | None = None,
    kind: str = "mail",
) -> Sink:
    """SMTP when `--smtp` or `[smtp] url` says so, else the outbox folder `outbox/<date>/<kind>/`."""
    if smtp_url(settings, smtp) is not None:
        return SmtpSink(config_from_settings(settings, smtp, connections=connections))
    return OutboxSink(mail_folder(settings, day, kind))


def configured_rate(settings: Settings, rate: float | None) -> float:
    if rate is not None:
        if rate < 0:
            raise ConfigError(f"--rate must be 0 (no limit) or more, got {rate}")
        return rate
    return settings.options(SMTP).rate


__all__ = [
    "SMTP",
    "Envelope",
    "MemorySink",
    "NullSink",
    "OutboxSink",
    "Outcome",
    "Sink",
    "SmtpOptions",
    "SmtpSink",
    "configured_rate",
    "mail_folder",
    "make_sink",
    "smtp_url",
]
