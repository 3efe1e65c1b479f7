"""The sink interface: where finished messages go. A new sink is one subclass of `Sink`.

    open()          connect / prepare; raise DeliveryError when the sink cannot deliver at all
    send(envelope)  deliver one message, blocking; return an Outcome (never raise for one bad message;
                    raise DeliveryError when no message can go any more, e.g. `WriteError` for a
                    local folder that cannot be written)
    close()         release connections; safe to call twice
    describe()      one line for logs and summaries (never a secret)

`concurrency` says how many `send` calls the sink takes at once, from different threads: the send loop
runs that many workers. A sink whose `send` is quick and local (`inline = True`, one at a time) is
called from the loop's own thread instead: handing each message to a worker would cost more than
sending it. Retries, backoff, rate limits and the ledger are the loop's business, not the
sink's, so every sink gets them for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["sent", "transient", "permanent"]
Stage = Literal["", "connect", "mail", "rcpt", "data"]


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str  # the envelope sender (MAIL FROM), where bounces go
    recipient: str  # the one recipient (RCPT TO)
    data: bytes  # the whole message, CRLF line ends
    key: str = ""  # a stable name for the message within its edition (outbox file names)
    # No line of `data` starts with a dot, so SMTP sends it without dot-stuffing a copy (the personalizer's
    # messages are; a step that rewrites `data`, such as a signature header, keeps it so by adding no such line).
    dot_safe: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    code: int | None = None  # the SMTP reply code, when there was one
    reply: str = ""  # what the server said, or what went wrong, on one line
    reachable: bool = True  # False when the server could not even be reached (connection refused, DNS, …)
    stage: Stage = ""  # where the reply came: at connect, to MAIL FROM, RCPT TO, DATA (or its end); "" unknown

    @property
    def sent(self) -> bool:
        return self.status == "sent"


class Sink:
    """Base class; see the module docstring for the contract."""

    concurrency: int = 1
    inline: bool = False  # send() never waits on a network: no worker threads when concurrency is 1

    def open(self) -> None:
        """Prepare to send; raise `DeliveryError` when nothing can be delivered."""

    def send(self, envelope: Envelope) -> Outcome:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources."""

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self) -> Sink:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
