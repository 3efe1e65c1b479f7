"""The `newsletter` command: a thin layer over the library. Each command's docstring is its --help."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import NewsletterError, StoryError


def _echo_err(message: str, *, level: str = "error") -> None:
    colour = {"error": "red", "warning": "yellow"}.get(level, "white")
    click.secho(message, err=True, fg=colour)


def root_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Every command works on a newsletter folder: --root DIR (default: the current directory)."""
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="Newsletter folder holding stories/ and optionally templates/, newsletter.toml, outbox/.",
    )(func)


def date_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--date",
        "day",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        default=None,
        help="Edition date, YYYY-MM-DD (default: the newest edition that has stories).",
    )(func)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Known errors become one clear line and exit 1; nothing else is swallowed."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .build import StoriesInvalid

        try:
            return func(*args, **kwargs)
        except StoriesInvalid as exc:
            for err in exc.errors:
                _echo_err(str(err))
            raise click.ClickException(str(exc)) from None
        except NewsletterError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def load(root: Path, **overrides: Any) -> Any:
    from .config import load_settings

    return load_settings(root, overrides)


def as_date(value: Any) -> date | None:
    return value.date() if value is not None else None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="newsletter")
def cli() -> None:
    """Build and send a daily newsletter from Markdown stories.

    \b
    Quick start (in a folder with stories/):
      newsletter build        # newest edition → outbox/<date>/
      newsletter check        # every problem in stories, templates and the rendered email
    """


@cli.command()
@root_option
@date_option
@click.option("--skip-invalid", is_flag=True, help="Leave out broken stories (with a warning) instead of failing.")
@handle_errors
def build(root: Path, day: Any, skip_invalid: bool) -> None:
    """Build an edition into outbox/<date>/: newsletter.html, .txt, .eml and manifest.json.

    \b
    Example:
      newsletter build --date 2016-12-30
    """
    from .build import build as run_build
    from .build import write_edition

    settings = load(root)
    result = run_build(settings, as_date(day), skip_invalid=skip_invalid)
    for err in result.skipped:
        _echo_err(f"{err} (skipped)", level="warning")
    out = write_edition(result)
    ed, rendered = result.edition, result.rendered
    if ed.more:
        titles = "; ".join(f"{s.path}" for s in ed.more)
        _echo_err(
            f"size budget: moved {len(ed.more)} story(ies) to 'More stories' to keep the HTML under "
            f"{settings.html_budget / 1000:.0f} KB: {titles}",
            level="warning",
        )
    try:
        shown = out.relative_to(Path.cwd())
    except ValueError:
        shown = out
    click.echo(
        f"Built edition {ed.date.isoformat()}: {len(ed.stories)} stories in {len(ed.sections)} section(s), "
        f"HTML {rendered.html_bytes / 1000:.1f} KB of {settings.html_budget / 1000:.0f} KB → {shown}/"
    )


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
    from .build import choose_date
    from .edition import select_edition
    from .errors import EditionError, TemplateError
    from .lint import check_templates, lint_html, lint_stories, lint_text
    from .render import make_environment, render_edition
    from .stories import load_stories

    settings = load(root)
    loaded = load_stories(settings.stories_dir, settings.root, settings.base_url)
    errors: list[str] = [str(e) for e in loaded.errors]
    warnings: list[str] = [str(w) for w in loaded.warnings]
    env = make_environment(settings)
    errors.extend(str(e) for e in check_templates(env, settings.root))
    if not errors and loaded.stories:
        try:
            day_ = choose_date(loaded.stories, settings, as_date(day))
            rendered = render_edition(select_edition(loaded.stories, day_, settings), settings, env)
        except (EditionError, TemplateError) as exc:
            errors.append(str(exc))
        else:
            for p in lint_html(rendered.html, rendered.preheader, settings.html_budget) + lint_text(rendered.text):
                (errors if p.level == "error" else warnings).append(str(p))
            warnings.extend(str(p) for p in lint_stories(rendered.edition.stories))
            if rendered.demoted:
                warnings.append(
                    f"edition {day_}: {len(rendered.demoted)} story(ies) go to 'More stories' to fit the size budget"
                )
    elif not loaded.stories and not errors:
        errors.append(f"{settings.stories_dir}: no stories found")
    for w in warnings:
        _echo_err(f"warning: {w}", level="warning")
    for e in errors:
        _echo_err(e)
    if errors:
        raise click.ClickException(f"{len(errors)} error(s), {len(warnings)} warning(s)")
    click.echo(f"OK: {len(loaded.stories)} stories, {len(warnings)} warning(s)")


# Commands of the later stages live in their own modules (newsletter/commands/) and register
# themselves on `cli` when imported; one line here per module.
_COMMAND_MODULES: tuple[str, ...] = ("schedule", "preview", "intake", "mailing")

for _module in _COMMAND_MODULES:
    importlib.import_module(f"newsletter.commands.{_module}")


def main() -> None:
    try:
        cli(prog_name="newsletter")
    except KeyboardInterrupt:
        _echo_err("interrupted")
        sys.exit(130)


__all__ = ["StoryError", "cli", "main"]
