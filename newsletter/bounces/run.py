"""One pass over the bounce mailbox: read, classify, attribute, decide, remember, report.

    source_from_settings(settings, maildir=…, mbox=…)   the `[bounces]` table (or a flag) → a Source
    process(settings, source, …) → BounceReport          the whole run; `dry_run` writes nothing anywhere
    run_configured(settings) → BounceReport | None       what the scheduler calls (None: not configured)

Attribution, the step between "this is a bounce" and "suppress that address": a genuine VERP token in
the headers names the subscriber, whatever the body says (an alias, nothing at all). Without one, each
address the report names must be on the subscriber list — the one `send` mails: `--subscribers`, else
`[mailing] subscribers`, else the subscriber store. An address that is not is reported and left alone,
as is a report that names nobody. Nothing is suppressed on a guess.

Nothing is lost either: a message is remembered (by Message-ID) and moved or flagged only once it was
handled completely. A report that could not be matched, that is cut off or names a recipient without a
usable status, and anything unrecognised stays in the mailbox, is listed, and is read again by the next
run (deciding again is harmless: a suppression is kept once, a soft bounce counts once per report). A
Message-ID remembered for a report that asked for nothing never hides a later copy that does.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import metrics
from ..config import Settings
from ..delivery import (
    MAILING,
    SECRET_ENV,
    MailingOptions,
    ReturnPath,
    SubscriberSource,
    has_subscriber_list,
    open_suppression,
    reader_keys,
    verify_token,
)
from ..errors import ConfigError, NewsletterError, TokenError
from ..logs import mask_addresses
from .classify import Classified, Failure, classify
from .editions import EditionFinder
from .policy import BounceState, Decider, Decision, EditionRef, Event, Policy, open_bounce_state
from .sources import ImapConfig, ImapSource, MaildirSource, MboxSource, Source, SourceError

PASSWORD_ENV = "NEWSLETTER_BOUNCES_PASSWORD"
KEYS = {
    "source", "path", "host", "port", "user", "folder", "tls", "ca_file", "processed", "processed_folder",
    "soft_limit", "soft_days", "state", "hourly",
}  # fmt: skip
MAX_LISTED = 50  # lines of each kind kept for the report; the counts are always complete


@dataclass
class BounceReport:
    source: str = ""
    dry_run: bool = False
    read: int = 0
    bounces: int = 0  # messages that are bounces (RFC 3464 DSNs and the non-standard kinds)
    dsns: int = 0  # of which standard RFC 3464 reports
    hard: int = 0  # failed recipients, hard
    soft: int = 0
    complaints: int = 0
    unsubscribes: int = 0  # List-Unsubscribe mailto requests
    autoreplies: int = 0
    unrecognised: int = 0
    malformed: int = 0
    ignored: int = 0  # well-formed reports that ask for nothing (a `delivered` DSN, a not-spam ARF)
    already: int = 0  # handled by an earlier run (same Message-ID)
    left: int = 0  # left in the mailbox for the next run (unmatched, incomplete) or for a person
    decisions: list[Decision] = field(default_factory=list)
    unrecognised_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each: malformed, unmatched, unreadable
    error: str = ""  # the source failed part-way (the counts cover what was read before)

    @property
    def suppressed(self) -> int:
        return sum(d.outcome in ("suppressed", "would suppress") for d in self.decisions)

    def problem(self, line: str) -> None:
        if len(self.problems) < MAX_LISTED:
            self.problems.append(line)

    def summary(self) -> str:
        verb = "would be suppressed (dry run)" if self.dry_run else "suppressed"
        return (
            f"{self.source}: read {self.read} message(s): {self.bounces} bounce(s) ({self.dsns} RFC 3464 DSN), "
            f"{self.hard} hard, {self.soft} soft, {self.complaints} complaint(s), "
            + (f"{self.unsubscribes} unsubscribe request(s), " if self.unsubscribes else "")
            + f"{self.autoreplies} auto-reply(ies), "
            f"{self.unrecognised} unrecognised, {self.malformed} malformed, {self.ignored} ignored, "
            f"{self.already} already handled; {self.suppressed} address(es) {verb}"
            + (f"; {self.left} left in the mailbox" if self.left else "")
        )


def _choice(table: dict[str, Any], key: str, options: tuple[str, ...], default: str) -> str:
    value = str(table.get(key, default)).strip().lower()
    if value not in options:
        raise ConfigError(f"[bounces] {key} must be one of {', '.join(options)}, got {table.get(key)!r}")
    return value


def configured(settings: Settings) -> bool:
    """True when `[bounces]` names a mailbox (what makes the scheduler read it)."""
    table = settings.section("bounces")
    return bool(table.get("host") or table.get("path"))


def source_from_settings(settings: Settings, *, maildir: Path | None = None, mbox: Path | None = None) -> Source:
    """The source a flag names, else the one `[bounces]` configures; ConfigError when there is none."""
    table = settings.section("bounces")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ConfigError(f"[bounces]: unknown setting '{unknown[0]}' (known: {', '.join(sorted(KEYS))})")
    Policy.from_settings(settings)  # a bad policy value is reported before any mailbox is opened
    processed = _choice(table, "processed", ("move", "flag"), "move")
    folder = str(table.get("processed_folder", "processed")).strip() or "processed"
    if maildir is not None:
        return MaildirSource(maildir, processed, folder)  # type: ignore[arg-type]
    if mbox is not None:
        return MboxSource(mbox)
    default_kind = "imap" if table.get("host") else ("maildir" if table.get("path") else "")
    kind = _choice(table, "source", ("imap", "maildir", "mbox"), default_kind) if table.get("source") else default_kind
    if not kind:
        raise ConfigError("no bounce mailbox: give --maildir DIR or --mbox FILE, or set [bounces] host or path")
    if kind in ("maildir", "mbox"):
        raw = table.get("path")
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"[bounces] path must name the {kind} to read")
        path = (settings.root / raw).expanduser()
        return MaildirSource(path, processed, folder) if kind == "maildir" else MboxSource(path)  # type: ignore[arg-type]
    host, user = str(table.get("host", "")).strip(), str(table.get("user", "")).strip()
    if not host or not user:
        raise ConfigError("[bounces] an IMAP mailbox needs host and user (the password comes from the environment)")
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise ConfigError(f"{PASSWORD_ENV} is not set: the password of the IMAP bounce mailbox {user}@{host}")
    tls = _choice(table, "tls", ("imaps", "starttls"), "imaps")
    port = settings.table("bounces").whole("port", 993 if tls == "imaps" else 143, 1, 65535)
    ca_file = table.get("ca_file") or None
    return ImapSource(
        ImapConfig(
            host=host,
            user=user,
            password=password,
            folder=str(table.get("folder", "INBOX")),
            port=port,
            tls=tls,  # type: ignore[arg-type]
            ca_file=str((settings.root / str(ca_file)).resolve()) if ca_file else None,
            processed=processed,  # type: ignore[arg-type]
            processed_folder=folder,
        )
    )


def _subscriber_keys(settings: Settings, spec: str | None) -> set[str] | None:
    """Lower-cased addresses of the list `send` mails (None when there is none at all)."""
    spec = spec or settings.options(MAILING).subscribers
    if spec:
        return {s.address.lower() for s in SubscriberSource(str(spec), settings.root)}
    if not has_subscriber_list(settings):
        return None
    return reader_keys(settings)


def _verp(mailing: MailingOptions) -> tuple[ReturnPath | None, bytes]:
    template = mailing.return_path or ""
    path = ReturnPath.parse(template) if template else None
    return path, os.environ.get(SECRET_ENV, "").encode("utf-8")


def _diagnostic(failure: Failure) -> str:
    """The server's words, led by the status code unless they already carry it."""
    if failure.status in failure.diagnostic:
        return failure.diagnostic
    return f"{failure.status} {failure.diagnostic}"


