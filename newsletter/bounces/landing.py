"""Gather how the mail landed (editorial/landing.py) from what is already recorded, and nothing else.

    the ledgers          per edition and language: delivered, failed, pending, deferred (the runs),
                         hard bounces at send time (health.edition_rates)
    the suppression list reports that came back later: bounced, complained, unsubscribed (by day)
    the bounce records   soft bounces (by day)
    the subscriber store sign-ups and the list's size by day (when the newsletter has a store)

Later reports are counted for the newest edition on or before their day (landing.attribute).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ..config import Settings
from ..delivery import edition_rates, ledger_exists, made_at_send, open_ledger, open_suppression, suppression_path
from ..editorial import LANDING_DAYS, DayFigures, EditionFigures, Landing, attribute, landing
from .policy import open_bounce_state, state_path


def gather_landing(settings: Settings, today: date, *, days: int = LANDING_DAYS) -> Landing:
    """The figures of the `days` days up to `today` (local dates), every language together."""
    start = today - timedelta(days=days - 1)
    sent = _editions(settings, start, today)
    dates = sorted(sent)
    reports = _reports(settings, start)
    later: dict[date, Counter[str]] = {}
    for kind, day in reports:
        edition = attribute(day, dates)
        if edition is not None:
            later.setdefault(edition, Counter())[kind] += 1
    figures = [_figures(day, sent[day], later.get(day, Counter())) for day in dates]
    by_day = Counter((kind, day) for kind, day in reports)
    return landing(start, today, figures, _days(settings, start, today, by_day))


def _local_day(settings: Settings, stamp: str) -> date | None:
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(settings.timezone).date()


def _editions(settings: Settings, start: date, end: date) -> dict[date, Counter[str]]:
    """edition date → its ledgers' counts, every language edition added up."""
    found: dict[date, Counter[str]] = {}
    day = start
    while day <= end:
        for lang in settings.languages:
            edition = settings.for_language(lang) if settings.multilingual else settings
            if not ledger_exists(edition, day):
                continue
            with open_ledger(edition, day, readonly=True) as ledger:
                counts = ledger.counts()
                deferred = sum(int(r.get("deferred") or 0) for r in ledger.runs())
            rates = edition_rates(edition, day)  # the hard bounces at send time; later reports are counted below
            total = found.setdefault(day, Counter())
            total.update(
                recipients=counts.total,
                delivered=counts.sent,
                failed=counts.failed,
                pending=counts.pending,
                deferred=deferred,
                bounced_hard=rates.bounced if rates else 0,
            )
        day += timedelta(days=1)
    return found


def _figures(day: date, counts: Counter[str], later: Counter[str]) -> EditionFigures:
    return EditionFigures(
        day,
        recipients=counts["recipients"],
        delivered=counts["delivered"],
        deferred=counts["deferred"],
        failed=counts["failed"],
        pending=counts["pending"],
        bounced_hard=counts["bounced_hard"] + later["bounced"],
        bounced_soft=later["soft"],
        complaints=later["complained"],
        unsubscribes=later["unsubscribed"],
    )


def _reports(settings: Settings, start: date) -> list[tuple[str, date]]:
    """(kind, local day) of every report since `start`: bounced, complained, unsubscribed, soft."""
    since = datetime.combine(start, time(0), tzinfo=settings.timezone).astimezone(UTC)
    found: list[tuple[str, date]] = []
    if settings.database_url or suppression_path(settings).exists():
        with open_suppression(settings) as suppression:
            for _address, reason, source, created in suppression:
                if made_at_send(source):  # a refusal at send time: the ledger counts it already
                    continue
                day = _local_day(settings, str(created))
                if day is not None and day >= start and reason in ("bounced", "complained", "unsubscribed"):
                    found.append((reason, day))
    if settings.database_url or state_path(settings).exists():
        with open_bounce_state(settings) as state:
            for stamp in state.soft_times(since):
                day = _local_day(settings, stamp)
                if day is not None:
                    found.append(("soft", day))
    return found


def _days(settings: Settings, start: date, end: date, reports: Counter[tuple[str, date]]) -> list[DayFigures]:
    """Sign-ups, unsubscribes and the list's size for every day of the period."""
    joined, asked, left, base = _store_days(settings, start)
    size: int | None = base
    out = []
    day = start
    while day <= end:
        if size is not None:
            size += joined[day] - left[day]
        out.append(DayFigures(day, joined[day], asked[day], reports[("unsubscribed", day)], size))
        day += timedelta(days=1)
    return out


def _store_days(settings: Settings, start: date) -> tuple[Counter[date], Counter[date], Counter[date], int | None]:
    """From the subscriber store: confirmations and requests by day, departures by day (the day the
    address went on the suppression list), and the list's size before `start`; None without a store."""
    joined: Counter[date] = Counter()
    asked: Counter[date] = Counter()
    left: Counter[date] = Counter()
    store = _store(settings)
    if store is None:
        return joined, asked, left, None
    gone = _departures(settings)
    base = 0
    with contextlib.closing(store):
        for record in store.records():
            requested = _local_day(settings, record.created_at)
            if requested is not None and requested >= start:
                asked[requested] += 1
            confirmed = _local_day(settings, record.confirmed_at) if record.confirmed_at else None
            if confirmed is None:
                continue
            out = gone.get(record.email.lower()) if record.status != "confirmed" else None
            for when, counter, sign in ((confirmed, joined, 1), (out, left, -1)):
                if when is None:
                    continue
                if when >= start:
                    counter[when] += 1
                else:
                    base += sign
    return joined, asked, left, base


def _store(settings: Settings) -> Any:
    from ..delivery import store_exists, subscriber_store

    return subscriber_store(settings) if store_exists(settings) else None


def _departures(settings: Settings) -> dict[str, date]:
    if not settings.database_url and not suppression_path(settings).exists():
        return {}
    found = {}
    with open_suppression(settings) as suppression:
        for address, _reason, _source, created in suppression:
            day = _local_day(settings, str(created))
            if day is not None:
                found[address.strip().lower()] = day
    return found
