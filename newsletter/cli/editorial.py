"""`newsletter approve`, `send-test`, `pause`, `resume`: the editors' decisions on the command line, for
operators without the desk (the desk's pages call the same library functions)."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

import click

from . import as_date, cli, date_option, handle_errors, load, load_newsletters, root_option


def newsletter_option(func: Any) -> Any:
    return click.option(
        "--newsletter",
        "newsletter_id",
        metavar="ID",
        default=None,
        help="Which newsletter (its [list] id; default: this folder's one list).",
    )(func)


def language_option(func: Any) -> Any:
    return click.option(
        "--language",
        "languages",
        multiple=True,
        metavar="LANG",
        help="Only this language edition (repeatable; default: every language edition of the day).",
    )(func)


def by_option(func: Any) -> Any:
    return click.option(
        "--by", "by", metavar="NAME", default=None, help="Who decides (default: the user running the command)."
    )(func)


def chosen(root: Path, newsletter_id: str | None) -> Any:
    """The settings of the newsletter named (a plain id), else of the folder's default newsletter."""
    from ..letters import default_settings

    if newsletter_id is not None:
        return load_newsletters(root, newsletter_id)[0]
    return default_settings(load(root))


def _who(by: str | None) -> str:
    name = " ".join((by or "").split())
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _record(settings: Any, who: str, action: str, target: str, detail: dict[str, Any]) -> None:
    """The action in the desk's audit log, as the desk records its own (`newsletter desk audit`)."""
    from ..editorial import open_audit

    with open_audit(settings) as audit:
        audit.record(who, action, target, {**detail, "via": "command line"}, newsletter=settings.list.id)


def _languages(settings: Any, languages: tuple[str, ...]) -> tuple[str, ...] | None:
    for lang in languages:
        if lang not in settings.languages:
            raise click.ClickException(
                f"--language: {lang!r} is not one of [list] languages ({', '.join(settings.languages)})"
            )
    return languages or None


@cli.command()
@root_option
@newsletter_option
@date_option
@language_option
@by_option
@handle_errors
def approve(root: Path, newsletter_id: str | None, day: Any, languages: tuple[str, ...], by: str | None) -> None:
    """Approve an edition exactly as it would go out now, for `[schedule] approval = "required"`.

    What is approved is a hash of the edition as it builds now: its stories' content, their order and
    the plan, the subject and preheader. A story edited afterwards voids the approval and the scheduler
    waits again. Without --language every language edition of the day is approved.

    \b
    Examples:
      newsletter approve --date 2016-12-30 --by "Ada Lovelace"
      newsletter approve --newsletter morning --language fr
    """
    from ..edition import edition_digests
    from ..editorial import open_approvals

    settings = chosen(root, newsletter_id)
    wanted = _languages(settings, languages)
    digests = edition_digests(settings, as_date(day))
    who = _who(by)
    with open_approvals(settings) as store:
        for lang, digest in digests.items():
            if wanted and lang not in wanted:
                continue
            store.approve(settings.list.id, digest.edition, lang, digest.content_hash, who)
            _record(settings, who, "edition.approve", f"{digest.edition}/{lang}", {"hash": digest.content_hash})
            label = f"{digest.edition} ({lang})" if settings.multilingual else str(digest.edition)
            click.echo(
                f"Edition {label}: approved by {who}: {digest.stories} stories, subject {digest.subject!r}, "
                f"hash {digest.content_hash[:12]}"
            )


