"""Log lines for people (the default) or for a log pipeline: one JSON object per line.

In:  the format (`--log-format`, `NEWSLETTER_LOG_FORMAT`, `[logging] format`) and the context a run sets
     with `context(edition=…, language=…)`.
Out: records on stderr carrying the time, level, logger, message and the context fields
     (newsletter, edition, language, sender, run_id).

Reader addresses never leave at info level or above: whatever a message says, the local part of anything
shaped like an address is masked (`…@example.org`) before it is written, so a line listing a refusal
still names the domain that refused. Debug lines keep them, for someone tracing one reader by hand.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

FORMAT_ENV = "NEWSLETTER_LOG_FORMAT"  # carried to uvicorn's worker processes
FORMATS = ("text", "json")
FIELDS = ("newsletter", "edition", "language", "sender", "run_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?=[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar("newsletter_log", default=())
_defaults: dict[str, str] = {}


def mask_addresses(text: str) -> str:
    """`reader@example.org: 550 no such user` → `…@example.org: 550 no such user`."""
    return _ADDRESS.sub("…@", text)


@contextlib.contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Add fields (edition, language, sender, run_id) to every record logged inside the block."""
    merged = {**dict(_context.get()), **{k: str(v) for k, v in fields.items() if v is not None and v != ""}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


def set_defaults(**fields: Any) -> None:
    """Fields every record of this process carries (the newsletter's list id, the sender); the process's
    run id is made once, the first time."""
    _defaults.update({k: str(v) for k, v in fields.items() if v})
    _defaults.setdefault("run_id", new_run_id())


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def current() -> dict[str, str]:
    return {**_defaults, **dict(_context.get())}


class _Context(logging.Filter):
    """Puts the context fields on the record and masks addresses above debug level."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        if record.levelno > logging.DEBUG:
            record.msg = mask_addresses(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = mask_addresses(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the context fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value:
                line[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


_choice: dict[str, str] = {}


def choose(fmt: str | None) -> None:
    """Pin this process's format (`--log-format`, then what `[logging] format` adds); None forgets it."""
    if fmt:
        _choice["format"] = fmt
    else:
        _choice.pop("format", None)


def chosen_format(configured: str = "") -> str:
    """The command line's choice, else the environment (a uvicorn worker of `serve`), else `[logging]
    format`, else text."""
    value = _choice.get("format") or os.environ.get(FORMAT_ENV) or configured or "text"
    return value if value in FORMATS else "text"


def handler(fmt: str | None = None) -> logging.Handler:
    """A stderr handler in the chosen format, with the context fields and address masking."""
    out = logging.StreamHandler(sys.stderr)
    if (fmt or chosen_format()) == "json":
        out.setFormatter(JsonFormatter())
    else:
        out.setFormatter(logging.Formatter(TEXT_FORMAT, TIME_FORMAT))
    out.addFilter(_Context())
    return out


def configure_json(level: int = logging.INFO) -> None:
    """JSON on stderr for the product's loggers and the servers under it, for the whole process."""
    out = handler("json")
    for name, lvl in (("newsletter", level), ("apscheduler", logging.WARNING), ("uvicorn", logging.WARNING)):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(out)
        logger.setLevel(lvl)
        logger.propagate = False


__all__ = [
    "FIELDS",
    "FORMATS",
    "FORMAT_ENV",
    "JsonFormatter",
    "choose",
    "chosen_format",
    "configure_json",
    "context",
    "current",
    "handler",
    "mask_addresses",
    "new_run_id",
    "set_defaults",
]
