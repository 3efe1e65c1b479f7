"""Prometheus metrics: what the senders, the scheduler and the public app count, in one place.

In:  `setup(settings)` once per process (the CLI's `load` does it), then a handful of calls at clear points
     (a message's outcome, a finished build, a morning's outcome, a bounce run, a request).
Out: the Prometheus text format (`exposition()`), served by `newsletter serve` on `/metrics` (loopback only)
     and by `schedule`/`worker` with `--metrics-port`.

Every newsletter process on a host writes its counts into one folder (`[metrics] dir`, default
`data/metrics`) through prometheus-client's multiprocess mode, so the public app's `/metrics` adds up its
own workers, the morning run, `send` and `worker` alike, and a count survives the process that made it.
With `dir = ""` each process counts only for itself.

Label values are bounded: a list id, an edition date, a language, an outcome, a route template. Never a
reader's address, a story's title or a raw path.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .config import Settings

DIR_ENV = "NEWSLETTER_METRICS_DIR"  # the folder `serve` hands to its uvicorn worker processes
_CLIENT_ENV = "PROMETHEUS_MULTIPROC_DIR"  # where prometheus-client opens its files
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DURATIONS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class _Metrics:
    messages: Any
    send_rate: Any
    backlog: Any
    bounces: Any
    runs: Any
    last_good: Any
    build_seconds: Any
    render_seconds: Any
    requests: Any
    request_seconds: Any
    unsubscribes: Any
    signups: Any
    confirmations: Any
    confirmation_emails: Any


_state: dict[str, Any] = {}


def metrics_dir(settings: Settings) -> Path | None:
    """`[metrics] dir` (relative to the newsletter folder), `data/metrics` by default; None when set to ""."""
    raw = settings.section("metrics").get("dir", "data/metrics")
    if not isinstance(raw, str):
        from .errors import ConfigError

        raise ConfigError(f"{settings.config_file or 'newsletter.toml'}: [metrics] dir must be a string")
    if not raw:
        return None
    path = Path(raw)
    return path if path.is_absolute() else settings.root / path


def setup(settings: Settings) -> None:
    """Choose where this process counts: the folder a parent process named (`serve` for its workers), else
    `[metrics] dir`. Called again for another folder (tests invoking the CLI in one process), it starts
    counting there. A folder that cannot be made is no reason to stop a send: the process counts alone."""
    named = os.environ.get(DIR_ENV)
    folder = Path(named) if named else metrics_dir(settings)
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            folder = folder.resolve()
        except OSError:
            folder = None
    if "metrics" in _state and _state.get("folder") == folder:
        return
    _create(folder)


def folder() -> Path | None:
    """The folder this process counts into (None: in memory only)."""
    found = _state.get("folder")
    return found if isinstance(found, Path) else None


_env_lock = threading.Lock()


def _value_class(where: Path | None) -> Any:
    """prometheus-client's value class for `where`: its multiprocess files there, or plain memory.

    The client reads the folder from its environment variable when a value's file is first opened; it
    is set for that moment only, so the variable never leaks into other processes this one starts."""
    from prometheus_client import values

    if where is None:
        return values.MutexValue
    base: Any = values.MultiProcessValue()  # type: ignore[no-untyped-call]

    class _Pinned(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            with _env_lock:
                before = os.environ.get(_CLIENT_ENV)
                os.environ[_CLIENT_ENV] = str(where)
                try:
                    super().__init__(*args, **kwargs)
                finally:
                    if before is None:
                        del os.environ[_CLIENT_ENV]
                    else:
                        os.environ[_CLIENT_ENV] = before

    return _Pinned


def _create(where: Path | None = None) -> _Metrics:
    from prometheus_client import CollectorRegistry, values

    values.ValueClass = _value_class(where)  # read by each metric as its labelled values are made
    registry = CollectorRegistry(auto_describe=True)
    made = _Metrics(**_mailing_metrics(registry), **_web_metrics(registry))
    _state.update(metrics=made, registry=registry, folder=where)
    return made


def _mailing_metrics(registry: Any) -> dict[str, Any]:
    """What sending, bounce handling, the scheduler and the build count."""
    from prometheus_client import Counter, Gauge, Histogram

    edition = ("newsletter", "edition", "language")
    return dict(
        messages=Counter(
            "newsletter_messages",
            "Messages by outcome: sent, failed (refused for good), deferred (left pending), retried, suppressed.",
            (*edition, "outcome"),
            registry=registry,
        ),
        send_rate=Gauge(
            "newsletter_send_rate_messages_per_second",
            "Messages sent per second by the latest send run of an edition (so far, while it runs).",
            edition,
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
        backlog=Gauge(
            "newsletter_ledger_pending",
            "Recipients of an edition still pending in its ledger, as the latest sender saw it.",
            edition,
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
        bounces=Counter(
            "newsletter_bounces",
            "Bounce reports read, by kind: hard, soft, complaint, autoreply, unrecognised, malformed.",
            ("newsletter", "kind"),
            registry=registry,
        ),
        runs=Counter(
            "newsletter_scheduler_runs", "Scheduled mornings by outcome.", ("newsletter", "outcome"), registry=registry
        ),
        last_good=Gauge(
            "newsletter_last_good_morning_timestamp_seconds",
            "When the latest morning that completed (or was joined) ended, Unix time.",
            ("newsletter",),
            registry=registry,
            multiprocess_mode="max",
        ),
        build_seconds=Histogram(
            "newsletter_build_seconds",
            "Building an edition: stories read, selected, rendered.",
            ("newsletter", "language"),
            registry=registry,
            buckets=_DURATIONS,
        ),
        render_seconds=Histogram(
            "newsletter_render_seconds",
            "Rendering an edition's HTML and text (MJML, CSS inlining).",
            ("newsletter", "language"),
            registry=registry,
            buckets=_DURATIONS,
        ),
    )


def _web_metrics(registry: Any) -> dict[str, Any]:
    """What the public app counts."""
    from prometheus_client import Counter, Histogram

    return dict(
        requests=Counter(
            "newsletter_http_requests",
            "Public app requests by route template, method and status.",
            ("route", "method", "status"),
            registry=registry,
        ),
        request_seconds=Histogram(
            "newsletter_http_request_seconds",
            "Public app response time by route template.",
            ("route",),
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        ),
        unsubscribes=Counter(
            "newsletter_unsubscribes",
            "One-click unsubscribes recorded by the public app.",
            ("newsletter",),
            registry=registry,
        ),
        signups=Counter(
            "newsletter_signups", "Sign-up requests accepted by the public app.", ("newsletter",), registry=registry
        ),
        confirmations=Counter(
            "newsletter_confirmations", "Subscriptions confirmed by their reader.", ("newsletter",), registry=registry
        ),
        confirmation_emails=Counter(
            "newsletter_confirmation_emails",
            "Sign-up confirmation emails by outcome (sent, failed).",
            ("newsletter", "outcome"),
            registry=registry,
        ),
    )


def after_fork() -> None:
    """In a process forked from one that counted (a sender process, delivery/processes.py): its own values
    in the same folder. The inherited ones belong to the parent's files."""
    _create(folder())


