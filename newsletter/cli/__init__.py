"""The `newsletter` command: a thin layer over the library. Each command's docstring is its --help.

In:  command-line arguments. Out: calls into the subsystems' public faces, one line per outcome, an exit code.
Nothing imports the CLI. Public face: `cli` (the click group) and `main` (the console script).

    edition.py   build, check          intake.py    import
    mailing.py   send, status, unsubscribe, worker     bounces.py   bounces
    database.py  db upgrade, db check, db migrate-from-sqlite, db backup, db restore
    output.py    --json and the exit codes shared by status, send, bounces, subscribers show
    schedule.py  schedule              preview.py   preview
    web.py       serve, subscribers    (edition.py also has `site`)
    deliverability.py  dkim keygen, doctor
    desk.py      desk add-user, desk users, desk audit (the editors' desk)
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import NewsletterError, StoryError


def echo_err(message: str, *, level: str = "error") -> None:
    """One line on stderr, red for an error, yellow for a warning (the commands' way of saying what went wrong)."""
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


def newsletter_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--newsletter ID: one of the configuration's newsletters (default: every one, or the only one)."""
    return click.option(
        "--newsletter",
        "newsletter_id",
        metavar="ID",
        default=None,
        help="One newsletter of [newsletters.<id>] (default: every newsletter, or the only one).",
    )(func)


def metrics_port_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--metrics-port PORT: answer Prometheus scrapes on 127.0.0.1:PORT/metrics while the command runs."""
    return click.option(
        "--metrics-port",
        type=click.IntRange(1, 65535),
        default=None,
        help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics (loopback only) while running.",
    )(func)


def processes_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--processes N: sender processes sharing a mailing (send and worker; delivery/processes.py)."""
    return click.option(
        "--processes",
        type=click.IntRange(1, 256),
        help="Sender processes sharing the mailing (default: [mailing] processes, else one per core for SMTP).",
    )(func)


def serve_metrics(port: int) -> None:
    from .. import metrics

    try:
        metrics.serve_metrics(port)
    except OSError as exc:
        raise click.ClickException(f"--metrics-port {port}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C or SIGTERM (the run finishes the messages in flight and returns);
    a second one stops at once (KeyboardInterrupt; the ledger is still consistent). The handlers before
    come back afterwards. Outside the main thread (a test's runner) no handler is installed."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(_signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        echo_err("stopping after the messages in flight (again to stop at once)…", level="warning")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Known errors become one clear line and exit 1; nothing else is swallowed. A record store's trouble
    arrives as a `StorageError` (a `NewsletterError`) already naming the store and its file or database."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..edition import StoriesInvalid

        try:
            return func(*args, **kwargs)
        except StoriesInvalid as exc:
            for err in exc.errors:
                echo_err(str(err))
            raise click.ClickException(str(exc)) from None
        except NewsletterError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # permissions, a full disk, a missing folder: what and where, on one line
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None

    return wrapper


def load(root: Path, **overrides: Any) -> Any:
    """The settings of the newsletter folder `root`, and this process's metrics and logs set up by them."""
    from ..config import load_settings
    from ..letters import chosen_settings

    settings = load_settings(root, overrides)
    chosen_settings(settings, None)  # every [newsletters.<id>] table read now: a bad one stops any command
    _observe(settings)
    return settings


def _observe(settings: Any) -> None:
    """Metrics into the shared folder; log lines as `[logging] format` says unless --log-format did."""
    from .. import logs, metrics
    from ..errors import ConfigError
    from ..storage import this_owner

    metrics.setup(settings)
    logs.set_defaults(newsletter=settings.list.id, sender=this_owner())
    configured = settings.section("logging").get("format", "")
    if configured not in ("", *logs.FORMATS):
        where = settings.config_file or "newsletter.toml"
        raise ConfigError(f"{where}: [logging] format must be one of {', '.join(logs.FORMATS)}, got {configured!r}")
    chosen = logs.chosen_format(configured)
    logs.choose(chosen)
    if chosen == "json":  # here, not when the options are parsed: `--help` sets nothing up
        logs.configure_json()


def load_newsletters(root: Path, wanted: str | None, *, scheduled_only: bool = False) -> list[Any]:
    """The settings of newsletter `wanted`, or of every newsletter (`letters.chosen_settings`)."""
    from ..letters import chosen_settings

    return chosen_settings(load(root), wanted, scheduled_only=scheduled_only)


def each_newsletter(chosen: list[Any], run: Callable[[Any], None]) -> None:
    """`run` (which may exit with a status) for each newsletter's settings; with several, each one's
    lines after a line naming it (on stderr, so --json stays one object a line), every newsletter run
    whatever another did, and the worst status at the end. A newsletter with nothing to do says so."""
    from ..errors import NoStories

    if len(chosen) == 1:
        run(chosen[0])
        return
    codes = []
    for settings in chosen:
        click.echo(f"Newsletter {settings.newsletter}:", err=True)
        try:
            run(settings)
            codes.append(0)
        except SystemExit as done:
            codes.append(done.code if isinstance(done.code, int) else 1)
        except NoStories as exc:
            echo_err(f"{settings.newsletter}: nothing to send: {exc}", level="warning")
        except NewsletterError as exc:
            echo_err(f"{settings.newsletter}: {exc}")
            codes.append(1)
    sys.exit(max(codes, default=0))


def as_date(value: Any) -> date | None:
    return value.date() if value is not None else None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    envvar="NEWSLETTER_LOG_FORMAT",
    help="Log lines for people (text, the default) or one JSON object per line for a log pipeline.",
)
def cli(log_format: str | None) -> None:
    """Build and send a daily newsletter from Markdown stories.

    \b
    Quick start (in a folder with stories/):
      newsletter build        # newest edition → outbox/<date>/
      newsletter check        # every problem in stories, templates and the rendered email
      newsletter --log-format json schedule   # logs as JSON lines
    """
    from .. import logs

    logs.choose(log_format)  # applied by `load`, once the command runs


# Each command family lives in its own module and registers itself on `cli` when imported; one name
# here per module.
_COMMAND_MODULES: tuple[str, ...] = (
    "edition",
    "schedule",
    "preview",
    "intake",
    "mailing",
    "bounces",
    "database",
    "web",
    "readers",
    "deliverability",
    "desk",
    "alerts",
)

for _module in _COMMAND_MODULES:
    importlib.import_module(f"newsletter.cli.{_module}")


def main() -> None:
    try:
        cli(prog_name="newsletter")
    except KeyboardInterrupt:
        echo_err("interrupted")
        sys.exit(130)


__all__ = ["StoryError", "cli", "main"]
