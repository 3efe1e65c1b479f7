"""`newsletter subscribers`: the reader base (data/subscribers.sqlite, or PostgreSQL with database_url).

Every change goes through the reader base's state changes (storage/readers.py): the reader's record,
subscription, history and the suppression list are written together.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import click

from ..storage import Entry
from . import cli, echo_err, handle_errors, load, root_option
from .output import emit, json_option

STATUS = click.Choice(["pending", "confirmed", "unsubscribed", "bounced", "complained"])


@cli.group()
def subscribers() -> None:
    """The reader base (data/subscribers.sqlite, or PostgreSQL with database_url): add, import, export,
    list, show, count, forget, remove.

    `send` and the scheduler mail its confirmed readers unless --subscribers names another list. A reader
    who unsubscribed, bounced or complained stays so through `add` and `import`; only a new double
    opt-in, or `add --resubscribe --consent-note "…"`, brings them back.

    \b
    Examples:
      newsletter subscribers add reader@example.org --name "Ann"
      newsletter subscribers import people.csv
      newsletter subscribers export > subscribers.csv
    """


def _readers(root: Path) -> Any:
    from ..delivery import open_suppression

    return open_suppression(load(root))


def _address(raw: str) -> str:
    from ..delivery import check_address

    try:
        return check_address(raw)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


_SAID = {
    "added": "added",
    "updated": "updated",
    "unchanged": "unchanged",
    "kept": "kept unsubscribed",
    "refused": "refused (forgotten)",
}


@subscribers.command("add")
@root_option
@click.argument("address")
@click.option("--name", default=None, help="Shown in the greeting.")
@click.option("--locale", default=None, help="e.g. fr, en-GB: the language edition the reader gets.")
@click.option("--status", type=STATUS, default=None, help="Default for a new address: confirmed.")
@click.option("--timezone", default=None, help="IANA name, e.g. America/New_York (for [schedule] per_timezone).")
@click.option("--replace", is_flag=True, help="Replace the row: fields not given become empty.")
@click.option("--resubscribe", is_flag=True, help="Bring back a reader who left (needs --consent-note).")
@click.option("--consent-note", default="", help="With --resubscribe: what the reader agreed to, when, how.")
@handle_errors
def add(
    root: Path,
    address: str,
    name: str | None,
    locale: str | None,
    status: str | None,
    timezone: str | None,
    replace: bool,
    resubscribe: bool,
    consent_note: str,
) -> None:
    """Add an address, or change the fields given of an existing one (the others stay as they are).

    An unsubscribed, bounced or complained reader is never made confirmed again by `add`: it says "kept
    unsubscribed". `--resubscribe --consent-note "…"` does, recording the note in the reader's history.
    A time zone that is not an IANA name is stored as none (the schedule's zone), with a warning.

    \b
    Examples:
      newsletter subscribers add reader@example.org --name "Ann" --timezone Europe/Paris
      newsletter subscribers add reader@example.org --locale fr
      newsletter subscribers add reader@example.org --resubscribe --consent-note "asked by letter, 2026-12-01"
    """
    from ..delivery import clean_name
    from ..storage import Fields, clean_zone

    if timezone and timezone.strip() and not clean_zone(timezone):
        echo_err(f"--timezone: unknown time zone {timezone.strip()!r}; the schedule's zone applies", level="warning")
    normal = _address(address)
    if resubscribe and not consent_note.strip():
        raise click.UsageError("--resubscribe needs --consent-note: what new consent the reader gave")
    fields = Fields(None if name is None else clean_name(name), locale, timezone, status)
    with _readers(root) as base:
        outcome = base.put(normal, fields, replace=replace)
        if resubscribe:
            base.resubscribe(normal, consent_note)
            outcome = "resubscribed"
        record = base.get(normal)
    state = record.status if record is not None else "suppressed"
    click.echo(f"{_SAID.get(outcome, outcome)} {normal} ({state})")


@subscribers.command("remove")
@root_option
@click.argument("address")
@handle_errors
def remove(root: Path, address: str) -> None:
    """Delete an address's record, subscriptions and history (its suppression entry is kept). To erase a
    reader's personal data for good, use `forget`.

    \b
    Example:
      newsletter subscribers remove reader@example.org
    """
    with _readers(root) as base:
        if not base.remove(address):
            raise click.ClickException(f"{address}: not in the subscriber store")
    click.echo(f"removed {address}")


@subscribers.command("forget")
@root_option
@click.argument("address")
@handle_errors
def forget(root: Path, address: str) -> None:
    """Erase everything kept about a reader (record, subscriptions, history, the address itself), keeping
    only a hashed suppression entry: the address is never mailed, signed up by import or added again.

    \b
    Example:
      newsletter subscribers forget reader@example.org
    """
    with _readers(root) as base:
        known = base.forget(address)
    said = "erased;" if known else "nothing was kept about it;"
    click.echo(f"{address}: {said} a hashed suppression entry keeps it from being mailed or imported again")


@subscribers.command("import")
@root_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--status", type=STATUS, default="confirmed", show_default=True, help="Status of new rows.")
@click.option("--replace", is_flag=True, help="Replace each row: empty cells become empty values.")
@handle_errors
def import_(root: Path, file: Path, status: str, replace: bool) -> None:
    """Import a CSV file (email,name,locale,timezone header). Bad rows are listed by line; the rest are imported.

    Only what a row gives changes: an empty cell leaves the value as it is (`--replace` empties it). A
    reader who unsubscribed, bounced or complained is counted "kept unsubscribed" and stays so; a
    forgotten address is refused. A `timezone` that is not an IANA name is imported as none.

    Exit 1 when any row was bad.

    \b
    Example:
      newsletter subscribers import people.csv
    """
    from ..delivery import SubscriberSource
    from ..storage import Fields

    source = SubscriberSource(file)
    if source.kind != "csv":
        raise click.ClickException(f"{file}: expected a .csv file")
    counts = dict.fromkeys(_SAID, 0)
    with _readers(root) as base:
        for row in source:
            fields = Fields(row.name or None, row.locale or None, row.timezone or None, status)
            counts[base.put(row.address, fields, replace=replace, via="import")] += 1
    for problem in source.problems:
        echo_err(f"{file}:{problem.line}: {problem.reason}", level="warning")
    total = sum(counts.values())
    click.echo(
        f"imported {total} address(es) from {file}: {counts['added']} new, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {counts['kept']} kept unsubscribed, {counts['refused']} refused "
        f"(forgotten), {len(source.problems)} bad row(s) skipped"
    )
    if source.problems:
        sys.exit(1)


@subscribers.command("export")
@root_option
@click.option("--status", type=STATUS, default=None, help="Only this status (default: all).")
@click.option("--with-consent", is_flag=True, help="Include the consent record (time, form, IP hash).")
@handle_errors
def export(root: Path, status: str | None, with_consent: bool) -> None:
    """Write the readers as CSV to standard output: their real state, and why (the event that made it).
    No consent data unless --with-consent.

    \b
    Example:
      newsletter subscribers export --status confirmed > subscribers.csv
    """
    writer = csv.writer(sys.stdout, lineterminator="\n")
    head = ["email", "name", "locale", "timezone", "status", "created_at", "confirmed_at", "paused_until", "why"]
    writer.writerow(
        head + (["consent_at", "consent_form", "consent_method", "consent_ip_hash"] if with_consent else [])
    )
    with _readers(root) as base:
        for r in base.subscribers.records(status):
            row = [r.email, r.name, r.locale, r.timezone, r.status, r.created_at, r.confirmed_at or ""]
            row += [r.paused_until or "", base.why(r)]
            if with_consent:
                c = r.consent
                row += [c.at, c.form, c.method, c.ip_hash] if c else ["", "", "", ""]
            writer.writerow(row)


@subscribers.command("list")
@root_option
@click.option("--status", type=STATUS, default=None, help="Only this status (default: all).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many.")
@handle_errors
def list_(root: Path, status: str | None, limit: int | None) -> None:
    """One line per reader: address, status, name, since when, and why.

    \b
    Example:
      newsletter subscribers list --status pending
    """
    with _readers(root) as base:
        for n, r in enumerate(base.subscribers.records(status)):
            if limit is not None and n >= limit:
                break
            click.echo(f"{r.email}\t{r.status}\t{r.name}\t{r.confirmed_at or r.created_at}\t{base.why(r)}")


@subscribers.command("show")
@root_option
@click.argument("address")
@json_option
@handle_errors
def show(root: Path, address: str, as_json: bool) -> None:
    """Everything kept about one reader: the record (status, name, locale, time zone, pause, consent),
    each subscription with its status, the history, and the suppression entry. Exit status 1 when
    nothing is kept about the address.

    \b
    Examples:
      newsletter subscribers show reader@example.org
      newsletter subscribers show reader@example.org --json
    """
    with _readers(root) as base:
        data = base.show(_address(address))
        record = base.get(data["address"])
        why = base.why(record) if record is not None else ""
    if data["record"] is None and data["suppression"] is None:
        raise click.ClickException(f"{address}: not in the subscriber store")
    if as_json:
        # The record's fields at the top (as before), then subscriptions, history and the suppression entry.
        entry = data["suppression"]
        suppressed = None if entry is None else Entry(**entry).describe()
        emit({**(data["record"] or {"email": data["address"]}), **data, "why": why, "suppressed": suppressed})
        return
    _print_reader(data, why)


def _print_reader(data: dict[str, Any], why: str) -> None:
    record = data["record"]
    if record is None:
        click.echo(f"email: {data['address']}")
        click.echo("status: forgotten (personal data erased)" if data["forgotten"] else "status: not in the store")
    else:
        for key, value in record.items():
            if key != "consent":
                click.echo(f"{key}: {value if value not in (None, '') else '-'}")
        click.echo(f"consent: {record['consent'] if record['consent'] is not None else '-'}")
        click.echo(f"why: {why or '-'}")
    for sub in data["subscriptions"]:
        click.echo(f"subscription {sub['newsletter']}: {sub['status']} (since {sub['updated_at'][:19]})")
    entry = data["suppression"]
    if entry is not None:
        click.echo(f"suppressed: {Entry(**entry).describe()}")
    else:
        click.echo("suppressed: -")
    for event in data["history"]:
        detail = f": {event['detail']}" if event["detail"] else ""
        where = f" {event['newsletter']}" if event["newsletter"] else ""
        click.echo(f"history: {event['at'][:19]} {event['kind']}{where} ({event['via']}){detail}")


@subscribers.command("count")
@root_option
@handle_errors
def count(root: Path) -> None:
    """How many readers per status.

    \b
    Example:
      newsletter subscribers count
    """
    with _readers(root) as base:
        counts = base.subscribers.counts()
    click.echo("  ".join(f"{k} {v}" for k, v in counts.items()) + f"  total {sum(counts.values())}")
