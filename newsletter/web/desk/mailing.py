"""The desk's pages for the morning's mailing: approve it, send a test, watch it go out (pause, resume),
and see how it landed. Each action is a form with the session's CSRF token and goes to the audit log.

    GET  /desk/approve            each language edition: its state (waiting, approved by…, void, sending,
                                  sent), hash, subject; approve and send-a-test forms
    POST /desk/approve            approve the hash the page showed (refused if the edition changed since)
    POST /desk/approve/test       the edition to the seed list (`[desk] seeds`) or one address
    GET  /desk/sending            the running mailing per language and per sender; pause, resume
    POST /desk/sending/pause      newsletter.delivery.pause_mailing
    POST /desk/sending/resume     newsletter.delivery.resume_in_background (a process of its own)
    GET  /desk/landing            how it landed: charts and tables over 90 days (`?days=`, `?date=` its end),
                                  alerts
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...bounces import gather_landing
from ...delivery import language_status, morning_state, pause_mailing, resume_in_background, seed_list, send_tests
from ...edition import edition_digests, language_name
from ...editorial import landing_charts, open_approvals
from ...errors import NewsletterError
from .auth import N_
from .context import Desk
from .editions import next_edition
from .registry import desk_page


def _today(desk: Desk) -> date:
    """The edition a mailing of today sends (`?date=` or the form's `date` to choose)."""
    raw = desk.request.query_params.get("date", "") or desk.field("date", 10)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return datetime.now(desk.settings.timezone).date()


def _form_day(desk: Desk) -> date | None:
    try:
        return date.fromisoformat(desk.field("date", 10))
    except ValueError:
        return None


def _approval_required(desk: Desk) -> bool:
    """Whether the scheduler waits for an approval (`[schedule] approval`, checked by the scheduler)."""
    return str(desk.settings.section("schedule").get("approval", "auto")).strip().lower() == "required"


def _approve_view(desk: Desk, day: date) -> dict[str, Any]:
    try:
        states = morning_state(desk.settings, day, required=True)
        problem = ""
    except NewsletterError as exc:
        states, problem = [], str(exc)
    try:
        seeds, seed_problem = seed_list(desk.settings), ""
    except NewsletterError as exc:
        seeds, seed_problem = [], str(exc)
    names = {lang: language_name(lang) for lang in desk.settings.languages}
    return {"day": day, "states": states, "problem": problem, "seeds": seeds, "seed_problem": seed_problem,
            "names": names}  # fmt: skip


@desk_page("/approve", nav=N_("Approve"), order=20)
async def approve_page(desk: Desk) -> Response:
    view = await run_in_threadpool(_approve_view, desk, next_edition(desk))
    return desk.page("approve.html", required=_approval_required(desk), **view)


@desk_page("/approve", methods=("POST",))
async def approve(desk: Desk) -> Response:
    """Approve the edition whose hash the page showed; a changed edition is not approved unseen."""
    day, lang, shown = _form_day(desk), desk.field("language", 20), desk.field("hash", 64)
    if day is None or lang not in desk.settings.languages:
        return desk.message(400, desk._("Nothing approved"), desk._("The form named no edition."))
    digests = await run_in_threadpool(edition_digests, desk.settings, day)
    digest = digests.get(lang)
    if digest is None or digest.content_hash != shown:
        return desk.message(
            409, desk._("Nothing approved"), desk._("The edition changed since the page was shown: look at it again.")
        )

    def record() -> None:
        with open_approvals(desk.settings) as store:
            store.approve(desk.ctx.newsletter, day, lang, shown, desk.user.name)

    await run_in_threadpool(record)
    desk.audit("edition.approve", f"{day}/{lang}", {"hash": shown, "subject": digest.subject})
    return desk.redirect(f"/approve?date={day.isoformat()}")


@desk_page("/approve/test", methods=("POST",))
async def send_a_test(desk: Desk) -> Response:
    """The edition to one address, or to the seed list; through the morning's own message path."""
    day, lang, to = _form_day(desk), desk.field("language", 20), desk.field("to", 320).strip()
    if day is None or lang not in desk.settings.languages:
        return desk.message(400, desk._("No test sent"), desk._("The form named no edition."))
    try:
        lines = await run_in_threadpool(send_tests, desk.settings, day, [to] if to else [], languages=[lang])
    except NewsletterError as exc:
        desk.audit("edition.test.failed", f"{day}/{lang}", {"to": to or "seed list", "error": str(exc)[:300]})
        return desk.message(400, desk._("No test sent"), str(exc))
    desk.audit("edition.test", f"{day}/{lang}", {"to": to or "seed list", "messages": len(lines)})
    return desk.page("sent_test.html", day=day, lines=lines)


def _sending_view(desk: Desk, day: date) -> dict[str, Any]:
    reports = language_status(desk.settings, day)
    rows = [(lang, language_name(lang), report) for lang, report in reports.items()]
    paused = any(r is not None and r.paused for _, _, r in rows)
    running = any(r is not None and r.pending for _, _, r in rows)
    return {"day": day, "rows": rows, "paused": paused, "running": running}


@desk_page("/sending", nav=N_("Sending"), order=30)
async def sending_page(desk: Desk) -> Response:
    view = await run_in_threadpool(_sending_view, desk, _today(desk))
    return desk.page("sending.html", **view)


@desk_page("/sending/pause", methods=("POST",))
async def pause(desk: Desk) -> Response:
    day = _form_day(desk)
    if day is None:
        return desk.message(400, desk._("Not paused"), desk._("The form named no edition."))
    try:
        lines = await run_in_threadpool(pause_mailing, desk.settings, day, desk.user.name)
    except NewsletterError as exc:
        return desk.message(400, desk._("Not paused"), str(exc))
    desk.audit("mailing.pause", day.isoformat(), {"languages": len(lines)})
    return desk.redirect(f"/sending?date={day.isoformat()}")


@desk_page("/sending/resume", methods=("POST",))
async def resume(desk: Desk) -> Response:
    day = _form_day(desk)
    if day is None:
        return desk.message(400, desk._("Not resumed"), desk._("The form named no edition."))
    process = await run_in_threadpool(resume_in_background, desk.settings, day)
    desk.audit("mailing.resume", day.isoformat(), {"process": process.pid})
    return desk.redirect(f"/sending?date={day.isoformat()}")


@desk_page("/landing", nav=N_("How it landed"), order=40)
async def landing_page(desk: Desk) -> Response:
    raw = desk.request.query_params.get("days", "90")
    days = int(raw) if raw.isdigit() and 1 <= int(raw) <= 366 else 90
    figures = await run_in_threadpool(gather_landing, desk.settings, _today(desk), days=days)
    charts = Markup(landing_charts(figures, gettext=desk._))  # every text in it escaped by charts.py
    return desk.page("landing.html", figures=figures, charts=charts, days=days, totals=figures.totals())
