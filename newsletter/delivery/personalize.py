"""One message per subscriber, fast: the edition is rendered and compiled once, then only the personal parts change.

Rendering an edition (Jinja → MJML → HTML → inlined CSS) costs milliseconds; a newsletter goes to
hundreds of thousands of people. So the edition is rendered twice per run — once for subscribers with
a name, once for those without (the greeting differs) — with placeholder values for the personal parts.
The output is cut at the placeholders and the static pieces are quoted-printable encoded once; a
subscriber's message is those pieces joined with their own encoded To, Message-ID, List-Unsubscribe,
greeting name and unsubscribe token. Each piece ends with a soft line break, so no encoded line ever
passes 76 octets whatever is spliced in (RFC 5322 allows 998; MJML emits the HTML as one long line). In
the text part the greeting's whole line is rebuilt with the name in (`edition.personal_line`), so a long
name wraps and a name like `<b>x</b>` reads as plain text there, exactly as a full render has it.

The result must be the message a plain `EmailMessage` build gives (`naive_message`, kept for the
benchmark and as the fallback): `Personalizer` checks that on a few hostile probe subscribers when it
starts and falls back to rendering every message in full if custom templates use the personal values
in a way it cannot splice (a filter applied to the name, say).

Names are untrusted. `clean_name` drops control and format characters, collapses whitespace and caps the
length; `format_address` never lets one reach a header unescaped: ASCII names are atoms or a
quoted-string, anything else is one RFC 2047 encoded-word with no address syntax (`<>,;:@"…`) inside it,
and the character pair that starts an encoded-word (`=?`) is broken with an invisible U+2060 so a name
such as `=?utf-8?q?=0D=0ABcc:…?=` is shown as text instead of being decoded by a reader — or refolded
into a real header by Python 3.11.7's `email` package, which lacks the CVE-2024-6923 fix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.utils import format_datetime

import jinja2

from ..config import Settings
from ..edition import (
    AUTO_SUBMITTED,
    Edition,
    Personal,
    build_context,
    build_message,
    feedback_id,
    list_id_header,
    make_environment,
    personal_line,
    render_html,
    render_text,
    right_to_left,
)
from ..textutil import one_line
from .qp import dot_safe, end_soft
from .unsubscribe import ONE_CLICK, keyed, make_token, manage_base
from .verp import unsubscribe_mailbox

MAX_NAME = 100  # characters; a greeting, not a biography, and it keeps every header line short
_KEEP_FORMAT = {"\u200c", "\u200d"}  # ZWNJ/ZWJ: needed by Persian, Indic scripts and emoji sequences
_BREAK = "\u2060"  # WORD JOINER: invisible, and makes `=?` no longer the start of an encoded-word
_TEMPLATE_PAIR = re.compile(r"(?<=[{%])(?=[{%])|(?<=[}%])(?=[}%])")
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,"]')  # RFC 5322 specials but the harmless dot
_PHRASE_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
# Letters and digits only: Jinja escaping, MJML and the CSS inliner all leave them alone.
_NAME_MARK = "Zq9nlPersonalNameQx7"
_TOKEN_MARK = "Zq9nlPersonalTokenQx7"
_MARKS = re.compile(f"({_NAME_MARK}|{_TOKEN_MARK})")
_SOFT_BREAK = b"=\r\n"


# --- names and headers ------------------------------------------------------------------------------


def clean_name(raw: object) -> str:
    """A display name safe to show: no control, format (bidi override…) or unassigned characters, one line,
    nothing that reads as a template tag."""
    if not isinstance(raw, str) or not raw:
        return ""
    if (
        raw.isprintable()  # no control, format, private, unassigned or separator character but the space
        and len(raw) <= MAX_NAME
        and not raw.startswith(" ")
        and not raw.endswith(" ")
        and "  " not in raw
        and (raw.isascii() or unicodedata.is_normalized("NFC", raw))
    ):  # already clean, the common case: `_clean` would keep every character
        return _TEMPLATE_PAIR.sub(_BREAK, raw) if "{" in raw or "%" in raw else raw
    return _clean(raw)


def _clean(raw: str) -> str:
    text = unicodedata.normalize("NFC", raw)
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp"):
            kept.append(" ")
        elif cat in ("Cf", "Cs", "Co", "Cn") and ch not in _KEEP_FORMAT:
            continue
        else:
            kept.append(ch)
    name = " ".join("".join(kept).split())
    if len(name) > MAX_NAME:
        name = name[:MAX_NAME].rstrip()
    # `{{`, `{%`, `%}`, `}}` are broken with the invisible joiner: a name is never taken for a template
    # tag that failed to render, in either part (mail checkers look for exactly that).
    return _TEMPLATE_PAIR.sub(_BREAK, name)


def neutralize(value: str) -> str:
    """Break every `=?` and `?=` with an invisible character: the text can no longer be taken for an encoded-word."""
    if "=?" not in value and "?=" not in value:
        return value
    return value.replace("=?", f"={_BREAK}?").replace("?=", f"?{_BREAK}=")


def header_display_name(name: str) -> str:
    """The display name as it goes into To/From: cleaned, neutralized, and without address syntax if encoded.

    An encoded-word is decoded before some readers parse the address list (that is how the stdlib's own
    refolding goes wrong): `<`, `,`, `@`… inside one could make them see another recipient. So a name
    that needs encoding loses those characters in the header; the greeting in the body keeps them.
    """
    display = neutralize(clean_name(name))
    if not display.isascii():
        display = " ".join(_SPECIALS.sub(" ", display).split())
    return display


# RFC 2047 "Q" for a phrase: letters, digits and !*+-/ as they are, space as "_", every other octet =XX.
_Q = [
    chr(c) if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in b"!*+-/") else "_" if c == 32 else f"={c:02X}"
    for c in range(256)
]


def _encoded_word(text: str) -> str:
    raw = text.encode("utf-8")
    b = base64.b64encode(raw).decode("ascii")
    q = "".join(map(_Q.__getitem__, raw))
    return f"=?utf-8?q?{q}?=" if len(q) <= len(b) else f"=?utf-8?b?{b}?="


def format_address(name: str, address: str) -> str:
    """`Display Name <addr>` for a header, from an untrusted name and a validated ASCII address.

    A non-ASCII name becomes ONE encoded-word even when that is longer than RFC 2047's 75 characters:
    Python's address parser inserts a space between adjacent encoded-words of a display name, so
    splitting would not decode back exactly. Names are capped at MAX_NAME characters, so the header
    line stays far below RFC 5322's 998 octets.
    """
    display = header_display_name(name)
    if not display:
        return address
    if not display.isascii():
        phrase = _encoded_word(display)
    elif _PHRASE_ATOMS.fullmatch(display):
        phrase = display
    else:
        phrase = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{phrase} <{address}>"


def _header(name: str, value: str) -> bytes:
    """One header line; long values fold at their last space before the address or URL (never inside one)."""
    line = f"{name}: {value}"
    if len(line) > 78 and " <" in value:
        head, _, tail = value.rpartition(" <")
        line = f"{name}: {head}\r\n <{tail}"
    return line.encode("ascii") + b"\r\n"


def _static_header(name: str, value: str) -> bytes:
    """Headers that are the same for every subscriber, folded and encoded by the stdlib (inputs neutralized)."""
    _, header = policy.SMTP.header_store_parse(name, neutralize(one_line(value)))
    return str(policy.SMTP.fold(name, header)).encode("ascii")


def list_unsubscribe_value(settings: Settings, url: str, token: str, mailto: str | None = None) -> str:
    """RFC 2369: the https URL first (what RFC 8058 one-click uses), then the mailto (`mailto`, worked out
    once per edition; else `unsubscribe_mailbox`) with the subscriber's signed token in its subject."""
    mailto = unsubscribe_mailbox(settings) if mailto is None else mailto
    if not mailto:
        return f"<{url}>"
    if not mailto.lower().startswith("mailto:"):
        mailto = f"mailto:{mailto}"
    sep = "&" if "?" in mailto else "?"
    return f"<{url}>, <{mailto}{sep}subject=unsubscribe%20{token}>"


