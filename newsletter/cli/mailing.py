"""`newsletter send`, `newsletter status`, `newsletter unsubscribe`: the mailing stage on the command line."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from .. import logs
from . import (
    as_date,
    cli,
    date_option,
    each_newsletter,
    echo_err,
    handle_errors,
    load,
    load_newsletters,
    metrics_port_option,
    newsletter_option,
    processes_option,
    root_option,
    serve_metrics,
    stopping_on_signals,
)
from .editorial import approval_lines
from .output import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_NOT_STARTED,
    EXIT_OK,
    emit_and_exit,
    json_option,
    ledger_status,
    status_code,
)
from .rates import day_health, edition_health
from .sent import print_sent


@cli.command()
@root_option
@date_option
@click.option("--subscribers", "subscribers", metavar="FILE", help="CSV (email,name,locale) or SQLite file[#table].")
@click.option("--smtp", metavar="URL", help="smtp://host:port, smtp+starttls://… or smtps://… (default: [smtp] url).")
@click.option("--connections", type=click.IntRange(1, 64), help="SMTP connections at once (default: [smtp]).")
@processes_option
@click.option("--rate", type=click.FloatRange(0), help="At most this many messages per second (0: no limit).")
@click.option("--dry-run", is_flag=True, help="Render every message, send nothing, report the counts.")
@click.option("--limit", type=click.IntRange(0), help="Send to the first N pending subscribers only.")
@click.option("--to", "to", metavar="ADDR", help="Send one test copy to ADDR (outside the ledger) and stop.")
@click.option("--lang", "language", metavar="LANG", help="Only this language edition (with --to: which one to send).")
@click.option("--retry-failed", is_flag=True, help="Put the recipients recorded as failed back in the queue first.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--resume", is_flag=True, help="Go on with a mailing the circuit breaker paused.")
@newsletter_option
@json_option
@handle_errors
def send(
    root: Path,
    day: Any,
    subscribers: str | None,
    smtp: str | None,
    connections: int | None,
    processes: int | None,
    rate: float | None,
    dry_run: bool,
    limit: int | None,
    to: str | None,
    language: str | None,
    retry_failed: bool,
    progress: bool | None,
    resume: bool,
    newsletter_id: str | None,
    as_json: bool,
) -> None:
    """Send an edition: one personalized message per subscriber, each recorded in the edition's ledger.

    With several [list] languages, each reader gets the edition of their locale (fr-CA → fr; unknown →
    the first language), each edition with its own ledger. With several [newsletters.<id>], every
    scheduled newsletter's edition, or --newsletter ID's, each with its own ledgers.

    Without --smtp (or [smtp] url) the messages go to outbox/<date>/mail/. A rerun resumes: who got the
    edition never gets it again (whichever way it went: outbox or SMTP); transient failures are retried,
    permanent ones (5xx) only with --retry-failed, once the relay or the address is fixed.
    NEWSLETTER_UNSUBSCRIBE_SECRET must be set (it signs the unsubscribe links); the SMTP password comes
    from NEWSLETTER_SMTP_PASSWORD.

    With [dkim] configured every message is signed. A circuit breaker pauses the mailing when the
    replies say the domain is being hurt ([mailing] breaker_*: too many hard bounces among the first
    messages, policy refusals in a row); it stays paused until `send --resume`.

    Exit status: 0 everything went out, 1 error (nothing lost; rerun) or paused, 3 some addresses
    refused permanently, 4 some still pending (rerun to retry them). --json prints the counts as one
    object.

    \b
    Examples:
      newsletter send --date 2016-12-30 --subscribers subscribers.csv --smtp smtp://127.0.0.1:8025
      newsletter send --date 2016-12-30 --subscribers subscribers.csv --dry-run
      newsletter send --date 2016-12-30 --to me@example.org
      newsletter send --date 2016-12-30 --smtp smtp://127.0.0.1:8025 --retry-failed
      newsletter send --date 2016-12-30 --resume
      newsletter send --date 2016-12-30 --newsletter weekly --subscribers weekly.csv
    """
    from ..delivery import send_languages

    def one(settings: Any) -> None:
        with stopping_on_signals() as stop:
            result = send_languages(
                settings,
                as_date(day),
                subscribers=subscribers,
                language=language,
                dry_run=dry_run,
                limit=limit,
                to=to,
                stop=stop,
                progress=progress,
                smtp=smtp,
                connections=connections,
                processes=processes,
                rate=rate,
                retry_failed=retry_failed,
                resume=resume,
            )
        print_sent(result, as_json)

    chosen = load_newsletters(root, newsletter_id, scheduled_only=True)
    if newsletter_id is None:  # a weekly goes out on its day only, unless asked for by name
        chosen = [one for one in chosen if _due(one, as_date(day))]
        if subscribers is not None:
            chosen = _for_the_list(chosen, subscribers)
    each_newsletter(chosen, one)


def _for_the_list(chosen: list[Any], subscribers: Any) -> list[Any]:
    """A list file is one newsletter's readers: without --newsletter it goes to the default newsletter
    only, never to every newsletter of the day (a weekly must not reach the daily's list by accident)."""
    from ..config import default_newsletter_id

    if len(chosen) < 2:
        return chosen
    default = [one for one in chosen if one.newsletter == default_newsletter_id(one)]
    for other in chosen:
        if other not in default:
            echo_err(
                f"{other.newsletter}: skipped: {subscribers} is one newsletter's list; "
                f"send it to this one with --newsletter {other.newsletter}",
                level="warning",
            )
    return default


def _due(settings: Any, day: Any) -> bool:
    from datetime import datetime

    when = day or datetime.now(settings.timezone).date()
    if settings.weekday is None or when.weekday() == settings.weekday:
        return True
    echo_err(f"{settings.newsletter}: not due on {when} (a weekly, sent on its day); skipped", level="warning")
    return False


@cli.command()
@root_option
@date_option
@click.option("--failed", "show_failed", is_flag=True, help="List the permanent failures with the server's reply.")
@click.option(
    "--check", "check_morning", is_flag=True, help="For monitoring: exit 0 if this morning's edition went out on time."
)
@newsletter_option
@json_option
@handle_errors
def status(
    root: Path, day: Any, show_failed: bool, check_morning: bool, newsletter_id: str | None, as_json: bool
) -> None:
    """Show where sending an edition stands: the ledger's counts (sent, failed, skipped, pending).

    Without --date: the last scheduled mornings (date, outcome, counts, stories left out), then the
    newest edition. Exit status with --date: 0 complete, 3 complete with permanent failures, 4
    incomplete, 5 not started. --check (for Nagios, cron or a systemd timer): 0 when the latest
    scheduled morning's edition was built or sent by its time plus the grace period (or that time
    has not passed yet), 1 when it failed or is late, or a mailing of the last week is paused by the
    circuit breaker, 3 (UNKNOWN) when the scheduler never ran here — one line saying which. Each
    edition's line is followed by its hard-bounce and complaint rates beside the limits mailbox
    providers publish.

    With several [list] languages, one line per language edition and the total. With several
    [newsletters.<id>], each scheduled newsletter's in turn, or --newsletter ID's.
    With PostgreSQL, one line per sender too: its run's status, what it recorded, the rows it holds.
    --json prints the same as one object (with `exit_code`), for scripts and dashboards.

    \b
    Examples:
      newsletter status --date 2016-12-30
      newsletter status --check
      newsletter status --date 2016-12-30 --json
      newsletter status --newsletter weekly
    """
    chosen = load_newsletters(root, newsletter_id, scheduled_only=True)
    each_newsletter(chosen, lambda settings: _status_of(settings, day, show_failed, check_morning, as_json))


def _status_of(settings: Any, day: Any, show_failed: bool, check_morning: bool, as_json: bool) -> None:
    """`status` for one newsletter: exits with its status."""
    from ..delivery import language_status, ledger_path, ledger_report
    from ..edition import read_window

    if check_morning:
        from .morning_check import check_line

        code, line = check_line(settings)
        if as_json:
            emit_and_exit({"ok": code == 0, "code": code, "message": line}, code)
        click.echo(line)
        sys.exit(code)
    runs: list[str] = []
    if day is None:
        from .morning_check import recent_runs

        runs = list(recent_runs(settings))
        for line in [] if as_json else runs:
            click.echo(line)
    the_day = as_date(day) or read_window(settings, None)[1]  # the newest edition, via the story index
    for line in [] if as_json else approval_lines(settings, the_day):  # approval required: waiting, by whom
        click.echo(line)
    if settings.multilingual:
        _language_status(settings, the_day, language_status(settings, the_day), show_failed, as_json, runs)
        return
    report = ledger_report(settings, the_day)
    if as_json:
        _status_json(the_day, report, show_failed, runs)
    if report is None or report.total == 0:
        if report is not None:
            where = "nobody enrolled"
        elif settings.database_url:
            where = "nothing in the database"
        else:
            where = f"no ledger at {ledger_path(settings, the_day)}"
        click.echo(f"Edition {the_day}: not sent yet ({where})")
        click.echo("Status: not started")
        sys.exit(EXIT_NOT_STARTED)
    click.echo(
        f"Edition {the_day}: {report.total} recipient(s) — sent {report.sent}, failed {report.failed}, "
        f"skipped {report.skipped}, pending {report.pending}; retried {report.retried}"
    )
    for line in report.warnings:
        click.echo(line)
    edition_health(settings, the_day, report.paused)
    for s in report.senders:  # several senders share a mailing (PostgreSQL)
        click.echo(
            f"  sender {s['sender']}: {s['status']}, sent {s['sent']}, failed {s['failed']}, skipped {s['skipped']}"
            + (f", holding {s['holding']}" if s["holding"] else "")
        )
    if show_failed:
        for line in report.failures:
            click.echo(f"  failed: {line}")
    state = "complete" if report.ok else ("complete, with failures" if report.complete else "incomplete")
    click.echo(f"Status: {state}" + (", paused" if report.paused else ""))
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED if report.complete else EXIT_INCOMPLETE)


