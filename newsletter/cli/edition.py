"""`newsletter build` and `newsletter check`: the edition pipeline from the command line."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import NewsletterError
from . import (
    as_date,
    cli,
    date_option,
    echo_err,
    handle_errors,
    load,
    load_newsletters,
    newsletter_option,
    root_option,
)


@cli.command()
@root_option
@date_option
@newsletter_option
@click.option("--skip-invalid", is_flag=True, help="Leave out broken stories (with a warning) instead of failing.")
@click.option("--mjml", is_flag=True, help="Also write newsletter.mjml, the edition's MJML, for MJML's own tools.")
@handle_errors
def build(root: Path, day: Any, newsletter_id: str | None, skip_invalid: bool, mjml: bool) -> None:
    """Build an edition into outbox/<date>/: newsletter.html, .txt, .eml and manifest.json.

    With several [list] languages, one edition per language into outbox/<date>/<lang>/ (a language
    without stories of its own that day is left out, with a warning).

    With several [newsletters.<id>], every newsletter's edition (an on-demand one only when named with
    --newsletter: `newsletter alert` sends those); a newsletter other than the default one builds into
    outbox/<id>/<date>/.

    Their web side goes into site/ too: each edition's page, its stories' pages, the index, feed and
    sitemap (another newsletter's under site/<id>/; a newsletter with public = false stays out).

    \b
    Example:
      newsletter build --date 2016-12-30
      newsletter build --newsletter weekly
      newsletter build --mjml     # also newsletter.mjml, to open in the MJML app or an editor plugin
    """
    from ..edition import StoriesInvalid
    from ..errors import NoStories

    chosen = load_newsletters(root, newsletter_id, scheduled_only=True)
    if len(chosen) == 1:
        _build_newsletter(chosen[0], as_date(day), skip_invalid, mjml)
        return
    failed, empty = [], []
    for settings in chosen:  # one newsletter's trouble does not keep the others from being built
        try:
            _build_newsletter(settings, as_date(day), skip_invalid, mjml)
        except NoStories as exc:  # a weekly on a quiet week, a topic letter without its topic today
            echo_err(f"{settings.newsletter}: not built: {exc}", level="warning")
            empty.append(settings.newsletter)
        except StoriesInvalid as exc:
            for err in exc.errors:
                echo_err(str(err))
            echo_err(f"{settings.newsletter}: {exc}")
            failed.append(settings.newsletter)
        except NewsletterError as exc:
            echo_err(f"{settings.newsletter}: {exc}")
            failed.append(settings.newsletter)
    if failed or len(empty) == len(chosen):
        raise click.ClickException(
            f"{len(failed) + len(empty)} of {len(chosen)} newsletter(s) not built: {', '.join(failed + empty)}"
        )


def _build_newsletter(settings: Any, day: Any, skip_invalid: bool, mjml: bool) -> None:
    """One newsletter's language editions and their web side."""
    from ..edition import build_editions, write_edition
    from ..web import publish_edition, site_dir

    editions = build_editions(settings, day, skip_invalid=skip_invalid)
    for err in editions.builds[0].skipped:
        echo_err(f"{err} (skipped)", level="warning")
    for lang, why in editions.left_out:
        echo_err(f"edition {editions.day} ({lang}) not built: {why}", level="warning")
    for result in editions.builds:
        for note in result.warnings:  # problems of the edition's own stories, repaired
            echo_err(f"warning: {note}", level="warning")
        out = write_edition(result, mjml=mjml)
        ed, rendered = result.edition, result.rendered
        which = f" ({result.language})" if settings.multilingual else ""
        if settings.file_prefix:  # the default newsletter's lines read as they always have
            which = f" of {settings.newsletter}{which}"
        if ed.more:
            titles = "; ".join(f"{s.path}" for s in ed.more)
            echo_err(
                f"size budget{which}: moved {len(ed.more)} story(ies) to 'More stories' to keep the HTML under "
                f"{settings.html_budget / 1000:.0f} KB: {titles}",
                level="warning",
            )
        click.echo(
            f"Built edition {ed.date.isoformat()}{which}: {len(ed.stories)} stories in {len(ed.sections)} section(s), "
            f"HTML {rendered.html_bytes / 1000:.1f} KB of {settings.html_budget / 1000:.0f} KB → {_shown(out)}/"
        )
        if not settings.public:
            continue  # a private newsletter has no web archive
        try:
            site = publish_edition(result.settings, result.manifest, ed.stories)
        except NewsletterError as exc:  # the email is built; its web page can be written later
            echo_err(f"warning: web archive not updated: {exc}; run `newsletter site` once fixed", level="warning")
            continue
        for warning in site.warnings:
            echo_err(f"warning: {warning}", level="warning")
        click.echo(site.summary(_shown(site_dir(settings))))


def _shown(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


@cli.command()
@root_option
@handle_errors
def site(root: Path) -> None:
    """Rebuild the whole web archive in site/ from every edition in outbox/ and the current stories.

    Pages whose content did not change are left untouched.

    \b
    Example:
      newsletter site
    """
    from ..web import rebuild_site, site_dir

    settings = load(root)
    report = rebuild_site(settings)
    for warning in report.warnings:
        echo_err(f"warning: {warning}", level="warning")
    click.echo(report.summary(_shown(site_dir(settings))))


@cli.command()
@root_option
@date_option
@handle_errors
def check(root: Path, day: Any) -> None:
    """Validate every story and template, then lint the rendered edition; list all problems.

    Exit 0 when there are only warnings, 1 when anything is an error.

    \b
    Example:
      newsletter check --date 2016-12-30
    """
    from ..edition import check_newsletter

    settings = load(root)
    with _file_progress(settings.stories_dir) as tick:
        found = check_newsletter(settings, as_date(day), on_file=tick)
    errors, warnings = found.errors, found.warnings
    for w in warnings:
        echo_err(f"warning: {w}", level="warning")
    for e in errors:
        echo_err(e)
    if errors:
        raise click.ClickException(f"{len(errors)} error(s), {len(warnings)} warning(s)")
    click.echo(f"OK: {found.stories} stories, {len(warnings)} warning(s)")


@contextlib.contextmanager
def _file_progress(stories_dir: Path) -> Iterator[Callable[[], None] | None]:
    """A rich progress bar over the story files, on a terminal only (a big archive takes a while)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..edition import walk_stories

    total = len(walk_stories(stories_dir))
    with Progress(
        TextColumn("checking stories"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    ) as bar:
        task = bar.add_task("stories", total=total)
        yield lambda: bar.advance(task)
