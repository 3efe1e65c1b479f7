"""Which edition a bounce or a complaint came from, so its rate is that edition's.

In order, the first that says:

1. **the return path token** (`[mailing] return_path` with `{token}`): a mailing's tokens carry the day
   and an opaque id of the list's language edition, under the same MAC as the address — genuine only;
2. **the original message's `Feedback-ID`** (`edition[.language]:newsletter:sender`, ours when its
   newsletter field is this list's), which ARF reports and most DSNs carry with the original headers;
3. **the original message's `Message-ID`**, when it has our shape (`<YYYY-MM-DD.<24 base32>@<sender
   domain>>`): the day only (the language too when the list has a single one).

An original whose `List-Id` names another list is not ours whatever else it says. A report that names
no edition counts by the day it arrived (`status` says how many did). Headers can be forged by whoever
mails the bounce mailbox: they only ever move a count between editions; suppressing a reader still
takes a genuine token or an address on the list (run.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from ..config import Settings
from ..delivery import MAILING, SECRET_ENV, ReturnPath, Verified, feedback_newsletter, newsletter_mark
from .policy import EditionRef, open_bounce_state, state_path

_DAY = r"(\d{4}-\d{2}-\d{2})"


class EditionFinder:
    """Reads the edition out of what a report carries, for one list (all its language editions)."""

    def __init__(self, settings: Settings) -> None:
        self.languages = settings.languages
        self.marks = {newsletter_mark(settings.list.id, lang): lang for lang in settings.languages}
        self.list_id = settings.list.id.lower()
        self.newsletter = feedback_newsletter(settings)
        domain = re.escape(settings.sender.address.rsplit("@", 1)[-1].lower())
        self.message_id = re.compile(rf"<{_DAY}\.[a-z2-7]{{24}}@{domain}>")

    def _language(self, named: str) -> str:
        """The language edition a report names; the only one of a one-language list; else ''."""
        if named in self.languages:
            return named
        return self.languages[0] if len(self.languages) == 1 else ""

    def from_tokens(self, verified: list[Verified]) -> EditionRef | None:
        marks = {v.edition for v in verified if v.edition is not None}
        if len(marks) != 1:  # none, or two editions for one report: a guess either way
            return None
        mark = marks.pop()
        return EditionRef(mark.day, self._language(self.marks.get(mark.newsletter, "")), "return path")

    def from_original(self, original: dict[str, str]) -> EditionRef | None:
        """From the original message's Feedback-ID, else its Message-ID; None when neither is ours."""
        list_id = original.get("list-id", "").lower()
        if list_id and f"<{self.list_id}>" not in list_id:
            return None
        fields = original.get("feedback-id", "").strip().split(":")
        if len(fields) == 3 and fields[1] == self.newsletter:
            found = re.fullmatch(rf"{_DAY}(?:\.([A-Za-z0-9-]+))?", fields[0])
            day = _day(found.group(1)) if found else None
            if found and day is not None:
                return EditionRef(day, self._language(found.group(2) or ""), "Feedback-ID")
        found = self.message_id.fullmatch(original.get("message-id", "").strip().lower())
        day = _day(found.group(1)) if found else None
        return EditionRef(day, self._language(""), "Message-ID") if day is not None else None


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Reported:
    """What came back for an edition after it was sent, by kind (hard, soft, complaint): the reports
    that named it, and those that named no edition and arrived on its day."""

    named: dict[str, int] = field(default_factory=dict)
    by_arrival: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return self.named.get(kind, 0) + self.by_arrival.get(kind, 0)

    def line(self) -> str:
        def kinds(counts: dict[str, int]) -> str:
            parts = [f"{counts.get(k, 0)} {label}" for k, label in _LABELS if counts.get(k)]
            return ", ".join(parts) or "nothing"

        text = f"Came back later: {kinds(self.named)} naming this edition"
        if self.by_arrival:
            text += f"; {kinds(self.by_arrival)} naming none, counted by the day they arrived"
        return text


_LABELS = (("hard", "hard bounce(s)"), ("soft", "soft bounce(s)"), ("complaint", "complaint(s)"))


def reported(settings: Settings, day: date, languages: tuple[str, ...] | None, *, by_arrival: bool = True) -> Reported:
    """The bounces and complaints of edition `day` (of those language editions, '' for a report that
    named the day only; every one with None), plus — with `by_arrival` — those that named no edition
    and arrived on that day (the newsletter's time zone). Nothing when no bounce was ever read."""
    if not settings.database_url and not state_path(settings).exists():
        return Reported()
    start = datetime.combine(day, time(0), tzinfo=settings.timezone)
    with open_bounce_state(settings) as state:
        named = state.edition_counts(day, languages)
        arrived = state.unattributed_counts(start, start + timedelta(days=1)) if by_arrival else {}
    return Reported(named, arrived)


def edition_of(settings: Settings, original: dict[str, str], envelope: str = "") -> EditionRef | None:
    """The edition a provider's event is about (webhooks): the return path token in `envelope` (the
    envelope sender the provider reports), else the original message's headers."""
    finder = EditionFinder(settings)
    template = settings.options(MAILING).return_path or ""
    path = ReturnPath.parse(template) if template else None
    secret = os.environ.get(SECRET_ENV, "").encode("utf-8")
    if path is not None and secret and envelope:
        verified, _forged = path.read(envelope, secret, settings.list.id)
        if len({v.address for v in verified}) == 1 and (found := finder.from_tokens(verified)) is not None:
            return found
    return finder.from_original(original)