def message_id(settings: Settings, secret: bytes, day: str, address: str) -> str:
    """Stable per edition and recipient: a copy resent after a crash has the same id, so mailboxes fold the two.

    Keyed with the secret so the id does not reveal a guessable hash of the address.
    """
    mac = keyed(secret, b"message-id\0" + settings.list.id.encode() + b"\0" + day.encode() + b"\0").copy()
    mac.update(address.encode())
    digest = mac.digest()
    domain = settings.sender.address.rsplit("@", 1)[-1]
    return f"<{day}.{base64.b32encode(digest[:15]).decode('ascii').lower()}@{domain}>"


# --- quoted-printable pieces ------------------------------------------------------------------------


def _qp_static(text: str) -> bytes:
    """A static stretch of a body, quoted-printable, ending at the start of a line; no line starts with a dot."""
    data = binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    return dot_safe(data if data.endswith(b"\r\n") else end_soft(data))


def _qp_piece(text: str) -> bytes:
    """A personal value (one line): encoded on its own lines so it cannot stretch the lines around it."""
    if not text:
        return b""
    return dot_safe(end_soft(binascii.b2a_qp(text.encode("utf-8"), istext=False).replace(b"=\n", _SOFT_BREAK)))


def _escape_text(value: str) -> str:
    """How the CSS inliner's HTML serializer writes a text node (it re-serializes what Jinja escaped)."""
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attr(value: str) -> str:
    """An attribute value as it comes out of MJML (mrml doubles backslashes there) and the inliner."""
    return value.replace("\\", "\\\\").replace("&", "&amp;").replace("\xa0", "&nbsp;").replace('"', "&quot;")