def _status_json(day: Any, report: Any, show_failed: bool, runs: list[str]) -> None:
    """`status --json` for one language edition; exits like the text."""
    data: dict[str, Any] = {"edition": day, "recent_runs": runs}
    if report is None or report.total == 0:
        emit_and_exit({**data, "status": "not started"}, EXIT_NOT_STARTED)
    data.update(ledger_status(report, failures=show_failed), edition=day)
    emit_and_exit(data, status_code(report))


def _language_status(
    settings: Any,
    day: Any,
    reports: dict[str, Any],
    show_failed: bool,
    as_json: bool = False,
    runs: list[str] | None = None,
) -> None:
    """One line per language edition and the total; exits like the one-language status. A language whose
    window has stories of its own but no ledger has not been sent: the mailing is incomplete."""
    from ..edition import languages_present, read_window

    loaded, _ = read_window(settings, day)
    due, _ = languages_present(settings, day, loaded.stories)
    if as_json:
        _languages_json(day, reports, due, show_failed, runs or [])
    totals = dict.fromkeys(("total", "sent", "failed", "skipped", "pending"), 0)
    complete = True
    for lang, report in reports.items():
        if report is None or report.total == 0:
            if lang in due:
                complete = False
                click.echo(f"Edition {day} ({lang}): not sent yet")
            else:
                click.echo(f"Edition {day} ({lang}): no stories of its own, nothing to send")
            continue
        click.echo(
            f"Edition {day} ({lang}): {report.total} recipient(s) — sent {report.sent}, failed {report.failed}, "
            f"skipped {report.skipped}, pending {report.pending}; retried {report.retried}"
        )
        for key in totals:
            totals[key] += getattr(report, key)
        complete = complete and report.complete
        edition_health(settings.for_language(lang), day, report.paused, one_of_several=True)
        if show_failed:
            for line in report.failures:
                click.echo(f"  failed: {line}")
    if totals["total"] == 0:
        click.echo(f"Edition {day}: not sent yet in any language")
        click.echo("Status: not started")
        sys.exit(EXIT_NOT_STARTED)
    click.echo(
        f"Edition {day} (all languages): {totals['total']} recipient(s) — sent {totals['sent']}, "
        f"failed {totals['failed']}, skipped {totals['skipped']}, pending {totals['pending']}"
    )
    day_health(settings, day)
    failed = bool(totals["failed"])
    state = "complete" if complete and not failed else ("complete, with failures" if complete else "incomplete")
    click.echo(f"Status: {state}")
    sys.exit(EXIT_OK if complete and not failed else EXIT_FAILED if complete else EXIT_INCOMPLETE)