_ACTING = ("bounce", "complaint", "unsubscribe")


class _Run:
    def __init__(self, settings: Settings, report: BounceReport, decider: Decider, members: set[str] | None) -> None:
        self.settings = settings
        self.report = report
        self.decider = decider
        self.members = members
        self.verp, self.secret = _verp(settings.options(MAILING))
        self.editions = EditionFinder(settings)
        self.edition: EditionRef | None = None  # the edition of the report being handled
        if self.verp is not None and not self.secret:
            report.problem(f"{SECRET_ENV} is not set: return path tokens cannot be checked; matching the list only")

    def _attribute(self, found: Classified, envelope: str | None = None) -> list[str]:
        """The one subscriber a genuine return path token names (else []); the edition it carries, else
        the one the original message's headers name, goes to `self.edition` (editions.py)."""
        self.edition = self.editions.from_original(found.original)
        if self.verp is None or not self.secret:
            return []
        text = found.envelope if envelope is None else envelope
        verified, forged = self.verp.read(text, self.secret, self.settings.list.id)
        if forged:
            self.report.problem(f"{found.message_id}: {forged} return path token(s) do not verify; not used")
        addresses = list(dict.fromkeys(v.address for v in verified))
        if len(addresses) != 1:  # one message, one recipient: two would be a guess
            return []
        self.edition = self.editions.from_tokens(verified) or self.edition
        return addresses

    def _member(self, *candidates: str) -> str:
        for candidate in candidates:
            if candidate and self.members is not None and candidate.lower() in self.members:
                return candidate
        return ""

    def _unmatched(self, found: Classified, address: str, what: str) -> None:
        if not address:
            why = f"{what} names no address and carries no return path token"
        elif self.members is None:
            why = f"{what} for {address}: no subscriber list to match it against (--subscribers, or the store)"
        else:
            why = f"{what} for {address}: not on the subscriber list"
        self.report.problem(f"{found.message_id}: {why}; nothing suppressed, left for the next run")

    def handle(self, found: Classified) -> bool:
        """Count and act on one message; True when it was handled completely (remember it, move it)."""
        report, mid = self.report, found.message_id
        self.edition = None
        for line in found.problems:
            report.problem(f"{mid}: {line}; left in the mailbox")
        if found.kind == "bounce":
            return self._bounce(found, found.failures, self._attribute(found)) and found.complete
        if found.kind == "complaint":
            report.complaints += 1
            verp = self._attribute(found)
            targets = verp or [a for a in (self._member(c) for c in found.complaints) if a]
            if not targets:
                self._unmatched(found, ", ".join(found.complaints), "complaint")
            for address in targets:
                self._decide(address, "complaint", found.detail, mid)
            return bool(targets) and (bool(verp) or len(targets) == len(found.complaints))
        if found.kind == "unsubscribe":
            return self._unsubscribe(found)
        if found.kind == "autoreply":
            report.autoreplies += 1
        elif found.kind == "ignored":
            report.ignored += 1
        elif found.kind == "malformed":
            report.malformed += 1
            report.problem(f"{mid}: malformed: {found.detail}; skipped")
        elif found.forwarded and (verp := self._attribute(found, found.outer_envelope)):
            return self._bounce(found, found.forwarded, verp)  # sent to one of our return paths: the token decides
        else:
            report.unrecognised += 1
            if found.forwarded:
                report.problem(f"{mid}: {found.detail}; nothing suppressed, left for a person")
            if len(report.unrecognised_ids) < MAX_LISTED:
                report.unrecognised_ids.append(mid)
        return found.complete

    def _unsubscribe(self, found: Classified) -> bool:
        """A `mailto:` unsubscribe request: the signed token in its subject names the subscriber (a From
        can be forged; the token cannot), so whoever holds the email can leave, and nobody else."""
        self.report.unsubscribes += 1
        if not self.secret:
            self.report.problem(f"{found.message_id}: unsubscribe request: {SECRET_ENV} is not set to check it")
            return False
        try:
            address = verify_token(self.secret, self.settings.list.id, found.token)
        except TokenError as exc:
            self.report.problem(f"{found.message_id}: unsubscribe request: {exc}; nothing done, left for a person")
            return False
        self._decide(address, "unsubscribe", "List-Unsubscribe mailto request", found.message_id)
        return True

    def _bounce(self, found: Classified, failures: list[Failure], verp: list[str]) -> bool:
        report, mid = self.report, found.message_id
        report.bounces += 1
        report.dsns += found.detail == "RFC 3464 DSN"
        report.hard += sum(f.hard for f in failures)
        report.soft += sum(not f.hard for f in failures)
        if verp:  # every failure of a one-recipient message is that recipient's
            worst = next((f for f in failures if f.hard), failures[0])
            self._decide(verp[0], "hard" if worst.hard else "soft", _diagnostic(worst), mid)
            return True
        matched = True
        for failure in failures:
            address = self._member(failure.original, failure.address)
            if not address:
                self._unmatched(found, failure.address, f"{'hard' if failure.hard else 'soft'} bounce")
                matched = False
                continue
            self._decide(address, "hard" if failure.hard else "soft", _diagnostic(failure), mid)
        return matched

    def _decide(self, address: str, event: Event, diagnostic: str, message_id: str) -> None:
        edition = self.edition if event != "unsubscribe" else None
        decision = self.decider.decide(address, event, diagnostic.strip(), message_id, edition=edition)
        self.report.decisions.append(decision)