# Slots of a body template: what goes where, per subscriber.
_NAME_TEXT, _NAME_ATTR, _TOKEN = range(3)


def _qp_lines(text: str) -> bytes:
    """A personal stretch of whole lines (no final line break), each line a personal value."""
    return b"\r\n".join(_qp_piece(line) for line in text.split("\n"))


def _cut(text: str, html: bool) -> list[bytes | int | str]:
    """Static pieces (encoded), slot numbers and, in the text part, the lines holding the name, in order.

    Such a line is kept whole (with its marks) because it is wrapped once the name is in: it is rebuilt
    per subscriber with `personal_line`, the filter the text template wraps the greeting with."""
    out: list[bytes | int | str] = []
    pos = 0
    for m in _MARKS.finditer(text):
        if m.start() < pos:  # inside a name line already taken whole
            continue
        if not html and m.group(1) == _NAME_MARK:
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            end = len(text) if end < 0 else end
            if start > pos:
                out.append(_qp_static(text[pos:start]))
            out.append(text[start:end])
            pos = end
            continue
        if m.start() > pos:
            out.append(_qp_static(text[pos : m.start()]))
        if m.group(1) == _TOKEN_MARK:
            out.append(_TOKEN)
        else:
            in_tag = text.rfind("<", 0, m.start()) > text.rfind(">", 0, m.start())
            out.append(_NAME_ATTR if in_tag else _NAME_TEXT)
        pos = m.end()
    if pos < len(text):
        out.append(_qp_static(text[pos:]))
    return out


def _normal_body(text: str) -> str:
    """What `EmailMessage.set_content` does to a text body: line ends normalized, one final newline."""
    return "\n".join(text.splitlines()) + "\n"


@dataclass
class _Template:
    text: list[bytes | int | str]
    html: list[bytes | int | str]


# --- the personalizer -------------------------------------------------------------------------------