@cli.command("send-test")
@root_option
@newsletter_option
@date_option
@language_option
@click.option(
    "--to", "to", multiple=True, metavar="ADDRESS", help="Send to this address (repeatable; default: [desk] seeds)."
)
@by_option
@handle_errors
def send_test_command(
    root: Path, newsletter_id: str | None, day: Any, languages: tuple[str, ...], to: tuple[str, ...], by: str | None
) -> None:
    """Mail the edition as it will go out to the seed list (`[desk] seeds`) or to --to addresses.

    The same message path as the morning (personalization, headers, DKIM), through `[smtp] url` or into
    outbox/<date>/test/; the edition's ledger is never touched, so a seed still gets the real morning.

    \b
    Examples:
      newsletter send-test --date 2016-12-30
      newsletter send-test --to editor@example.org --language ar
    """
    from ..delivery import send_tests

    settings = chosen(root, newsletter_id)
    lines = send_tests(settings, as_date(day), to, languages=_languages(settings, languages) or ())
    for line in lines:
        click.echo(line)
    target = str(as_date(day) or "newest")
    _record(settings, _who(by), "edition.test", target, {"to": list(to) or "seed list", "messages": len(lines)})


@cli.command()
@root_option
@newsletter_option
@date_option
@language_option
@by_option
@handle_errors
def pause(root: Path, newsletter_id: str | None, day: Any, languages: tuple[str, ...], by: str | None) -> None:
    """Pause a running mailing: no new message starts, those in flight finish; `newsletter resume` goes on.

    Every sender of the mailing (sender processes, a PostgreSQL fleet) sees the pause within a fraction
    of a second and ends its run as paused; the scheduler does not start it again until it is resumed.

    \b
    Examples:
      newsletter pause --date 2016-12-30 --by "Ada Lovelace"
    """
    from ..delivery import pause_mailing
    from ..edition import read_window

    settings = chosen(root, newsletter_id)
    the_day = as_date(day) or read_window(settings, None)[1]
    lines = pause_mailing(settings, the_day, _who(by), languages=_languages(settings, languages))
    for line in lines:
        click.echo(line)
    _record(settings, _who(by), "mailing.pause", the_day.isoformat(), {"languages": len(lines)})


@cli.command()
@root_option
@newsletter_option
@date_option
@language_option
@click.option("--subscribers", metavar="FILE", help="The list the mailing was sent to (default: as `send`).")
@click.option("--no-send", is_flag=True, help="Only lift the pause; leave sending to the scheduler or a worker.")
@by_option
@handle_errors
def resume(
    root: Path,
    newsletter_id: str | None,
    day: Any,
    languages: tuple[str, ...],
    subscribers: str | None,
    no_send: bool,
    by: str | None,
) -> None:
    """Lift a pause (an operator's or the circuit breaker's) and go on sending where the mailing stopped.

    Who got the edition is in the ledger: every recipient is mailed once, however often it was paused.
    Exit status as `newsletter send`.

    \b
    Examples:
      newsletter resume --date 2016-12-30
      newsletter resume --date 2016-12-30 --no-send
    """
    from ..delivery import resume_mailing, send_languages
    from ..edition import read_window

    settings = chosen(root, newsletter_id)
    the_day = as_date(day) or read_window(settings, None)[1]
    wanted = _languages(settings, languages)
    lines = resume_mailing(settings, the_day, languages=wanted)
    for line in lines or [f"edition {the_day}: not paused"]:
        click.echo(line)
    if lines:  # the desk's resume lifts the pause itself, and records it, before it starts this command
        _record(settings, _who(by), "mailing.resume", the_day.isoformat(), {"languages": len(lines)})
    if no_send:
        return
    for lang in wanted or (None,):
        run = send_languages(settings, the_day, subscribers=subscribers, language=lang, resume=True, progress=False)
        result = run.combined()
        click.echo(f"edition {the_day}: sent {result.sent_now} now; {result.sent} sent, {result.pending} pending")
        if result.pending:
            sys.exit(4)


def approval_lines(settings: Any, day: Any) -> list[str]:
    """`status`'s view of a morning under `[schedule] approval = "required"`: each language edition waiting,
    approved (by whom, when), void, sending, paused or sent; nothing when approval is automatic."""
    from ..delivery import morning_state
    from ..errors import EditionError
    from ..schedule import read_config

    if not read_config(settings).approval.required:
        return []
    try:
        states = morning_state(settings, day, required=True)
    except EditionError as exc:  # nothing to approve that day: say so, the ledger's lines follow
        return [f"Approval: {exc}"]
    return [s.line(day, multilingual=settings.multilingual) for s in states]


