"""Each reader their language: one send run per language edition, over one subscriber list.

    subscriber list ──locale──▶ edition language (fr-CA → fr, ar-EG → ar, unknown → the default)
                    ──▶ send_edition(edition's settings, readers of that language) ──▶ its own ledger

The send loop itself (`send.py`) is the same for every edition; this module only chooses, for each
language edition, which rows of the list are its readers (`ReaderFilter`) and runs it. With one language
nothing changes: the whole list, one ledger (`data/ledger/<date>.sqlite`). With several, each edition
has `data/ledger/<date>.<lang>.sqlite` and `outbox/<date>/<lang>/mail/`.

A reader gets one edition per date, never two: an address listed twice with different locales, or whose
locale changed after the edition went out, is skipped for an edition when another language's ledger
already holds it as sent, failed, or enrolled earlier in this run (the editions run in `[list]
languages` order). A language with no stories that day is not built; its readers get no email that
morning (said in the report).

`keep` (used by the per-time-zone scheduler) narrows the readers further.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ..config import Settings, edition_language
from ..edition import languages_present, read_window
from .options import MailingOptions
from .report import SendReport
from .send import ledger_report, send_edition
from .stores import LedgerStore, ledger_exists, open_ledger
from .subscribers import Problem, Subscriber, SubscriberSource, store_source

_CLAIMED = ("sent", "failed")  # states that mean "this reader had this date's email (or was refused)"


class ReaderFilter(SubscriberSource):
    """The subscriber list seen through a filter: only the rows `keep` accepts (True).

    `keep` may instead return a reason (a string): the row is left out and reported as a problem. Row
    problems found while reading (bad addresses) are reported only when `report_problems` is set, so a
    list read once per language edition names each bad line once.
    """

    def __init__(
        self, base: SubscriberSource, keep: Callable[[Subscriber], bool | str], *, report_problems: bool
    ) -> None:
        self.path, self.table, self.kind, self.problems = base.path, base.table, base.kind, base.problems
        self._base = base
        self._keep = keep
        self._report = report_problems

    def rows(self, on_problem: Callable[[Problem], None] | None = None) -> Iterator[Subscriber]:
        report = on_problem or self.problems.append
        for sub in self._base.rows(report if self._report else _ignore):
            verdict = self._keep(sub)
            if isinstance(verdict, str):
                report(Problem(self.path.name, sub.line, verdict))
            elif verdict:
                yield sub


def _ignore(_problem: Problem) -> None:
    return None


@dataclass
class LanguageSend:
    """What one `send` did for each language edition, in `[list] languages` order."""

    day: date
    reports: dict[str, SendReport] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)

    def combined(self) -> SendReport:
        """All editions' counts in one report (what the exit status and the scheduler look at)."""
        reports = list(self.reports.values())
        if len(reports) == 1 and not self.left_out:
            return reports[0]
        total = SendReport(0, 0, 0, 0, 0, edition=self.day)
        for name in (
            "sent",
            "failed",
            "skipped",
            "retried",
            "pending",
            "sent_now",
            "failed_now",
            "deferred",
            "invalid",
            "duplicates",
            "suppressed",
            "removed",
            "requeued",
            "throttled",
            "total",
            "elapsed",
            "send_seconds",
        ):
            setattr(total, name, sum(getattr(r, name) for r in reports))
        for flag in ("dry_run", "test", "stopped", "limited"):
            setattr(total, flag, any(getattr(r, flag) for r in reports))
        total.sink = reports[0].sink if reports else ""
        total.stories_skipped = sorted({line for r in reports for line in r.stories_skipped})
        for lang, r in self.reports.items():
            total.problems += r.problems
            total.warnings += [f"{lang}: {w}" for w in r.warnings]
            total.failures += [f"{lang}: {f}" for f in r.failures]
        total.warnings += [
            f"{lang}: edition not built ({why}); its readers get no email" for lang, why in self.left_out
        ]
        return total


def reader_language(settings: Settings) -> Callable[[Subscriber], str]:
    """A subscriber's edition language from their `locale` (`fr-CA` → `fr`; unknown → the default)."""
    return lambda sub: edition_language(sub.locale, settings.languages)


def send_languages(
    settings: Settings,
    day: date | None,
    *,
    subscribers: str | Path | None = None,
    language: str | None = None,
    keep: Callable[[Subscriber], bool] | None = None,
    to: str | None = None,
    **options: Any,
) -> LanguageSend:
    """Send edition `day` (None: the newest) in every language to that language's readers.

    `language` restricts the run to one edition; `to` sends one test copy of `language`'s edition (default:
    the first language). Other keyword options go to `send_edition` unchanged (`limit` counts per edition).
    """
    if to is not None:
        lang = language or settings.languages[0]
        report = send_edition(settings.for_language(lang), day, to=to, **options)
        return LanguageSend(report.edition or date.min, {lang: report})
    if not settings.multilingual and keep is None:
        report = send_edition(settings, day, subscribers=subscribers, **options)
        return LanguageSend(report.edition or date.min, {settings.language: report})
    spec = subscribers or MailingOptions.from_settings(settings).subscribers
    # Without a list named, the subscriber store is the list (its confirmed rows).
    base = SubscriberSource(spec, settings.root) if spec is not None else store_source(settings)
    loaded, the_day = read_window(settings, day)
    wanted = (settings.for_language(language).language,) if language else settings.languages
    present, left_out = languages_present(settings, the_day, loaded.stories, wanted)
    result = LanguageSend(the_day, left_out=left_out)
    language_of = reader_language(settings)
    for i, lang in enumerate(present):
        lang_settings = settings.for_language(lang)
        earlier = settings.languages[: settings.languages.index(lang)]
        with contextlib.ExitStack() as stack:
            others = [
                (other, stack.enter_context(open_ledger(other_settings, the_day, readonly=True)))
                for other in settings.languages
                if other != lang
                and settings.multilingual
                and ledger_exists(other_settings := settings.for_language(other), the_day)
            ]

            def keep_row(
                sub: Subscriber,
                lang: str = lang,
                others: list[tuple[str, LedgerStore]] = others,
                earlier: tuple[str, ...] = earlier,
            ) -> bool | str:
                if language_of(sub) != lang or (keep is not None and not keep(sub)):
                    return False
                for other, ledger in others:
                    state = ledger.state_of(sub.address)
                    if state in _CLAIMED or (state == "pending" and other in earlier):
                        return f"{sub.address} already has the {other} edition of {the_day} ({state}); not sent {lang}"
                return True

            source = ReaderFilter(base, keep_row, report_problems=i == 0)
            result.reports[lang] = send_edition(lang_settings, the_day, subscribers=source, **options)
    return result


def language_status(settings: Settings, day: date) -> dict[str, SendReport | None]:
    """The ledger's counts for each language edition of `day` (None: that edition was never sent)."""
    return {lang: ledger_report(settings.for_language(lang), day) for lang in settings.languages}