class Personalizer:
    """Turns (address, name) into ready-to-send message bytes for one edition.

    `date` is the Date header of the run; `secret` signs unsubscribe tokens and Message-IDs.
    `fast` tells whether the splicing path is in use (see the module docstring); its messages are
    `dot_safe`: no line starts with a dot, so SMTP sends them without a stuffed copy.
    """

    def __init__(
        self,
        settings: Settings,
        edition: Edition,
        *,
        secret: bytes,
        date: datetime,
        env: jinja2.Environment | None = None,
        verify: bool = True,
    ) -> None:
        self.settings = settings
        self.edition = edition
        self.secret = secret
        self.date = date
        self.day = edition.date.isoformat()
        self.env = env or make_environment(settings)
        self.url_base = settings.list.unsubscribe_url
        self.manage_base = manage_base(settings)  # the manage page takes the unsubscribe link's token
        self.mailto = unsubscribe_mailbox(settings)
        self.sender = settings.sender.address
        named_ctx, named_html, named_text = self._render(_NAME_MARK)
        self._rtl = named_ctx.get("dir") == "rtl"  # its text lines are marked to read right to left
        _, unnamed_html, unnamed_text = self._render("")
        self.subject = str(named_ctx["subject"])
        self.feedback_id = feedback_id(settings, self.day)
        self.boundary = "=_nl_" + hashlib.sha256((named_html + "\0" + named_text).encode()).hexdigest()[:32]
        self._templates = {
            True: _Template(_cut(_normal_body(named_text), False), _cut(_normal_body(named_html), True)),
            False: _Template(_cut(_normal_body(unnamed_text), False), _cut(_normal_body(unnamed_html), True)),
        }
        self._head = _header("From", format_address(one_line(settings.sender.name), self.sender))
        self._after_to = _static_header("Subject", self.subject) + _header("Date", format_datetime(date))
        self._after_id = (
            _static_header("List-Id", list_id_header(settings))
            + (_header("Reply-To", settings.sender.reply_to) if settings.sender.reply_to else b"")
            + _header("Auto-Submitted", AUTO_SUBMITTED)
            + _header("Feedback-ID", self.feedback_id)
            + _static_header("Content-Language", settings.locale.replace("_", "-"))
        )
        self._tail = (
            _header("List-Unsubscribe-Post", ONE_CLICK)
            + b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative;\r\n boundary="{self.boundary}"\r\n\r\n'.encode("ascii")
            + f"--{self.boundary}\r\n".encode("ascii")
            + b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        )
        self._between = (
            f"\r\n--{self.boundary}\r\n".encode("ascii")
            + b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        )
        # The HTML body ends with a line break, which doubles as the one before the closing delimiter (as the
        # stdlib writes the last part).
        self._end = f"--{self.boundary}--\r\n".encode("ascii")
        self.fast = True
        self.mismatch: str | None = None
        if verify:
            self.mismatch = self._self_check()
            self.fast = self.mismatch is None

    @property
    def dot_safe(self) -> bool:
        return self.fast

    def _render(self, name: str) -> tuple[dict[str, object], str, str]:
        links = {"unsubscribe_url": self.url_base + _TOKEN_MARK, "manage_url": self.manage_base + _TOKEN_MARK}
        ctx = build_context(self.edition, self.settings, Personal(name=name, **links))
        return ctx, render_html(self.env, ctx, self.settings.root), render_text(self.env, ctx, self.settings.root)

    # The per-subscriber work: keep it lean, it runs hundreds of thousands of times.
    def message(self, address: str, name: str = "", *, msg_id: str | None = None) -> bytes:
        """The complete message for one subscriber (CRLF line ends, every line ≤ 998 octets).

        While `fast`, no line of it starts with a dot: SMTP can send it as it is (`Envelope.dot_safe`).
        """
        if not self.fast:
            return self.naive(address, name, msg_id=msg_id)
        name = clean_name(name)
        token = make_token(self.secret, self.settings.list.id, address)
        url = self.url_base + token
        slots = (
            _qp_piece(_escape_text(name)),
            _qp_piece(_escape_attr(name)),
            _qp_piece(token),
        )
        tpl = self._templates[bool(name)]
        out = [
            self._head,
            _header("To", format_address(name, address)),
            self._after_to,
            b"Message-ID: ",
            (msg_id or message_id(self.settings, self.secret, self.day, address)).encode("ascii"),
            b"\r\n",
            self._after_id,
            _header("List-Unsubscribe", list_unsubscribe_value(self.settings, url, token, self.mailto)),
            self._tail,
        ]
        for pieces in (tpl.text, tpl.html):
            for p in pieces:
                if isinstance(p, bytes):
                    out.append(p)
                elif isinstance(p, int):
                    out.append(slots[p])
                else:
                    line = personal_line(p.replace(_NAME_MARK, name).replace(_TOKEN_MARK, token))
                    out.append(_qp_lines(right_to_left(line) if self._rtl else line))
            if pieces is tpl.text:
                out.append(self._between)
        out.append(self._end)
        return b"".join(out)

    def naive(self, address: str, name: str = "", *, msg_id: str | None = None) -> bytes:
        """The same message the straightforward way: render, compile and build an `EmailMessage`."""
        name = clean_name(name)
        token = make_token(self.secret, self.settings.list.id, address)
        url = self.url_base + token
        personal = Personal(name=name, unsubscribe_url=url, manage_url=self.manage_base + token)
        ctx = build_context(self.edition, self.settings, personal)
        html = render_html(self.env, ctx, self.settings.root)
        text = render_text(self.env, ctx, self.settings.root)
        msg = build_message(
            settings=self.settings,
            subject=neutralize(str(ctx["subject"])),
            text=text,
            html=html,
            to=Address(display_name=header_display_name(name), addr_spec=address),
            date=self.date,
            message_id=msg_id or message_id(self.settings, self.secret, self.day, address),
            extra_headers={
                "List-Unsubscribe": list_unsubscribe_value(self.settings, url, token, self.mailto),
                "List-Unsubscribe-Post": ONE_CLICK,
                "Feedback-ID": self.feedback_id,
            },
        )
        return msg.as_bytes()

    def test_message_id(self) -> str:
        """A one-off Message-ID for test sends: never the one the real message will carry."""
        domain = self.sender.rsplit("@", 1)[-1]
        return f"<{self.day}.test.{secrets.token_hex(8)}@{domain}>"

    def _self_check(self) -> str | None:
        """None when the fast path builds what the naive path builds for hostile probes, else what differs."""
        probes = [
            ("probe@example.com", ""),
            ("probe.two@example.com", "Ann"),
            ("probe3@example.com", 'O\'Brien & <Sons> "Ltd" =?utf-8?q?=0D=0ABcc:_x@y.z?= José 用户 😀 \\ ;,'),
            ("probe4@example.com", "Ä" * MAX_NAME),
        ]
        for address, name in probes:
            diff = compare_messages(self.message(address, name), self.naive(address, name))
            if diff:
                return f"{address}: {diff}"
        return None