@cli.command()
@root_option
@click.option("--verify", "token", metavar="TOKEN", help="Check an unsubscribe token (or URL) and print its address.")
@click.option("--add", "address", metavar="ADDR", help="Put ADDR on the suppression list by hand.")
@click.option(
    "--reason",
    type=click.Choice(["unsubscribed", "bounced", "complained", "manual"]),
    default="manual",
    show_default=True,
    help="Why, with --add.",
)
@click.option("--check", "check_address", metavar="ADDR", help="Tell whether ADDR is on the suppression list.")
@handle_errors
def unsubscribe(root: Path, token: str | None, address: str | None, reason: str, check_address: str | None) -> None:
    """Unsubscribe tokens and the suppression list (in the reader base, data/subscribers.sqlite, or the
    database). `--add` is the operator's unsubscribe: the reader's record and history say so too.

    \b
    Examples:
      newsletter unsubscribe --verify 'https://newsletter.example.org/u/YW5u….k3Jd…'
      newsletter unsubscribe --add reader@example.org --reason complained
      newsletter unsubscribe --check reader@example.org
    """
    from ..delivery import open_suppression, secret_from_env, verify_token

    settings = load(root)
    if not (token or address or check_address):
        raise click.UsageError("give --verify TOKEN, --add ADDR or --check ADDR")
    if token:
        value = token.strip()
        if value.startswith(settings.list.unsubscribe_url):
            value = value[len(settings.list.unsubscribe_url) :]
        value = value.rsplit("/", 1)[-1]
        found = verify_token(secret_from_env(), settings.list.id, value)
        click.echo(f"valid: unsubscribes {found} from {settings.list.id}")
    if address or check_address:
        with open_suppression(settings) as suppression:
            if address:
                from ..delivery import check_address as validate

                try:
                    normal = validate(address)
                except ValueError as exc:
                    raise click.ClickException(f"--add: {exc}") from None
                added = suppression.add(normal, reason, "command line", via="operator")
                click.echo(f"{normal}: {'added to' if added else 'already on'} the suppression list")
            if check_address:
                entry = suppression.entry(check_address)
                if entry is None:
                    click.echo(f"{check_address}: not suppressed")
                else:
                    click.echo(f"{check_address}: suppressed ({entry.describe()})")


