"""What a message in the bounce mailbox is: a bounce, a complaint, an auto-reply, or something else.

    classify(raw bytes) → Classified(kind, message_id, failures, complaints, headers_text, detail)

Pure: bytes in, a value out; no file, no network, no suppression list. The order of the checks matters:

1. RFC 5965 ARF (`multipart/report; report-type=feedback-report`): a complaint from a feedback loop.
2. RFC 3464 DSN (`multipart/report; report-type=delivery-status`): per recipient Action, Status and
   Diagnostic-Code. `failed` with 5.x.x is hard, `delayed` or 4.x.x is soft; X.2.2 (mailbox full) is soft
   whatever its class, as every provider treats it.
3. A `mailto:` unsubscribe request (RFC 2369 List-Unsubscribe, the fallback of providers without one-click):
   the subject `unsubscribe <token>` our messages' mailto carries; the run checks the token's signature.
4. RFC 3834 auto-replies (`Auto-Submitted` other than `no`, `X-Autoreply`, `X-Autorespond`,
   `Precedence: auto_reply`, the usual "Automatic reply" subjects) — but not from a mailer daemon: Exim
   marks its own bounces `Auto-Submitted: auto-replied`.
5. The non-standard formats of real MTAs (Exim, qmail, old Exchange, Yahoo, …), read by flufl.bounce's
   detectors rather than by regexes of our own — but only in a message from the mail system: a null
   return path (`Return-Path: <>`, present) or a mailer-daemon/postmaster sender. A reader who forwards
   a bounce ("Fwd: Undelivered Mail…", the report attached) sends a person's message: it stays
   unrecognised, its failures kept in `forwarded` so a verified return path token on the message itself
   (run.py) is the only thing that can still make it count.
6. Anything else is unrecognised and listed by Message-ID for a human to look at.

A message is never guessed at: a DSN recipient without a usable Action or Status, or a bounce whose
detector finds no address, names nobody and suppresses nobody — and each such recipient is named in
`problems`, as is a report that ends before its closing MIME boundary (a truncated copy), so the run
can leave an incomplete report in the mailbox instead of remembering it as handled.
"""

from __future__ import annotations

import email
import email.parser
import hashlib
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Literal

from flufl.bounce import all_failures

Kind = Literal["bounce", "complaint", "unsubscribe", "autoreply", "ignored", "unrecognised", "malformed"]

COMPLAINT_TYPES = ("abuse", "fraud")  # RFC 5965 types that are a reader's "this is spam"
_MAX_DIAGNOSTIC = 300
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_REPLY = re.compile(r"(?<!\d)[45]\d\d(?:[ -]|$)")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|mdaemon)@", re.IGNORECASE)
# What the `mailto:` of List-Unsubscribe asks for (`?subject=unsubscribe%20TOKEN`), as a mail client sends it.
_UNSUBSCRIBE_SUBJECT = re.compile(r"\s*unsubscribe\s+([A-Za-z0-9_-]{1,900}\.[A-Za-z0-9_-]{43})\s*", re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|r[ée]ponse automatique|auto:)",
    re.IGNORECASE,
)
# Headers of the bounce (and of the original message it carries) where a VERP return path shows up.
_ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to", "return-path", "cc")


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a bounce reports: its address as named, hard or soft, the status and the server's words."""

    address: str
    hard: bool
    status: str
    diagnostic: str
    original: str = ""  # the Original-Recipient of a DSN, when it differs from the final one


@dataclass
class Classified:
    kind: Kind
    message_id: str  # as in the header, or "sha256:…" of the bytes when the message has none
    detail: str = ""  # which format ("RFC 3464 DSN", "Exim", "ARF abuse"…) or, for malformed, what is wrong
    failures: list[Failure] = field(default_factory=list)
    complaints: list[str] = field(default_factory=list)  # addresses an ARF report names
    token: str = ""  # the signed token of a `mailto:` unsubscribe request (checked by the run, not here)
    envelope: str = ""  # header text where VERP return paths may appear (see verp.ReturnPath.find)
    has_message_id: bool = True
    problems: list[str] = field(default_factory=list)  # what makes the report incomplete, one line each
    outer_envelope: str = ""  # the same headers of the message itself only (not of what it carries)
    forwarded: list[Failure] = field(default_factory=list)  # a person's message that carries a bounce
    # The identifying headers of the message the report carries (ARF and DSNs attach ours): what says
    # which edition caused it when no return path token does. Message-ID, List-Id, Feedback-ID.
    original: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """A report with nothing missing: only such a report is remembered as handled."""
        return not self.problems and self.kind not in ("unrecognised", "malformed")


