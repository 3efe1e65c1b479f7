"""`newsletter schedule`: the morning daemon, a look at its next run times, or one run now."""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from . import cli, handle_errors, load_newsletters, metrics_port_option, newsletter_option, root_option, serve_metrics


@cli.command()
@root_option
@click.option(
    "--next",
    "next_count",
    type=click.IntRange(1, 1000),
    default=None,
    metavar="N",
    help="Print the next N run times (ISO 8601 with offset, one a line; with per_timezone the batches) and exit.",
)
@click.option(
    "--from",
    "start",
    default=None,
    metavar="ISO",
    help="With --next: count from this instant instead of now (2027-03-26T12:00+01:00; no offset = schedule's zone).",
)
@click.option("--run-now", is_flag=True, help="Run the job once in the foreground for today's edition, then exit.")
@newsletter_option
@metrics_port_option
@handle_errors
def schedule(
    root: Path,
    next_count: int | None,
    start: str | None,
    run_now: bool,
    newsletter_id: str | None,
    metrics_port: int | None,
) -> None:
    """Send each morning's edition on time: build and deliver today's edition at [schedule] at.

    With several [newsletters.<id>], one daemon runs every newsletter's rhythm (daily at its `at`,
    weekly on its `day`), each on a worker of its own: one newsletter's failure or long send never delays
    another's. --next lists every newsletter's runs (with its id), or --newsletter ID's; --run-now runs
    the default newsletter's morning, or --newsletter ID's.

    Runs until SIGTERM or Ctrl-C (the message in flight finishes first), then exits 0. With
    --run-now, exits 1 unless the edition went out completely (or was already sent, or had no
    stories). Configure it in
    newsletter.toml; missed mornings within `grace` are caught up once, older ones are logged as
    skipped and never sent, and an edition already sent is never sent again. Only one scheduler
    runs per folder.

    \b
    [schedule]
    at = "06:00"                 # local time, HH:MM or HH:MM:SS
    timezone = "Europe/Paris"    # default: the newsletter's timezone
    days = "mon-sun"             # day names: "mon-fri", "mon,wed,fri"
    grace = "3h"                 # how late a morning may still be sent
    retries = 3                  # after a failed run (SMTP down, ...)
    retry_delay = "10m"
    per_timezone = false         # true: each reader at `at` in their own zone

    \b
    Examples:
      newsletter schedule --next 5 --from 2027-03-26T12:00+01:00
      newsletter schedule --run-now
      newsletter schedule --next 3 --newsletter weekly
      newsletter schedule --root /srv/paper --metrics-port 9464
    """
    from ..schedule import Daemon, Outcome, config_for, logging_to_stderr
    from ..schedule import run_now as run_once

    if start is not None and next_count is None:
        raise click.UsageError("--from goes with --next N")
    if run_now and next_count is not None:
        raise click.UsageError("--run-now and --next do not go together")
    if newsletter_id is not None and next_count is None and not run_now:
        raise click.UsageError("--newsletter goes with --next N or --run-now (the daemon runs every newsletter)")
    chosen = load_newsletters(root, newsletter_id, scheduled_only=True)
    settings = chosen[0] if newsletter_id is not None else (chosen[0].whole or chosen[0])
    config = config_for(settings)
    if next_count is not None:
        begin = _instant(start, config.timezone) if start else datetime.now(config.timezone)
        _print_next(chosen, settings, config, begin, next_count)
        return
    if metrics_port is not None:
        serve_metrics(metrics_port)
    with logging_to_stderr():
        if not run_now:
            if Daemon(settings, config).run():
                raise SystemExit(1)  # the daemon said why in its last line
            return
        stop = threading.Event()
        handlers: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():  # signal.signal works only there
            handlers = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            result = run_once(settings, stop=stop)
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
    line = f"edition {result.edition}: {result.outcome.value}: {result.detail}"
    if result.outcome in (Outcome.FAILED, Outcome.BUSY, Outcome.INTERRUPTED):
        raise click.ClickException(line)
    click.echo(line)


def _print_next(chosen: list[Any], settings: Any, config: Any, begin: datetime, count: int) -> None:
    """`--next N`: one newsletter's run times (its batches with per_timezone), or every newsletter's."""
    from ..schedule import next_batches, next_runs

    if len(chosen) > 1 and not config.per_timezone:  # with batches: the default newsletter's
        _print_next_of_each(chosen, begin, count)
    elif config.per_timezone:
        for batch in next_batches(settings, config, begin, count):
            click.echo(
                f"{batch.at.isoformat()}  {batch.zone}  edition {batch.edition}  "
                f"({batch.readers} reader{'' if batch.readers == 1 else 's'})"
            )
    else:
        for moment in next_runs(config.trigger(), begin, count):
            click.echo(moment.isoformat())


def _print_next_of_each(chosen: list[Any], begin: datetime, count: int) -> None:
    """The next `count` runs of all the newsletters together, in time order, each with its id."""
    from ..schedule import config_for, next_runs

    found = sorted(
        (moment, one.newsletter) for one in chosen for moment in next_runs(config_for(one).trigger(), begin, count)
    )
    for moment, letter in found[:count]:
        click.echo(f"{moment.isoformat()}  {letter}")


def _instant(text: str, tz: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 date-time like 2027-03-26T12:00+01:00", param_hint="--from"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)