@cli.command()
@root_option
@newsletter_option
@date_option
@click.option("--days", type=click.IntRange(1, 366), default=90, show_default=True, help="The period, up to today.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the charts and tables to this HTML file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@handle_errors
def report(root: Path, newsletter_id: str | None, day: Any, days: int, html_path: Path | None, as_json: bool) -> None:
    """How the mail landed, per edition and over the last --days days: delivered, deferred, failed,
    bounced (hard and soft), complaints, unsubscribes (counted for the edition of their day), sign-ups and
    the list's size — from the ledgers, the suppression list, the bounce records and the subscriber store;
    no reader is tracked. An edition past a mailbox provider's published level (Gmail's 0.3 % spam rate,
    a 10 % bounce rate) is an ALERT line. --date shows that edition alone.

    \b
    Examples:
      newsletter report
      newsletter report --days 30 --html landing.html
      newsletter report --date 2016-12-30 --json
    """
    from datetime import datetime

    from ..bounces import gather_landing

    settings = chosen(root, newsletter_id)
    today = as_date(day) or datetime.now(settings.timezone).date()
    figures = gather_landing(settings, today, days=1 if day is not None else days)
    if as_json:
        from .output import emit_and_exit

        emit_and_exit(_landing_json(figures), 0)
    for line in _landing_lines(figures):
        click.echo(line)
    if html_path is not None:
        _write_html(html_path, settings, figures)
        click.echo(f"Charts and tables written to {html_path}")


def _landing_lines(figures: Any) -> list[str]:
    lines = [f"How it landed, {figures.start} to {figures.end}: {len(figures.editions)} edition(s)"]
    for e in reversed(figures.editions):
        lines.append(
            f"  {e.edition}  delivered {e.delivered}/{e.recipients}, deferred {e.deferred}, failed {e.failed}, "
            f"pending {e.pending}; bounced {e.bounced_hard} hard, {e.bounced_soft} soft; complaints {e.complaints} "
            f"({e.complaint_rate:.2%}); unsubscribes {e.unsubscribes}"
        )
    t = figures.totals()
    lines.append(
        f"Total: delivered {t.delivered}, failed {t.failed}, bounced {t.bounced_hard} hard / {t.bounced_soft} soft "
        f"({t.bounce_rate:.2%}), complaints {t.complaints} ({t.complaint_rate:.3%}), unsubscribes {t.unsubscribes}"
    )
    signups = sum(d.signups for d in figures.days)
    sized = [d.list_size for d in figures.days if d.list_size is not None]
    if sized:
        lines.append(f"Sign-ups {signups}; readers on the list: {sized[0]} → {sized[-1]}")
    for alert in figures.alerts:
        lines.append(f"ALERT ({alert.level}): {alert.message}")
    return lines


def _landing_json(figures: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "start": figures.start,
        "end": figures.end,
        "editions": [
            asdict(e) | {"complaint_rate": e.complaint_rate, "bounce_rate": e.bounce_rate} for e in figures.editions
        ],
        "days": [asdict(d) for d in figures.days],
        "alerts": [asdict(a) for a in figures.alerts],
    }


def _write_html(path: Path, settings: Any, figures: Any) -> None:
    from html import escape

    from ..editorial import landing_charts
    from ..fsutil import write_atomic

    alerts = "".join(f'<p class="alert {a.level}">{escape(a.message)}</p>' for a in figures.alerts)
    title = escape(f"{settings.title}: how it landed, {figures.start} to {figures.end}")
    page = (
        f'<!doctype html>\n<html lang="{escape(settings.language)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>'
        f"<body><main><h1>{title}</h1>{alerts}{landing_charts(figures)}</main></body></html>\n"
    )
    write_atomic(path, page)