def _one_line(text: str, limit: int = _MAX_DIAGNOSTIC) -> str:
    """Collapse whitespace and control characters: a diagnostic is shown and stored as one line."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned[:limit]


def _text(value: object) -> str:
    """A header value as text; undecodable bytes (a wrong encoding) become U+FFFD, never an exception."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return str(value)


def _header(msg: Message, name: str) -> str:
    return _one_line(_text(msg.get(name, "")), 1000)


def _address_field(value: str) -> str:
    """`rfc822; user@example.org` → `user@example.org` (the address type is dropped, brackets too)."""
    _, sep, rest = value.partition(";")
    text = (rest if sep else value).strip().strip("<>").strip()
    return text if _ADDRESS.fullmatch(text) else ""


def _payload_text(part: Message) -> str:
    """A text part decoded with its declared charset, falling back to Latin-1; never raises."""
    try:
        raw = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: read what is there
        raw = None
    if not isinstance(raw, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, "replace")
    except LookupError:  # an unknown charset name
        return raw.decode("latin-1")


Parts = list[tuple[Message, str]]


def _parts(msg: Message) -> Parts:
    """Every part with its content type, worked out once: `get_content_type` is the costly call here."""
    return [(p, p.get_content_type()) for p in msg.walk() if isinstance(p, Message)]


def _report_type(msg: Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type", "") or "").lower()


def _outer_envelope(msg: Message) -> str:
    """The headers where a return path can appear, of the message itself (a person's own Return-Path is
    left out: it is theirs, not one of ours)."""
    names = [name for name in _ENVELOPE_HEADERS if name != "return-path"]
    return "\n".join(_text(v) for name in names for v in msg.get_all(name, []))


def _envelope_text(msg: Message, parts: Parts) -> str:
    """Every header where a return path can appear, of the bounce and of any message it carries."""
    lines: list[str] = []
    for part, kind in parts:
        if part is msg or kind in ("message/rfc822", "text/rfc822-headers"):
            for name in _ENVELOPE_HEADERS:
                lines.extend(_text(v) for v in part.get_all(name, []))
        if kind == "text/rfc822-headers":
            lines.append(_payload_text(part))
    return "\n".join(lines)


_ORIGINAL_HEADERS = ("message-id", "list-id", "feedback-id")


def _original(parts: Parts) -> dict[str, str]:
    """Message-ID, List-Id and Feedback-ID of the first message the report carries (whole, or its headers)."""
    for part, kind in parts[1:]:
        if kind == "message/rfc822":
            inner = part.get_payload()
            carried = inner[0] if isinstance(inner, list) and inner else None
        elif kind == "text/rfc822-headers":
            carried = email.parser.HeaderParser().parsestr(_payload_text(part))
        else:
            continue
        if isinstance(carried, Message):
            found = {name: _header(carried, name) for name in _ORIGINAL_HEADERS}
            return {name: value for name, value in found.items() if value}
    return {}


def _is_hard(status: str, action: str) -> bool:
    """5.x.x failed is hard; 4.x.x, `delayed`, and mailbox full (X.2.2) are soft."""
    if action == "delayed" or status.startswith("4"):
        return False
    return not status.endswith(".2.2")


def _dsn(parts: Parts) -> tuple[list[Failure], list[str]]:
    """(failures, problems) of an RFC 3464 report: one Failure per failed or delayed recipient."""
    failures: list[Failure] = []
    problems: list[str] = []
    for part, kind in parts:
        if kind not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            problems.append("delivery-status part is not a list of fields")
            continue
        for block in blocks[1:]:  # the first block is about the message, the rest one per recipient
            if not isinstance(block, Message):
                continue
            action = _header(block, "Action").lower().split(" ")[0]
            final = _address_field(_header(block, "Final-Recipient"))
            original = _address_field(_header(block, "Original-Recipient"))
            if not action and (final or original):
                problems.append(f"{final or original}: no Action (a cut-off report?)")
                continue
            if action not in ("failed", "delayed"):
                continue  # delivered, relayed, expanded: not a bounce
            if not (final or original):
                problems.append("a recipient block names no valid Final-Recipient")
                continue
            status_match = _STATUS.search(_header(block, "Status"))
            if status_match is None:
                problems.append(f"{final or original}: no valid Status ({_header(block, 'Status')!r})")
                continue
            status = status_match.group(0)
            if status.startswith("2"):
                continue
            diagnostic = _header(block, "Diagnostic-Code")
            kind, sep, rest = diagnostic.partition(";")
            if sep and " " not in kind.strip():
                diagnostic = rest.strip()
            failures.append(
                Failure(
                    final or original,
                    _is_hard(status, action),
                    status,
                    _one_line(diagnostic or f"{action} {status}"),
                    original if original and final and original.lower() != final.lower() else "",
                )
            )
    return failures, problems


def _arf(parts: Parts) -> tuple[str, list[str]]:
    """(feedback type, complained addresses) of an RFC 5965 report."""
    feedback_type = ""
    addresses: list[str] = []
    for part, kind in parts:
        if kind == "message/feedback-report":
            fields = part.get_payload()
            block = fields[0] if isinstance(fields, list) and fields else None
            if isinstance(block, Message):
                feedback_type = _header(block, "Feedback-Type").lower()
                for value in block.get_all("Original-Rcpt-To", []) + block.get_all("Removal-Recipient", []):
                    address = _address_field(_text(value))
                    if address and address.lower() not in (a.lower() for a in addresses):
                        addresses.append(address)
        elif kind == "message/rfc822" and not addresses:
            inner = part.get_payload()
            original = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(original, Message):
                found = _ADDRESS.findall(_header(original, "To"))
                if len(found) == 1:  # one message per recipient: one To; more would be a guess
                    addresses.append(found[0])
    return feedback_type, addresses


def _auto_reply(msg: Message) -> str:
    """Why `msg` is an RFC 3834 auto-reply, or "" when it is not one."""
    sender = " ".join(_ADDRESS.findall(_header(msg, "From")))
    if _DAEMON.match(sender) or msg.get("X-Failed-Recipients"):
        return ""
    submitted = _header(msg, "Auto-Submitted").lower()
    if submitted and not submitted.startswith("no"):
        return f"Auto-Submitted: {submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse"):
        if msg.get(name):
            return name
    if _header(msg, "Precedence").lower() == "auto_reply":
        return "Precedence: auto_reply"
    if _AUTO_SUBJECT.match(_header(msg, "Subject")):
        return "subject"
    return ""


