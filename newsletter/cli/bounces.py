"""`newsletter bounces`: read the bounce mailbox and feed the suppression list."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import cli, echo_err, handle_errors, load, root_option
from .output import bounce_report, emit_and_exit, json_option

SHOWN = 20  # lines of each list printed; the counts are complete


@cli.command()
@root_option
@click.option("--maildir", type=click.Path(file_okay=False, path_type=Path), help="Read this Maildir.")
@click.option("--mbox", type=click.Path(dir_okay=False, path_type=Path), help="Read this mbox file.")
@click.option(
    "--subscribers",
    metavar="FILE",
    help="Match reported addresses against this list (default: [mailing] subscribers, else the subscriber store).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be suppressed; change, move and remember nothing.")
@json_option
@handle_errors
def bounces(
    root: Path, maildir: Path | None, mbox: Path | None, subscribers: str | None, dry_run: bool, as_json: bool
) -> None:
    """Read bounces (DSNs), complaints (ARF) and auto-replies; suppress dead and complaining addresses.

    Without --maildir/--mbox, reads the mailbox of [bounces] (IMAP: host, user, folder; the password
    from NEWSLETTER_BOUNCES_PASSWORD). Reported addresses are matched against the list `send` mails
    (the subscriber store unless --subscribers or [mailing] subscribers names one). Each message is
    handled once (remembered by Message-ID) and then moved to the `processed` folder or flagged;
    nothing is deleted. A report that matches no subscriber, is cut off, or is a person's message (a
    forwarded bounce) stays in the mailbox, listed, for the next run or a person. A hard bounce or a
    complaint suppresses at once, soft bounces after 3 within 15 days ([bounces] soft_limit, soft_days).

    Exit status: 0 done, 1 the mailbox could not be read to the end (what was read is kept; rerun).
    --json prints the counts, every decision and every problem as one object.

    \b
    Examples:
      newsletter bounces --maildir ~/Maildir/.bounces --dry-run
      newsletter bounces --mbox /var/mail/bounces
      newsletter bounces                      # the [bounces] mailbox
    """
    from ..bounces import process, source_from_settings

    if maildir is not None and mbox is not None:
        raise click.UsageError("give --maildir or --mbox, not both")
    settings = load(root)
    report = process(
        settings, source_from_settings(settings, maildir=maildir, mbox=mbox), dry_run=dry_run, subscribers=subscribers
    )
    if report.error and not report.read:  # nothing was read at all: the one line is the whole story
        raise click.ClickException(report.error)
    if as_json:
        emit_and_exit(bounce_report(report), 1 if report.error else 0)
    for decision in report.decisions[:SHOWN]:
        click.echo(f"  {decision}")
    if len(report.decisions) > SHOWN:
        click.echo(f"  … and {len(report.decisions) - SHOWN} more")
    for line in report.problems[:SHOWN]:
        echo_err(f"  {line}", level="warning")
    if report.unrecognised_ids:
        echo_err("unrecognised (left in the mailbox for a person to read):", level="warning")
        for mid in report.unrecognised_ids[:SHOWN]:
            echo_err(f"  {mid}", level="warning")
    click.echo(report.summary())
    if report.error:
        echo_err(report.error)
        sys.exit(1)
