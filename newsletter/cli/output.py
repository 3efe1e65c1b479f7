"""`--json`: the machine-readable face of `status`, `send`, `bounces` and `subscribers show`.

One JSON object on stdout, keys in a stable order, dates as ISO 8601; the exit status is the same as
without `--json` (the exit-code table of docs/operations.md) and is also in the object as `exit_code`, so a caller
that only keeps the output still knows. Warnings go to stderr as usual.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Any, NoReturn

import click

# Exit codes a cron job or a monitoring check can act on (1 is any error that stopped the run).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # click: a bad option or argument
EXIT_FAILED = 3  # everything was attempted, some recipients refused permanently (5xx)
EXIT_INCOMPLETE = 4  # some recipients are still pending (transient errors, stopped, --limit): run again
EXIT_NOT_STARTED = 5  # `status`: nobody enrolled yet for that edition

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")


def _default(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def emit(data: dict[str, Any], exit_code: int | None = None) -> None:
    """Print `data` as one JSON object (with `exit_code` when given)."""
    if exit_code is not None:
        data = {**data, "exit_code": exit_code}
    click.echo(json.dumps(data, default=_default, ensure_ascii=False, indent=2))


def emit_and_exit(data: dict[str, Any], exit_code: int) -> NoReturn:
    emit(data, exit_code)
    sys.exit(exit_code)


def send_report(report: Any) -> dict[str, Any]:
    """A `SendReport` as plain values: the ledger's totals, what this run did, what went wrong."""
    keys = (
        "edition",
        "total",
        "sent",
        "failed",
        "skipped",
        "pending",
        "retried",
        "sent_now",
        "failed_now",
        "deferred",
        "invalid",
        "duplicates",
        "suppressed",
        "removed",
        "throttled",
        "dry_run",
        "test",
        "stopped",
        "limited",
        "sink",
        "elapsed",
        "send_seconds",
    )
    data: dict[str, Any] = {key: getattr(report, key) for key in keys}
    data["rate"] = round(report.sent_now / report.send_seconds, 1) if report.send_seconds > 0 else None
    data["paused"] = getattr(report, "paused", "") or None  # the circuit breaker's reason, when it paused
    data["requeued"] = getattr(report, "requeued", 0)  # failed recipients put back in the queue (--retry-failed)
    data["idle"] = getattr(report, "idle", "") or None  # why a run had nothing to send
    data["complete"], data["ok"] = report.complete, report.ok
    for key in ("warnings", "problems", "failures", "stories_skipped", "senders"):
        data[key] = list(getattr(report, key))
    return data


_RUN_ONLY = ("sent_now", "failed_now", "deferred", "dry_run", "test", "stopped", "limited", "sink", "elapsed")


def ledger_status(report: Any, *, failures: bool) -> dict[str, Any]:
    """`status --json`: the ledger's side of a `SendReport` (what one run did is `send --json`'s)."""
    data = send_report(report)
    for key in (
        *_RUN_ONLY,
        "send_seconds",
        "rate",
        "problems",
        "stories_skipped",
        *(() if failures else ("failures",)),
    ):
        data.pop(key)
    data["status"] = state_of(report)
    return data


def state_of(report: Any) -> str:
    return "complete" if report.ok else ("complete, with failures" if report.complete else "incomplete")


def status_code(report: Any) -> int:
    return EXIT_OK if report.ok else EXIT_FAILED if report.complete else EXIT_INCOMPLETE


def bounce_report(report: Any) -> dict[str, Any]:
    keys = ("source", "dry_run", "read", "bounces", "dsns", "hard", "soft", "complaints", "autoreplies")
    data: dict[str, Any] = {key: getattr(report, key) for key in keys}
    for key in ("unrecognised", "malformed", "ignored", "already", "suppressed"):
        data[key] = getattr(report, key)
    data["decisions"] = [
        {"address": d.address, "event": d.event, "outcome": d.outcome, "detail": d.detail, "message_id": d.message_id}
        | {"edition": _edition(d.edition)}
        for d in report.decisions
    ]
    data["problems"] = list(report.problems)
    data["unrecognised_ids"] = list(report.unrecognised_ids)
    data["error"] = report.error or None
    return data


def _edition(found: Any) -> dict[str, str] | None:
    """The edition a bounce or complaint counts against (None: the report named none)."""
    if found is None:
        return None
    return {"date": found.day.isoformat(), "language": found.language, "by": found.how}


__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_NOT_STARTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "bounce_report",
    "emit",
    "emit_and_exit",
    "json_option",
    "ledger_status",
    "send_report",
    "state_of",
    "status_code",
]
