"""`newsletter serve` (the public web app) and `newsletter subscribers` (the subscriber store)."""

from __future__ import annotations

import contextlib
import csv
import sys
from pathlib import Path

import click

from . import cli, echo_err, handle_errors, load, root_option
from .output import emit, json_option

STATUS = click.Choice(["pending", "confirmed", "unsubscribed", "bounced"])


@cli.command()
@root_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (behind a proxy: loopback).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
@click.option("--site", "with_site", is_flag=True, help="Also serve the static archive in site/.")
@click.option("--desk", "with_desk", is_flag=True, help="Also serve the editors' desk under /desk/ (signed-in staff).")
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies whose X-Forwarded-For is trusted for the client address (rate limits, consent records).",
)
@handle_errors
def serve(
    root: Path, host: str, port: int, workers: int, with_site: bool, with_desk: bool, forwarded_allow_ips: str
) -> None:
    """Run the public web app: one-click unsubscribe, double opt-in subscribe, /healthz.

    Meant to sit behind nginx or Caddy (docs/web.md shows both). Needs NEWSLETTER_UNSUBSCRIBE_SECRET. It
    answers only requests whose Host is one of [web] hosts (default: the host of base_url) and says
    which once it listens, with a `curl` that works from the same machine.

    \b
    Example:
      newsletter serve --port 8080 --workers 2 --site
      newsletter serve --desk      # and the editors' desk at /desk/ (docs/desk.md)
    """
    from ..web import serve_public

    load(root)  # a bad newsletter.toml is one line before anything starts

    def announce(lines: list[str]) -> None:
        for line in lines:
            click.echo(line, err=True)

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl+C it handled
        serve_public(
            root,
            host,
            port,
            workers=workers,
            site=with_site,
            desk=with_desk,
            forwarded_allow_ips=forwarded_allow_ips,
            announce=announce,
        )


@cli.group()
def subscribers() -> None:
    """The subscriber store (data/subscribers.sqlite, or PostgreSQL with database_url): add, remove, import,
    export, list, show, count.

    `send` and the scheduler mail its confirmed subscribers unless --subscribers names another list.

    \b
    Examples:
      newsletter subscribers add reader@example.org --name "Ann"
      newsletter subscribers import people.csv
      newsletter subscribers export > subscribers.csv
    """


def _store(root: Path):  # type: ignore[no-untyped-def]
    from ..delivery import subscriber_store

    return subscriber_store(load(root))


def _address(raw: str) -> str:
    from ..delivery import check_address

    try:
        return check_address(raw)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@subscribers.command("add")
@root_option
@click.argument("address")
@click.option("--name", default="", help="Shown in the greeting.")
@click.option("--locale", default="", help="e.g. fr, en-GB.")
@click.option("--status", type=STATUS, default="confirmed", show_default=True)
@click.option("--timezone", default="", help="IANA name, e.g. America/New_York (for [schedule] per_timezone).")
@handle_errors
def add(root: Path, address: str, name: str, locale: str, status: str, timezone: str) -> None:
    """Add an address (or update its name, locale, status and time zone).

    A time zone that is not an IANA name is stored as none (the schedule's zone), with a warning.

    \b
    Example:
      newsletter subscribers add reader@example.org --name "Ann" --timezone Europe/Paris
    """
    from ..delivery import clean_name
    from ..storage import clean_zone

    if timezone.strip() and not clean_zone(timezone):
        echo_err(f"--timezone: unknown time zone {timezone.strip()!r}; the schedule's zone applies", level="warning")
    store = _store(root)
    new = store.add(_address(address), name=clean_name(name), locale=locale.strip(), status=status, timezone=timezone)
    click.echo(f"{'added' if new else 'updated'} {address} ({status})")


@subscribers.command("remove")
@root_option
@click.argument("address")
@handle_errors
def remove(root: Path, address: str) -> None:
    """Delete an address and everything recorded about it (the suppression list is kept).

    \b
    Example:
      newsletter subscribers remove reader@example.org
    """
    if not _store(root).remove(address):
        raise click.ClickException(f"{address}: not in the subscriber store")
    click.echo(f"removed {address}")