@cli.command()
@root_option
@click.option("--smtp", metavar="URL", help="smtp://host:port, smtp+starttls://… or smtps://… (default: [smtp] url).")
@click.option("--connections", type=click.IntRange(1, 64), help="SMTP connections at once (default: [smtp]).")
@processes_option
@click.option("--poll", type=click.FloatRange(0.1), default=5.0, show_default=True, help="Seconds between looks.")
@click.option("--once", is_flag=True, help="Help with what is pending now, then exit instead of waiting.")
@metrics_port_option
@handle_errors
def worker(
    root: Path,
    smtp: str | None,
    connections: int | None,
    processes: int | None,
    poll: float,
    once: bool,
    metrics_port: int | None,
) -> None:
    """Wait for mailings in the database and help send them (PostgreSQL; for a fleet started by systemd).

    A mailing starts with `newsletter send` (or the scheduler) on any machine; every worker then claims
    batches of it and sends them through its own relay connections. SIGTERM finishes the messages in
    flight and exits. Needs the edition's stories here, like any sender.

    \b
    Example:
      NEWSLETTER_DATABASE_URL=postgresql://news@db.example.org/news newsletter worker --smtp smtp://relay:25
    """
    from ..delivery import pending_editions, send_edition
    from ..errors import NewsletterError

    settings = load(root)
    if not settings.database_url:
        raise click.ClickException("a worker needs database_url (newsletter.toml or NEWSLETTER_DATABASE_URL)")
    if metrics_port is not None:
        serve_metrics(metrics_port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        echo_err("stopping after the messages in flight…", level="warning")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
    told: set[str] = set()  # errors already said once (a paused mailing stays pending for hours)
    relay: dict[str, Any] = {"smtp": smtp, "connections": connections, "processes": processes}
    while not stop.is_set():
        days = pending_editions(settings)
        worked = False
        for day, lang in days:
            edition = settings.for_language(lang) if lang else settings
            with logs.context(edition=day, language=lang):
                try:
                    report = send_edition(edition, day, stop=stop, join=True, progress=False, **relay)
                except NewsletterError as exc:  # one edition's trouble (gone meanwhile, a relay down) is not the end
                    if f"{day}{lang}{exc}" not in told:
                        _worker_says(f"edition {day}: {exc}", error=True)
                        told.add(f"{day}{lang}{exc}")
                    continue
                worked = True
                _worker_says(f"edition {day}: sent {report.sent_now} here; " + report.summary())
            if stop.is_set():
                break
        if once and not worked:  # nothing pending, or nothing that can go now (paused, failing)
            break
        if not worked:
            stop.wait(poll)


def _worker_says(line: str, *, error: bool = False) -> None:
    """A worker's line: on stdout/stderr for a person, or a log record when logs are JSON (a service)."""
    if logs.chosen_format() == "json":
        logging.getLogger("newsletter.worker").log(logging.ERROR if error else logging.INFO, line)
    elif error:
        echo_err(line)
    else:
        click.echo(line)


def _languages_json(day: Any, reports: dict[str, Any], due: Any, show_failed: bool, runs: list[str]) -> None:
    """`status --json` with several language editions: one object per language and the totals."""
    languages: dict[str, Any] = {}
    totals = dict.fromkeys(("total", "sent", "failed", "skipped", "pending"), 0)
    complete = True
    for lang, report in reports.items():
        if report is None or report.total == 0:
            complete = complete and lang not in due
            languages[lang] = {"status": "not started" if lang in due else "nothing to send"}
            continue
        languages[lang] = ledger_status(report, failures=show_failed)
        for key in totals:
            totals[key] += getattr(report, key)
        complete = complete and report.complete
    data = {"edition": day, "recent_runs": runs, **totals, "languages": languages}
    if totals["total"] == 0:
        emit_and_exit({**data, "status": "not started"}, EXIT_NOT_STARTED)
    failed = bool(totals["failed"])
    state = "complete" if complete and not failed else ("complete, with failures" if complete else "incomplete")
    emit_and_exit(
        {**data, "status": state}, EXIT_OK if complete and not failed else EXIT_FAILED if complete else EXIT_INCOMPLETE
    )