def _m() -> _Metrics:
    found = _state.get("metrics")
    return found if isinstance(found, _Metrics) else _create()


def exposition() -> bytes:
    """Everything counted, in the Prometheus text format: every process's files when they are shared."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    _m()
    where = folder()
    if where is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(where))  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest(_state["registry"]))


def serve_metrics(port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Answer scrapes on http://host:port/metrics from a background thread (`schedule`, `worker`)."""

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition() if self.path.split("?")[0] in ("/metrics", "/") else b"not found\n"
            self.send_response(200 if body != b"not found\n" else 404)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            return

    server = ThreadingHTTPServer((host, port), _Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


# --- the counting points ------------------------------------------------------------------------------


class MessageCounter:
    """What the send loop calls with each outcome ("sent", "failed", …) and how many; it also keeps the
    edition's backlog gauge (`pending` at the start) moving.

    Outcomes are gathered in memory and written to the counters every FLUSH_SECONDS by a thread of its
    own (and at `close`): a shared-folder counter costs microseconds per write, which on a fast sink
    would cost more than the send itself. A scrape is at most that much behind the ledger."""

    FLUSH_SECONDS = 0.2

    def __init__(self, newsletter: str, edition: str, language: str, pending: int) -> None:
        m = _m()
        self._children = {
            outcome: m.messages.labels(newsletter, edition, language, outcome)
            for outcome in ("sent", "failed", "deferred", "retried", "suppressed")
        }
        self._backlog = m.backlog.labels(newsletter, edition, language)
        self._backlog.set(pending)
        self._rate = m.send_rate.labels(newsletter, edition, language)
        self._left = pending
        self._sent = 0
        self._started = time.monotonic()
        self._gathered: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
        self._thread.start()

    def __call__(self, outcome: str, n: int = 1) -> None:
        if outcome in self._children:
            with self._lock:
                self._gathered[outcome] = self._gathered.get(outcome, 0) + n

    def _run(self) -> None:
        while not self._closed.wait(self.FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            gathered, self._gathered = self._gathered, {}
        for outcome, n in gathered.items():
            self._children[outcome].inc(n)
            if outcome in ("sent", "failed", "suppressed"):
                self._left -= n
        if gathered:
            self._backlog.set(max(self._left, 0))  # "mostrecent" gauges are set, not decremented
        if gathered.get("sent"):
            self._sent += gathered["sent"]
            self._rate.set(self._sent / max(time.monotonic() - self._started, 1e-3))  # so far in this run

    def close(self) -> None:
        """Stop the thread and write what is gathered (safe to call twice)."""
        self._closed.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self.flush()


def message_counter(newsletter: str, edition: str, language: str, pending: int) -> MessageCounter:
    return MessageCounter(newsletter, edition, language, pending)


def send_finished(newsletter: str, edition: str, language: str, *, pending: int, sent: int, seconds: float) -> None:
    m = _m()
    m.backlog.labels(newsletter, edition, language).set(pending)
    if seconds > 0 and sent:
        m.send_rate.labels(newsletter, edition, language).set(sent / seconds)


def bounces(newsletter: str, counts: dict[str, int]) -> None:
    m = _m()
    for kind, n in counts.items():
        if n:
            m.bounces.labels(newsletter, kind).inc(n)


def scheduler_run(newsletter: str, outcome: str) -> None:
    m = _m()
    m.runs.labels(newsletter, outcome).inc()
    if outcome in ("completed", "joined"):
        m.last_good.labels(newsletter).set(time.time())


def build_timed(newsletter: str, language: str, *, build: float, render: float) -> None:
    """One edition built in `build` seconds, of which `render` rendering."""
    m = _m()
    m.build_seconds.labels(newsletter, language).observe(build)
    m.render_seconds.labels(newsletter, language).observe(render)


def request(route: str, method: str, status: int, seconds: float) -> None:
    m = _m()
    m.requests.labels(route, method, str(status)).inc()
    m.request_seconds.labels(route).observe(seconds)


def public_event(which: str, newsletter: str, outcome: str = "") -> None:
    """One unsubscribe, sign-up, confirmation or confirmation email ("unsubscribe", "signup", "confirm",
    "confirmation_email" with outcome "sent" or "failed")."""
    m = _m()
    if which == "confirmation_email":
        m.confirmation_emails.labels(newsletter, outcome or "sent").inc()
    else:
        {"unsubscribe": m.unsubscribes, "signup": m.signups, "confirm": m.confirmations}[which].labels(newsletter).inc()


__all__ = [
    "CONTENT_TYPE",
    "DIR_ENV",
    "MessageCounter",
    "after_fork",
    "bounces",
    "build_timed",
    "exposition",
    "folder",
    "message_counter",
    "metrics_dir",
    "public_event",
    "request",
    "scheduler_run",
    "send_finished",
    "serve_metrics",
    "setup",
]