@subscribers.command("import")
@root_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--status", type=STATUS, default="confirmed", show_default=True, help="Status of the rows imported.")
@handle_errors
def import_(root: Path, file: Path, status: str) -> None:
    """Import a CSV file (email,name,locale,timezone header). Bad rows are listed by line; the rest are imported.

    A `timezone` that is not an IANA name is imported as none (the schedule's zone).

    Exit 1 when any row was bad.

    \b
    Example:
      newsletter subscribers import people.csv
    """
    from ..delivery import SubscriberSource

    store = _store(root)
    source = SubscriberSource(file)
    if source.kind != "csv":
        raise click.ClickException(f"{file}: expected a .csv file")
    new = updated = 0
    for row in source:
        if store.add(row.address, name=row.name, locale=row.locale, status=status, timezone=row.timezone):
            new += 1
        else:
            updated += 1
    for problem in source.problems:
        echo_err(f"{file}:{problem.line}: {problem.reason}", level="warning")
    click.echo(
        f"imported {new + updated} address(es) from {file}: {new} new, {updated} updated, "
        f"{len(source.problems)} bad row(s) skipped"
    )
    if source.problems:
        sys.exit(1)


@subscribers.command("export")
@root_option
@click.option("--status", type=STATUS, default=None, help="Only this status (default: all).")
@click.option("--with-consent", is_flag=True, help="Include the consent record (time, form, IP hash).")
@handle_errors
def export(root: Path, status: str | None, with_consent: bool) -> None:
    """Write the store as CSV to standard output (no consent data unless --with-consent).

    \b
    Example:
      newsletter subscribers export --status confirmed > subscribers.csv
    """
    writer = csv.writer(sys.stdout, lineterminator="\n")
    head = ["email", "name", "locale", "timezone", "status", "created_at", "confirmed_at"]
    writer.writerow(
        head + (["consent_at", "consent_form", "consent_method", "consent_ip_hash"] if with_consent else [])
    )
    for r in _store(root).records(status):
        row = [r.email, r.name, r.locale, r.timezone, r.status, r.created_at, r.confirmed_at or ""]
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
    """One line per subscriber: address, status, name, since when.

    \b
    Example:
      newsletter subscribers list --status pending
    """
    for n, r in enumerate(_store(root).records(status)):
        if limit is not None and n >= limit:
            break
        click.echo(f"{r.email}\t{r.status}\t{r.name}\t{r.confirmed_at or r.created_at}")


@subscribers.command("show")
@root_option
@click.argument("address")
@json_option
@handle_errors
def show(root: Path, address: str, as_json: bool) -> None:
    """Everything known about one subscriber: status, name, locale, time zone, dates, consent record, and
    whether the suppression list holds the address. Exit status 1 when the store does not know it.

    \b
    Examples:
      newsletter subscribers show reader@example.org
      newsletter subscribers show reader@example.org --json
    """
    import dataclasses

    from ..delivery import open_suppression

    settings = load(root)
    record = _store(root).get(_address(address))
    if record is None:
        raise click.ClickException(f"{address}: not in the subscriber store")
    with open_suppression(settings) as suppression:
        entry = suppression.entry(record.email)
    data = dataclasses.asdict(record)
    data["suppressed"] = entry.describe() if entry is not None else None
    if as_json:
        emit(data)
        return
    for key, value in data.items():
        if key not in ("id", "consent"):
            click.echo(f"{key}: {value if value not in (None, '') else '-'}")
    consent = record.consent
    click.echo(f"consent: {dataclasses.asdict(consent) if consent is not None else '-'}")


@subscribers.command("count")
@root_option
@handle_errors
def count(root: Path) -> None:
    """How many subscribers per status.

    \b
    Example:
      newsletter subscribers count
    """
    counts = _store(root).counts()
    click.echo("  ".join(f"{k} {v}" for k, v in counts.items()) + f"  total {sum(counts.values())}")
