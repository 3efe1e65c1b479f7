"""`newsletter db upgrade`, `db check`, `db migrate-from-sqlite`, `db backup`, `db restore`: where the records live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import cli, handle_errors, load, root_option


def _postgres(settings: Any) -> Any:
    from ..storage import Postgres

    if not settings.database_url:
        raise click.ClickException(
            "database_url is not set (newsletter.toml or NEWSLETTER_DATABASE_URL): the records are SQLite files, "
            "which need no upgrade"
        )
    return Postgres(settings.database_url)


@cli.group()
def db() -> None:
    """The record stores: checking them for damage, backups and restores (SQLite files and PostgreSQL);
    for the PostgreSQL database named by `database_url`, schema upgrades and moving SQLite records into it.

    \b
    Examples:
      newsletter db backup /var/backups/newsletter/$(date +%F)
      NEWSLETTER_DATABASE_URL=postgresql://news@db.example.org/news newsletter db upgrade
    """


@db.command()
@root_option
@handle_errors
def upgrade(root: Path) -> None:
    """Bring the database's schema up to this version of the newsletter (safe to run again, or at once).

    \b
    Example:
      newsletter db upgrade
    """
    from ..storage import head_version

    pg = _postgres(load(root))
    applied = pg.upgrade()
    for name in applied:
        click.echo(f"applied {name}")
    click.echo(f"{pg.describe()}: schema version {head_version()}" + ("" if applied else " (already current)"))


@db.command()
@root_option
@handle_errors
def check(root: Path) -> None:
    """Check every record store for damage and say what was found; exit 1 when one is damaged.

    SQLite files (subscribers, suppression list, ledgers, scheduler runs, bounce records, the editors'
    desk) get SQLite's integrity check; with `database_url` set, the PostgreSQL database gets its schema
    version checked, every index and constraint the migrations make looked for (a missing one is named
    with the statement that makes it), and every table read through. A store that is damaged is refused
    by every command that opens it: restore it from a backup.

    \b
    Example:
      newsletter db check
    """
    from ..storage import check_stores

    settings = load(root)
    files = [] if settings.database_url else _store_files(settings)
    findings = check_stores(files, settings.database_url)
    for finding in findings:
        click.echo(finding.line, err=not finding.ok)
    bad = [f for f in findings if not f.ok]
    if bad:
        raise click.ClickException(f"{len(bad)} of {len(findings)} store(s) damaged")
    click.echo(f"{len(findings)} store(s) checked: no damage found")


def _store_files(settings: Any) -> list[tuple[str, Path]]:
    """Every SQLite records file of the newsletter, whether it exists yet or not (the ledgers that do)."""
    from ..bounces import state_path
    from ..delivery import ledger_dir, parse_ledger_key, suppression_path
    from ..editorial import desk_path
    from ..schedule import store_path

    files = [
        ("the reader base", suppression_path(settings)),  # readers, history and the suppression list
        ("the scheduler's runs", store_path(settings)),
        ("the bounce records", state_path(settings)),
        ("the editors' desk", desk_path(settings)),
    ]
    zones = store_path(settings).parent / "schedule-zones"
    files += [("the scheduler's runs", p) for p in sorted(zones.glob("*.sqlite")) if zones.is_dir()]
    folder = ledger_dir(settings)
    for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
        if parse_ledger_key(path.stem) is not None:
            files.append((f"the ledger of {path.stem}", path))
    return files


@db.command("migrate-from-sqlite")
@root_option
@handle_errors
def migrate_from_sqlite(root: Path) -> None:
    """Copy the SQLite records under data/ (subscribers, suppression list, ledgers, scheduler runs, bounce
    records, the editors' desk) into the database.

    Every file is copied in one transaction and counted on both sides; the files themselves are only
    read. An edition the database already has is left alone, so running it twice does no harm.

    \b
    Example:
      newsletter db upgrade && newsletter db migrate-from-sqlite
    """
    from ..bounces import state_path
    from ..delivery import ledger_dir, parse_ledger_key
    from ..editorial import desk_path
    from ..schedule import store_path
    from ..storage import migrate_from_sqlite as move
    from ..storage import upgrade_reader_base_file

    settings = load(root)
    pg = _postgres(settings)
    ledgers = []
    folder = ledger_dir(settings)
    for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
        if parse_ledger_key(path.stem) is not None:  # not a backup someone made, a dry run's copy
            ledgers.append((path.stem, path))
    # The reader base first brought up to date: an older store and suppression file become one file.
    subscribers = upgrade_reader_base_file(settings)
    moved = move(
        pg,
        suppression=subscribers,
        ledgers=ledgers,
        schedule=store_path(settings),
        subscribers=subscribers,
        bounces=state_path(settings),
        zones=_zone_files(settings),
        desk=desk_path(settings),
    )
    for line in moved.skipped:
        click.echo(f"left alone: {line}")
    for table, n in sorted(moved.rows.items()):
        click.echo(f"{table}: {n} row(s) copied")
    click.echo(f"done: {sum(moved.rows.values())} row(s) in {pg.describe()}")


def _zone_files(settings: Any) -> list[tuple[str, Path]]:
    """(IANA zone, file) of each per-time-zone runs file (`data/schedule-zones/America_New_York.sqlite`)."""
    from zoneinfo import available_timezones

    from ..schedule import zone_store_path

    folder = zone_store_path(settings, "x").parent
    by_file = {zone_store_path(settings, name).name: name for name in available_timezones()}
    found = sorted(folder.glob("*.sqlite")) if folder.is_dir() else []
    return [(by_file[path.name], path) for path in found if path.name in by_file]


def _sqlite_stores(settings: Any) -> list[Path]:
    """Every SQLite file the newsletter keeps: all of data/, and the stores configured elsewhere."""
    from ..bounces import state_path
    from ..delivery import ledger_dir, suppression_path
    from ..schedule import store_path
    from ..storage import sqlite_files, store_location

    configured = [suppression_path(settings), store_path(settings), state_path(settings)]
    configured.append(store_location(settings.root, settings.section("subscribers").get("path")))
    folder = ledger_dir(settings)
    configured.extend(folder.glob("*.sqlite") if folder.is_dir() else [])
    return sqlite_files(settings.root / "data", configured)


@db.command("backup")
@root_option
@click.argument("dest", type=click.Path(path_type=Path))
@handle_errors
def backup_command(root: Path, dest: Path) -> None:
    """Copy every record store into the new folder DEST, consistently, while the services run.

    SQLite files are copied with SQLite's online backup API (a send going on is not stopped) and each
    copy is checked; with database_url, `pg_dump` takes one snapshot of the database (PGPASSWORD from
    the environment). DEST appears only once the backup is whole.

    \b
    Example:
      newsletter db backup /var/backups/newsletter/$(date +%F-%H%M)
    """
    from ..storage import backup

    settings = load(root)
    report = backup(settings.root, _sqlite_stores(settings), dest, database_url=settings.database_url)
    for entry in report.files:
        click.echo(f"copied {entry['target']} ({entry['bytes']} bytes)")
    click.echo(f"backup in {dest}: {report.summary()}")


@db.command("restore")
@root_option
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--check", "check_only", is_flag=True, help="Only check the backup; change nothing.")
@handle_errors
def restore_command(root: Path, src: Path, check_only: bool) -> None:
    """Put back a backup made by `newsletter db backup`, after checking all of it. Stop the services first.

    Every file's checksum and SQLite's integrity check (and `pg_restore --list` for the database) must
    pass before anything changes. Then each SQLite file is replaced whole and the database restored in
    one transaction (`pg_restore --clean`). A resumed send then sends only what the backup had pending.

    \b
    Examples:
      newsletter db restore --check /var/backups/newsletter/2026-12-06-0500
      newsletter db restore /var/backups/newsletter/2026-12-06-0500
    """
    from ..storage import restore, verify

    settings = load(root)
    if check_only:
        manifest = verify(src, database_url=settings.database_url)
        click.echo(f"{src}: backup of {manifest['created']} is whole: {len(manifest['files'])} SQLite file(s)")
        return
    report = restore(src, settings.root, _sqlite_stores(settings), database_url=settings.database_url)
    for entry in report.files:
        click.echo(f"restored {entry['target']}")
    for line in report.left_alone:
        click.echo(f"left alone (not in the backup): {line}")
    click.echo(f"restored from {src}: {report.summary()}")
