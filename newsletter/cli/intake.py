"""`newsletter import`: stories from feeds and article pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import cli, echo_err, handle_errors, load

if TYPE_CHECKING:
    from ..intake import ImportReport


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--root, --dry-run and --no-update, accepted before or after the subcommand."""
    func = click.option(
        "--no-update", is_flag=True, help="Leave stories already imported as they are, even if the source changed."
    )(func)
    func = click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")(func)
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Newsletter folder holding stories/ and newsletter.toml  [default: .]",
    )(func)


def _section_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--section", default=None, help="Put every imported story in this section (default: the first category)."
    )(func)


@cli.group(name="import", invoke_without_command=True)
@_options
@click.pass_context
@handle_errors
def import_(ctx: click.Context, root: Path | None, dry_run: bool, no_update: bool) -> None:
    """Import stories from feeds and article pages into stories/<yyyy>/<mm>/<dd>/.

    With no subcommand, imports every [[intake.feeds]] source of newsletter.toml. Importing again
    changes nothing: a story is recognised by its feed GUID or canonical URL, a changed entry updates its
    file (unless --no-update), and unchanged feeds are not downloaded again (ETag / Last-Modified).

    \b
    Examples:
      newsletter import                       # the feeds listed in newsletter.toml
      newsletter import feed https://example.org/rss.xml --section World
      newsletter import page saved-article.html --dry-run
    """
    ctx.obj = {"root": root, "dry_run": dry_run, "no_update": no_update}
    if ctx.invoked_subcommand is not None:
        return
    from ..errors import ConfigError
    from ..intake import import_configured, intake_options

    settings = load(root or Path("."))
    if not intake_options(settings).feeds:
        raise ConfigError(
            'no sources configured: add [[intake.feeds]] with url = "…" to newsletter.toml, '
            "or run `newsletter import feed URL`"
        )
    _finish(import_configured(settings, dry_run=dry_run, update=not no_update))


@import_.command(name="feed")
@click.argument("source")
@_options
@_section_option
@click.pass_obj
@handle_errors
def import_feed(
    obj: dict[str, Any], source: str, root: Path | None, dry_run: bool, no_update: bool, section: str | None
) -> None:
    """Import an RSS, Atom or JSON feed (URL or file): one story file per new entry.

    \b
    Examples:
      newsletter import feed https://example.org/rss.xml
      newsletter import feed saved-feed.xml --section World --dry-run
    """
    from ..intake import import_feed as run

    settings = load(root or obj["root"] or Path("."))
    _finish(
        run(settings, source, section=section, dry_run=dry_run or obj["dry_run"], update=not _no_update(obj, no_update))
    )


@import_.command(name="page")
@click.argument("source")
@_options
@_section_option
@click.option("--url", "canonical", default=None, help="The article's address, when a saved page does not say it.")
@click.option(
    "--published",
    default=None,
    metavar="DATETIME",
    help="Publication time with offset (2024-03-05T07:30:00+01:00), when the page does not give one.",
)
@click.pass_obj
@handle_errors
def import_page(
    obj: dict[str, Any],
    source: str,
    root: Path | None,
    dry_run: bool,
    no_update: bool,
    section: str | None,
    canonical: str | None,
    published: str | None,
) -> None:
    """Import one article page (URL or saved HTML file) as a clean story: the article, nothing around it.

    \b
    Examples:
      newsletter import page https://example.org/2024/03/05/story.html
      newsletter import page saved-article.html --section Syria
    """
    from ..intake import import_page as run
    from ..intake import parse_datetime
    from ..textutil import clean_url

    if canonical is not None:
        try:
            canonical = clean_url(canonical)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--url") from None
    moment: datetime | None = None
    if published is not None:
        moment = parse_datetime(published)
        if moment is None:
            raise click.BadParameter(
                f"{published!r} is not a date and time with an offset, e.g. 2024-03-05T07:30:00+01:00",
                param_hint="--published",
            )
    settings = load(root or obj["root"] or Path("."))
    _finish(
        run(
            settings,
            source,
            section=section,
            canonical=canonical,
            published=moment,
            dry_run=dry_run or obj["dry_run"],
            update=not _no_update(obj, no_update),
        )
    )


def _no_update(obj: dict[str, Any], flag: bool) -> bool:
    return flag or bool(obj["no_update"])


def _finish(report: ImportReport) -> None:
    """Print what was done (or would be), warnings and failures; exit 1 when anything failed."""
    verbs = {
        "new": "would write" if report.dry_run else "new",
        "updated": "would update" if report.dry_run else "updated",
    }
    notes = {"kept": "kept (changed at the source; --no-update)", "deleted": "deleted by hand; not re-imported"}
    for action in report.actions:
        label = verbs.get(action.kind) or action.kind
        note = f"  [{notes[action.kind]}]" if action.kind in notes else ""
        click.echo(f"{label:<13} {action.path}  {action.title}{note}")
    for warning in report.warnings:
        echo_err(f"warning: {warning}", level="warning")
    for line in report.sources:
        click.echo(line)
    for failure in report.failed:
        echo_err(failure)
    if report.dry_run:
        click.echo(f"Dry run: {report.written} new and {report.updated} updated stories would be written; nothing was.")
    if report.failed:
        raise click.ClickException(f"{len(report.failed)} problem(s) while importing; see above")