# --- comparing two messages ------------------------------------------------------------------------


@dataclass
class MessageView:
    """What a reader gets from a message: header values and decoded parts, independent of the encoding."""

    headers: list[tuple[str, str]]
    parts: list[tuple[str, str]]


def parsed_view(data: bytes, *, loose_names: bool = False) -> MessageView:
    """Parse `data` with the stdlib. `loose_names` compares To/From display names without their whitespace."""
    msg = message_from_bytes(data, policy=policy.default)
    headers = []
    for name, value in msg.items():
        key = name.lower()
        if loose_names and key in ("to", "from"):
            shown = ", ".join(f"{''.join(a.display_name.split())} <{a.addr_spec}>" for a in value.addresses)
            headers.append((key, shown))
        elif key == "content-type":  # the boundary is arbitrary
            headers.append((key, re.sub(r'boundary="[^"]*"', "boundary", str(value))))
        else:  # a long value the stdlib folds right after the colon reads back with a leading space
            headers.append((key, str(value).strip()))
    headers.sort()
    parts = [(p.get_content_type(), p.get_content()) for p in msg.walk() if not p.is_multipart()]
    return MessageView(headers, parts)


def compare_messages(fast: bytes, naive: bytes) -> str | None:
    """None when both messages read the same, else a short description of the first difference.

    Display names in To/From are compared without their whitespace: the stdlib folds a long non-ASCII
    name into several encoded-words, and then neither its own parser (which adds a space between them)
    nor an RFC 2047 decoder (which drops the space that was encoded between them) reads it back exactly.
    The fast path writes one encoded-word, which both read back exactly (tests/test_personalize.py).
    """
    a, b = parsed_view(fast, loose_names=True), parsed_view(naive, loose_names=True)
    if a.headers != b.headers:
        ha, hb = dict(a.headers), dict(b.headers)
        for key in sorted(set(ha) | set(hb)):
            if ha.get(key) != hb.get(key):
                return f"header {key}: {ha.get(key)!r} != {hb.get(key)!r}"
        return "header counts differ"
    if a.parts != b.parts:
        return "decoded parts differ"
    return None
