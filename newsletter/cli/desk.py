"""`newsletter desk …`: the editors' desk's accounts and audit log (the desk itself: `serve --desk`)."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from . import cli, handle_errors, load, root_option


@cli.group()
def desk() -> None:
    """The editors' desk (`newsletter serve --desk`, then /desk/): staff accounts and the audit log.

    \b
    Examples:
      newsletter desk add-user ann --role admin        # asks for the password
      printf '%s\\n' "$PASSWORD" | newsletter desk add-user bob --role editor
      newsletter desk users
      newsletter desk audit --export --format jsonl > audit.jsonl
    """


def _read_password() -> str:
    """The password from standard input: asked twice at a terminal, else the first line of the input."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise click.ClickException("the two passwords differ; nothing was changed")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@desk.command("add-user")
@root_option
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["editor", "admin"]),
    required=True,
    help="editor: arrange and approve; admin: also users and settings.",
)
@handle_errors
def add_user(root: Path, name: str, role: str) -> None:
    """Create a desk account (or give an existing one this role and a new password).

    The password is read from standard input (asked twice at a terminal): there is no default, and an
    empty or short one ([desk] min_password, default 12 characters) is refused. It is stored only as an
    Argon2id hash; the account's sessions end when its password changes.

    \b
    Example:
      newsletter desk add-user ann --role admin
    """
    from ..editorial import open_audit
    from ..web import DESK, AccountError, open_users

    settings = load(root)
    minimum = settings.options(DESK).min_password
    password = _read_password()
    try:
        with open_users(settings) as users:
            new = users.add(name, role, password, minimum=minimum)
    except AccountError as exc:
        raise click.ClickException(f"{name[:64]}: {exc}") from None
    clean = name.strip().lower()
    if not new:
        from ..web import end_sessions

        end_sessions(settings, clean)
    with open_audit(settings) as audit:
        audit.record(
            _actor(), "user.add" if new else "user.password", clean, {"role": role}, newsletter=settings.list.id
        )
    click.echo(f"{'added' if new else 'updated'} {clean} ({role})")


@desk.command("users")
@root_option
@handle_errors
def list_users(root: Path) -> None:
    """List the desk's accounts: name, role, state, created.

    \b
    Example:
      newsletter desk users
    """
    from ..web import open_users

    with open_users(load(root)) as users:
        found = users.users()
    if not found:
        click.echo("no desk users yet; add one with `newsletter desk add-user NAME --role admin`", err=True)
    for user in found:
        state = "active" if user.active else "disabled"
        sso = "" if user.has_password else " (single sign-on only)"
        click.echo(f"{user.name}\t{user.role}\t{state}\t{user.created_at}{sso}")


@desk.command("audit")
@root_option
@click.option("--export", "export", is_flag=True, help="Every entry, oldest first, for another tool.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--since", default="", help="Only entries at or after this ISO date or time (UTC), e.g. 2026-12-01.")
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="Without --export: how many of the newest.",
)
@handle_errors
def audit(root: Path, export: bool, fmt: str, since: str, limit: int) -> None:
    """Show the desk's audit log (who did what, when), or export all of it as CSV or JSON lines.

    \b
    Examples:
      newsletter desk audit
      newsletter desk audit --export > audit.csv
      newsletter desk audit --export --format jsonl --since 2026-12-01
    """
    from ..editorial import export_entries, open_audit

    settings = load(root)
    with open_audit(settings) as log:
        if export:
            export_entries(log.walk(since), sys.stdout, fmt)
            return
        entries = [e for e in log.entries(limit=limit) if e.at >= since]
    for e in reversed(entries):
        click.echo(f"{e.at}\t{e.actor}\t{e.action}\t{e.target}\t{e.detail}")
