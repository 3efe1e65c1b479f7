"""Bounces and complaints → the suppression list.

In:  a bounce mailbox (Maildir, mbox, IMAP) or provider events; the settings (`[bounces]`, `[mailing]`).
Out: suppression-list entries (reason, diagnostic, report Message-ID), the soft-bounce history and the
     handled Message-IDs in `data/bounces.sqlite`, handled messages moved or flagged, one report per run.

    sources.py   Maildir · mbox (streamed) · IMAP (imapclient, TLS)                      → raw messages
    classify.py  RFC 5965 ARF · RFC 3464 DSN · RFC 3834 auto-reply · flufl.bounce for the rest → Classified
    policy.py    hard → suppress; soft → after N in D days; complaint → suppress; what was handled
    run.py       one pass: source → classify → attribute (VERP, the list) → decide → remember → report
    landing.py   how the mail landed: what went out (the ledgers) beside what came back, per edition

The per-recipient return path itself (VERP) is signed on the send path, in `delivery.verp`.

Public face: the names in `__all__`; the CLI, the scheduler and the web webhooks import only these.
"""

from __future__ import annotations

from .classify import Classified, classify
from .landing import gather_landing
from .policy import BounceState, Decider, Decision, Event, Policy, open_bounce_state, state_path
from .run import BounceReport, configured, process, run_configured, scheduled_pass, source_from_settings
from .sources import SourceError

__all__ = [
    "BounceReport",
    "BounceState",
    "Classified",
    "Decider",
    "Decision",
    "Event",
    "Policy",
    "SourceError",
    "classify",
    "configured",
    "gather_landing",
    "open_bounce_state",
    "process",
    "run_configured",
    "scheduled_pass",
    "source_from_settings",
    "state_path",
]
