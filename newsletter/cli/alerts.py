"""`newsletter alert`: one story, sent now to a newsletter's readers (breaking news)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from . import cli, echo_err, handle_errors, load, root_option, stopping_on_signals
from .output import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK


@cli.command()
@root_option
@click.option("--newsletter", "newsletter_id", metavar="ID", required=True, help="The newsletter of the alert.")
@click.argument("story_file", metavar="STORY", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--subscribers", metavar="FILE", help="CSV (email,name,locale) or SQLite file[#table].")
@click.option("--smtp", metavar="URL", help="smtp://host:port, smtp+starttls://… or smtps://… (default: [smtp] url).")
@click.option("--dry-run", is_flag=True, help="Render every message, send nothing, report the counts.")
@handle_errors
def alert(
    root: Path, newsletter_id: str, story_file: Path, subscribers: str | None, smtp: str | None, dry_run: bool
) -> None:
    """Send one story now as an alert of a newsletter: a one-story edition laid out by the newsletter's
    alert_template (default alert.mjml.j2), to that newsletter's readers.

    It goes through the same ledger as every edition: each reader gets it exactly once, and a rerun after
    a crash or a stop resumes where it was. A story already alerted in full is never sent again (the
    rerun says so and sends nothing); an edited story is refused once its alert has started.

    \b
    Example:
      newsletter alert --newsletter breaking stories/2016/12/30/syrian-regime-emboldened.md
    """
    from ..delivery import ledger_report, send_edition
    from ..edition import edition_date_for
    from ..letters import alert_settings, find_newsletter

    settings = load(root)
    letter = find_newsletter(settings, newsletter_id)
    story = _read_story(settings, story_file)
    alerting = alert_settings(settings, letter, story.id, story.title, _alert_template(settings, letter))
    alerting = alerting.for_language(_language(alerting, story.lang))
    day = edition_date_for(story.published, alerting)
    done = ledger_report(alerting, day)
    if done is not None and done.sent and not done.pending and not dry_run:
        click.echo(f"{story.path}: already alerted to {done.sent} reader(s) of {letter.id}; nothing sent")
        return
    with stopping_on_signals() as stop:
        report = send_edition(alerting, day, subscribers=subscribers, smtp=smtp, dry_run=dry_run, stop=stop)
    for warning in report.warnings:
        echo_err(f"warning: {warning}", level="warning")
    click.echo(f"alert {letter.id}: {story.title}: {report.summary()}")
    sys.exit(EXIT_INCOMPLETE if report.pending or report.stopped else EXIT_FAILED if report.failed else EXIT_OK)


def _read_story(settings: Any, path: Path) -> Any:
    from ..edition import read_story
    from ..errors import StoryError

    full = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not full.is_relative_to(settings.stories_dir):
        raise click.ClickException(f"{path}: not a story under {settings.stories_dir}")
    story, errors, _warnings = read_story(full, settings.root, settings.stories_dir, settings.base_url)
    if story is None or errors:
        first = errors[0] if errors else StoryError(str(path), None, "cannot be read")
        raise click.ClickException(str(first))
    return story


def _alert_template(settings: Any, letter: Any) -> Path:
    """The alert template's file, looked up where the newsletter's templates are."""
    from ..edition import default_templates_dir

    for folder in (*([letter.templates] if letter.templates else []), settings.templates_dir, default_templates_dir()):
        if (folder / letter.alert_template).is_file():
            return Path(folder / letter.alert_template)
    raise click.ClickException(f"[newsletters.{letter.id}] alert_template: no template {letter.alert_template!r}")


def _language(settings: Any, tag: str | None) -> str:
    from ..config import edition_language

    return edition_language(tag, settings.languages)