def _already(state: BounceState, found: Classified) -> bool:
    """Handled before: the Message-ID is remembered, and not for a report that asked for nothing while
    this copy asks for something (a cut-off or broken copy must never hide the complete one)."""
    earlier = state.kind_of(found.message_id)
    if earlier is None:
        return False
    return earlier in _ACTING or found.kind not in _ACTING


def process(
    settings: Settings,
    source: Source,
    *,
    dry_run: bool = False,
    subscribers: str | None = None,
    now: datetime | None = None,
) -> BounceReport:
    """Read every new message of `source` once; see the module docstring. A source that fails part-way
    sets `report.error` (one line) and keeps everything handled before; nothing here raises for one message."""
    report = BounceReport(source=source.name, dry_run=dry_run)
    members = _subscriber_keys(settings, subscribers)
    with (
        open_bounce_state(settings) as state,
        open_suppression(settings) as suppression,
        source,
    ):
        decider = Decider(Policy.from_settings(settings), state, suppression, dry_run=dry_run, source="bounce report")
        run = _Run(settings, report, decider, members)
        try:
            for item in source.items():
                report.read += 1
                if item.data is None:
                    report.malformed += 1
                    report.left += 1
                    report.problem(f"{source.name} {item.ref}: {item.problem}")
                    continue
                found = classify(item.data)
                if _already(state, found):
                    report.already += 1
                elif run.handle(found):
                    if not dry_run:
                        state.remember(found.message_id, found.kind, now or datetime.now(UTC))
                else:
                    report.left += 1  # unmatched, incomplete or for a person: it stays where it is
                    continue
                if not dry_run:
                    source.done(item.ref)
        except SourceError as exc:
            report.error = str(exc)
    if not dry_run:
        kinds = {"hard": report.hard, "soft": report.soft, "complaint": report.complaints}
        kinds.update(autoreply=report.autoreplies, unrecognised=report.unrecognised, malformed=report.malformed)
        kinds["unsubscribe"] = report.unsubscribes
        metrics.bounces(settings.list.id, kinds)
    return report


def run_configured(settings: Settings, *, dry_run: bool = False) -> BounceReport | None:
    """The configured mailbox, read once (the scheduler's hook); None when `[bounces]` names none."""
    if not configured(settings):
        return None
    return process(settings, source_from_settings(settings), dry_run=dry_run)


def scheduled_pass(settings: Settings, log: logging.Logger) -> BounceReport | None:
    """One run for the scheduler: logs its summary and problems, never raises (a broken mailbox must not
    cost the morning its email). None when `[bounces]` names no mailbox."""
    if not configured(settings):
        return None
    try:
        report = run_configured(settings)
    except NewsletterError as exc:
        log.error("bounces: %s", exc)
        return None
    except Exception:  # a bug, not an operating condition: keep the traceback, carry on
        log.exception("bounces: the run failed unexpectedly")
        return None
    if report is None:
        return None
    for line in report.problems[:10]:  # an unmatched report names its address: the domain is enough here
        log.warning("bounces: %s", mask_addresses(line))
    log.log(logging.ERROR if report.error else logging.INFO, "bounces: %s", report.summary())
    if report.error:
        log.error("bounces: %s", report.error)
    return report