def _diagnostic_near(body: str, address: str) -> tuple[str, str]:
    """(status, diagnostic line) in a non-standard bounce: the first SMTP reply after the address."""
    lines = body.splitlines()
    start = next((i for i, line in enumerate(lines) if address.lower() in line.lower()), 0)
    for line in lines[start:] + lines[:start]:
        status = _STATUS.search(line)
        if status or _SMTP_REPLY.search(line.strip()[:4]) or "(#" in line:
            return (status.group(0) if status else ""), _one_line(line)
    return "", ""


def from_mail_system(msg: Message) -> bool:
    """Whether a message comes from the mail system: a null return path (the header present and empty,
    RFC 5321 4.5.5) or a mailer-daemon/postmaster sender. A subject says nothing (a reader's "Fwd:
    Undelivered Mail…" has one), nor does a missing Return-Path (a message copied in by hand has none)."""
    paths = [_text(v).strip() for v in msg.get_all("Return-Path", [])]
    if paths and all(p.strip("<> \t") == "" for p in paths):
        return True
    return bool(_DAEMON.match(" ".join(_ADDRESS.findall(_header(msg, "From")))))


def _heuristic(msg: Message, parts: Parts) -> tuple[list[Failure], str]:
    temporary, permanent = all_failures(msg)
    if not (temporary or permanent):
        return [], ""
    body = "\n".join(_payload_text(p) for p, kind in parts if kind.startswith("text/") and not p.is_multipart())
    failures: list[Failure] = []
    for raw, hard in [(a, True) for a in sorted(permanent)] + [(a, False) for a in sorted(temporary)]:
        address = raw.decode("ascii", "replace")
        if not _ADDRESS.fullmatch(address):
            continue
        status, diagnostic = _diagnostic_near(body, address)
        if status:
            hard = hard and _is_hard(status, "failed")
        failures.append(Failure(address, hard, status or ("5.0.0" if hard else "4.0.0"), diagnostic or "(none given)"))
    sender = _header(msg, "From")
    if msg.get("X-Failed-Recipients"):
        detail = "Exim"
    elif "qmail" in body[:2000].lower():
        detail = "qmail"
    elif "MSEXCH" in body or "did not reach the following recipient" in body:
        detail = "Exchange"
    else:
        detail = f"non-standard bounce from {_one_line(sender, 80) or 'unknown sender'}"
    return failures, detail


