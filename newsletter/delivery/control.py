"""An operator's pause and resume of a running mailing, through the circuit breaker's own mechanism.

A pause writes why into the edition's ledger meta `paused` (health.PAUSED), the very note the breaker
leaves: every sender of the mailing — the one process of a SQLite ledger, each sender process, every
member of a PostgreSQL fleet — looks at it every `send.PAUSE_LOOK` seconds (and with PostgreSQL every 64 messages),
stops taking new messages, lets those in flight finish and records them, and ends its run as paused;
the rest stay pending. No run
starts on a paused mailing. A resume clears the note; the next `newsletter send --resume` (or the
`resume` command, which sends at once) goes on from the ledger, so every recipient is mailed once.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime

from ..config import Settings
from ..errors import DeliveryError
from .health import PAUSED
from .stores import ledger_exists, open_ledger

_MAX_NAME = 120


def _editions(settings: Settings, languages: tuple[str, ...] | None) -> list[tuple[str, Settings]]:
    chosen = languages or settings.languages
    return [(lang, settings.for_language(lang) if settings.multilingual else settings) for lang in chosen]


def pause_mailing(
    settings: Settings, day: date, by: str, *, languages: tuple[str, ...] | None = None, now: datetime | None = None
) -> list[str]:
    """Pause edition `day`'s mailing in each language that has a ledger; one line per language.

    Raises `DeliveryError` when no language of that edition has been sent at all (nothing to pause)."""
    who = " ".join(by.split())[:_MAX_NAME] or "an operator"
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    lines = []
    for lang, edition in _editions(settings, languages):
        if not ledger_exists(edition, day):
            continue
        with open_ledger(edition, day) as ledger:
            counts = ledger.counts()
            ledger.set_meta(PAUSED, f"paused by {who} at {when}")
        lines.append(f"edition {day} ({lang}): paused with {counts.pending} pending, {counts.sent} sent")
    if not lines:
        raise DeliveryError(f"edition {day} has no mailing to pause (never sent)")
    return lines


def resume_mailing(settings: Settings, day: date, *, languages: tuple[str, ...] | None = None) -> list[str]:
    """Clear the pause of edition `day` in each language; one line per language that was paused."""
    lines = []
    for lang, edition in _editions(settings, languages):
        if not ledger_exists(edition, day):
            continue
        with open_ledger(edition, day) as ledger:
            reason = ledger.get_meta(PAUSED) or ""
            if reason:
                ledger.set_meta(PAUSED, "")
                lines.append(f"edition {day} ({lang}): resumed ({reason}); {ledger.counts().pending} pending")
    return lines


def paused_by_operator(reason: str) -> bool:
    """Whether a pause note is an operator's (rather than the breaker's)."""
    return reason.startswith("paused by ")


def resume_in_background(
    settings: Settings, day: date, *, languages: tuple[str, ...] | None = None
) -> subprocess.Popen[bytes]:
    """Lift the pause and start `newsletter resume` as a process of its own: the desk's resume button (a
    web request must not send a mailing itself). The caller need not wait for the process returned. The
    ledger and, with SQLite, the edition's lock make a second resume of the same mailing harmless: every
    recipient is still mailed once."""

    resume_mailing(settings, day, languages=languages)
    args = [sys.executable, "-m", "newsletter", "resume", "--root", str(settings.root), "--date", day.isoformat()]
    for lang in languages or ():
        args += ["--language", lang]
    log = settings.root / "data" / f"resume-{day.isoformat()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:  # what the run said, for whoever looks (the desk shows the ledger)
        return subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
