"""The delivery pipeline: one edition, one personalized message per subscriber, through a sink.

In:  an edition date (built by `edition`), a subscriber list, the settings.
Out: messages handed to a sink (outbox folder or SMTP) and, for every recipient, a row in the edition's
     ledger saying what happened; the suppression list grows with unsubscribes and bad addresses.

    subscribers.py   CSV / SQLite list → validated rows, streamed (bad rows reported by line)
    personalize.py   the edition rendered once → a message per subscriber (greeting, unsubscribe link)
    languages.py     each language edition to its readers (locale → edition), one ledger each
    send.py          the send loop: enrol, personalize, deliver through worker threads, record
                     (ratelimit.py: the send rate; progress.py: the operator's view; report.py: options
                     and the run's report)
    rows.py          the ledger as a run sees it: the list enrolled, pending rows handed out as messages
    sinks/           where messages go: outbox, smtp, memory, null — one small interface (sinks/base.py)
    ledger.py        the ledger: pending → sent / failed / skipped, resume after a crash; a SQLite file
                     per edition, or PostgreSQL
    sending.py       what the backends do differently: one sender per file, or a fleet claiming leases
    batching.py      outcomes written a ~50 ms window at a time
    stores.py        LedgerStore (the interface) and open_ledger (the backend the settings name)
    suppression.py   addresses never mailed again (unsubscribed, bounced); SQLite or PostgreSQL
    unsubscribe.py   signed tokens, RFC 8058 one-click handling
    verp.py          `bounces+{token}@…`: a signed return path per recipient, read back by `bounces`
    dkim.py          `[dkim]`: keys, and the Signer every message passes on its way to the sink
    breaker.py       the circuit breaker: pause a send that bounces or is refused for policy
    health.py        bounce and complaint rates beside the providers' limits; paused mailings
    doctor/          `newsletter doctor`: SPF, DKIM, DMARC, MX, the relay and the headers, checked

Public face: the names in `__all__`; the schedule and web subsystems import only these.
"""

from __future__ import annotations

from .addresses import check_address
from .dkim import (
    DKIM,
    PASSPHRASE_ENV,
    DkimOptions,
    Signer,
    generate_key,
    key_dir,
    load_key,
    signer_for,
    signing,
    txt_record,
    zone_line,
)
from .doctor import Checklist, doctor
from .health import Rates, day_rates, edition_rates, paused_mailings
from .languages import LanguageSend, ReaderFilter, language_status, reader_language, send_languages
from .ledger import Ledger, ledger_dir, ledger_name, ledger_path, parse_ledger_key, parse_ledger_name
from .options import MAILING, MailingOptions
from .personalize import clean_name
from .report import SendReport
from .send import ledger_report, send_edition, send_test
from .sinks import Envelope, Outcome, make_sink
from .sinks.smtp import SMTP, SmtpOptions, config_from_settings, smtp_config, smtp_url
from .stores import LedgerStore, ledger_exists, open_ledger, pending_editions
from .subscribers import (
    Subscriber,
    SubscriberSource,
    has_subscriber_list,
    reader_keys,
    store_source,
    subscriber_store,
)
from .suppression import Suppression, SuppressionList, open_suppression, suppression_path
from .unsubscribe import (
    SECRET_ENV,
    ForgedTokenError,
    MalformedTokenError,
    handle_request,
    make_token,
    secret_from_env,
    verify_token,
)
from .verp import EditionMark, ReturnPath, Verified, feedback_newsletter, newsletter_mark

__all__ = [
    "DKIM",
    "MAILING",
    "PASSPHRASE_ENV",
    "SECRET_ENV",
    "SMTP",
    "Checklist",
    "DkimOptions",
    "EditionMark",
    "Envelope",
    "ForgedTokenError",
    "LanguageSend",
    "Ledger",
    "LedgerStore",
    "MailingOptions",
    "MalformedTokenError",
    "Outcome",
    "Rates",
    "ReaderFilter",
    "ReturnPath",
    "SendReport",
    "Signer",
    "SmtpOptions",
    "Subscriber",
    "SubscriberSource",
    "Suppression",
    "SuppressionList",
    "Verified",
    "check_address",
    "clean_name",
    "config_from_settings",
    "day_rates",
    "doctor",
    "edition_rates",
    "feedback_newsletter",
    "generate_key",
    "handle_request",
    "has_subscriber_list",
    "key_dir",
    "language_status",
    "ledger_dir",
    "ledger_exists",
    "ledger_name",
    "ledger_path",
    "ledger_report",
    "load_key",
    "make_sink",
    "make_token",
    "newsletter_mark",
    "open_ledger",
    "open_suppression",
    "parse_ledger_key",
    "parse_ledger_name",
    "paused_mailings",
    "pending_editions",
    "reader_keys",
    "reader_language",
    "secret_from_env",
    "send_edition",
    "send_languages",
    "send_test",
    "signer_for",
    "signing",
    "smtp_config",
    "smtp_url",
    "store_source",
    "subscriber_store",
    "suppression_path",
    "txt_record",
    "verify_token",
    "zone_line",
]