def _truncated(parts: Parts) -> bool:
    """A multipart part that ends before its closing boundary: the copy was cut off somewhere."""
    return any(
        type(defect).__name__ == "CloseBoundaryNotFoundDefect" for part, _kind in parts for defect in part.defects
    )


def _structure_problem(msg: Message, raw: bytes) -> str:
    """What makes `msg` unreadable as mail, or "" when it is readable enough to classify."""
    if not raw.strip():
        return "empty message"
    if not msg.keys():
        return "no header fields"
    for defect in msg.defects:
        name = type(defect).__name__
        if name in ("MissingHeaderBodySeparatorDefect", "NoBoundaryInMultipartDefect", "StartBoundaryNotFoundDefect"):
            return f"broken MIME structure ({name.removesuffix('Defect')})"
    return ""


def message_id_of(msg: Message | None, raw: bytes) -> tuple[str, bool]:
    """(Message-ID, whether the message had one): a message without one is known by its digest."""
    if msg is not None:
        value = _header(msg, "Message-ID")
        if value:
            return value[:500], True
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32], False


def classify(raw: bytes) -> Classified:
    """Read one message of the bounce mailbox. Never raises: unreadable input is `kind="malformed"`."""
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # the stdlib parser is lenient; this is a last line of defence
        mid, has = message_id_of(None, raw)
        return Classified("malformed", mid, f"cannot parse ({type(exc).__name__})", has_message_id=has)
    mid, has = message_id_of(msg, raw)
    result = Classified("unrecognised", mid, has_message_id=has)
    problem = _structure_problem(msg, raw)
    if problem:
        result.kind, result.detail = "malformed", problem
        return result
    try:
        parts = _parts(msg)
        result.envelope = _envelope_text(msg, parts)
        report = _report_type(msg)
        if report in ("feedback-report", "delivery-status"):
            result.original = _original(parts)
        if report == "feedback-report":
            feedback_type, addresses = _arf(parts)
            if feedback_type in COMPLAINT_TYPES:
                result.kind, result.detail, result.complaints = "complaint", f"ARF {feedback_type}", addresses
            else:
                result.kind, result.detail = "ignored", f"ARF report of type {feedback_type or '(none)'}"
            return result
        if report == "delivery-status":
            failures, problems = _dsn(parts)
            if _truncated(parts):
                problems.append("the report ends before its closing MIME boundary (a cut-off copy?)")
            result.problems = problems
            if failures:
                result.kind, result.detail, result.failures = "bounce", "RFC 3464 DSN", failures
            elif problems:
                result.kind, result.detail = "malformed", "DSN: " + "; ".join(problems[:3])
            else:
                result.kind, result.detail = "ignored", "DSN without a failed or delayed recipient"
            return result
        wanted = _UNSUBSCRIBE_SUBJECT.fullmatch(_header(msg, "Subject"))
        if wanted and not from_mail_system(msg):
            result.kind, result.detail, result.token = "unsubscribe", "List-Unsubscribe mailto request", wanted[1]
            return result
        why = _auto_reply(msg)
        if why:
            result.kind, result.detail = "autoreply", why
            return result
        failures, detail = _heuristic(msg, parts)
        if failures and from_mail_system(msg):
            result.kind, result.detail, result.failures = "bounce", detail, failures
        elif failures:
            result.detail = "carries a bounce but does not come from the mail system (forwarded by a person?)"
            result.forwarded = failures
            result.outer_envelope = _outer_envelope(msg)
    except Exception as exc:  # a detector tripping over odd input must not stop the run
        result.kind, result.detail = "malformed", f"cannot read ({type(exc).__name__}: {_one_line(str(exc), 120)})"
    return result
