"""Bounces and complaints → the suppression list.

In:  a bounce mailbox (Maildir, mbox, IMAP) or provider events; the settings (`[bounces]`, `[mailing]`).
Out: suppression-list entries (reason, diagnostic, report Message-ID), the soft-bounce history, the
     handled Message-IDs and every bounce and complaint with its edition in `data/bounces.sqlite`,
     handled messages moved or flagged, one report per run; what came back for an edition (`reported`).

    sources.py   Maildir · mbox (streamed) · IMAP (imapclient, TLS)                      → raw messages
    classify.py  RFC 5965 ARF · RFC 3464 DSN · RFC 3834 auto-reply · flufl.bounce for the rest → Classified
    policy.py    hard → suppress; soft → after N in D days; complaint → suppress; what was handled
    editions.py  the edition a report came from: its return path token, else the original's headers
    run.py       one pass: source → classify → attribute (VERP, the list) → decide → remember → report

The per-recipient return path itself (VERP) is signed on the send path, in `delivery.verp`.

Public face: the names in `__all__`; the CLI, the scheduler and the web webhooks import only these.
"""

from __future__ import annotations

from .classify import Classified, classify
from .editions import Reported, edition_of, reported
from .policy import BounceState, Decider, Decision, EditionRef, Event, Policy, open_bounce_state, state_path
from .run import BounceReport, configured, process, run_configured, scheduled_pass, source_from_settings
from .sources import SourceError

__all__ = [
    "BounceReport",
    "BounceState",
    "Classified",
    "Decider",
    "Decision",
    "EditionRef",
    "Event",
    "Policy",
    "Reported",
    "SourceError",
    "classify",
    "configured",
    "edition_of",
    "open_bounce_state",
    "process",
    "reported",
    "run_configured",
    "scheduled_pass",
    "source_from_settings",
    "state_path",
]
