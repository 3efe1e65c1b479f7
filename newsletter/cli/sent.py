"""What `send` (and `alert`) did, on the terminal: problems on stderr, the counts, the exit status."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import echo_err
from .output import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, emit_and_exit, send_report

SHOWN = 20  # problems printed in full; the rest are counted


def print_list(title: str, lines: list[str], total: int | None = None) -> None:
    if not lines:
        return
    echo_err(f"{title}:", level="warning")
    for line in lines[:SHOWN]:
        echo_err(f"  {line}", level="warning")
    more = (total if total is not None else len(lines)) - min(len(lines), SHOWN)
    if more > 0:
        echo_err(f"  … and {more} more", level="warning")


def print_sent(result: Any, as_json: bool) -> None:
    """What `send` did: problems on stderr, then the counts (per language when there are several), and
    its exit status."""
    report = result.combined()
    for line in report.stories_skipped:
        echo_err(f"story left out: {line}")
    for warning in report.warnings:
        echo_err(f"warning: {warning}", level="warning")
    print_list("skipped entries of the subscriber list", report.problems, report.invalid + report.duplicates)
    print_list("permanent failures", report.failures, report.failed_now)
    if as_json:
        data = send_report(report)
        data["languages"] = {lang: send_report(one) for lang, one in result.reports.items()}
        data["left_out"] = [{"language": lang, "reason": why} for lang, why in result.left_out]
        emit_and_exit(data, send_exit(report))
    if len(result.reports) > 1 or result.left_out:
        for lang, one in result.reports.items():
            click.echo(f"[{lang}] {one.summary()}")
    click.echo(report.summary())
    for lang, one in result.reports.items():
        if one.idle:
            click.echo(f"[{lang}] {one.idle}" if len(result.reports) > 1 else one.idle)
    sys.exit(send_exit(report))


def send_exit(report: Any) -> int:
    if report.test or report.dry_run:
        return EXIT_OK
    if report.stopped:
        return EXIT_INCOMPLETE
    if report.pending and not (report.limited and report.deferred == 0):
        return EXIT_INCOMPLETE
    if report.failed:
        return EXIT_FAILED
    return EXIT_OK
