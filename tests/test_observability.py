"""Metrics and logs as an operator sees them: `/metrics` of a real `newsletter serve --workers 2` scraped
while a real `newsletter send` runs and a reader signs up; JSON log lines of a real scheduled morning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from newsletter.config import load_settings
from newsletter.delivery import ledger_report
from newsletter.delivery.batching import FLUSH_SECONDS
from tests.helpers import copy_demo_stories, free_port
from tests.test_backup import GATE_AFTER, READERS, GatedSmtp
from tests.test_web_app import SECRET, PublicServer, clean_env, confirmation_mail, subscribe

EDITION = date(2016, 12, 30)
LIST_ID = "morning-brief.newsletter.example.org"
SEND = [sys.executable, "-m", "newsletter", "send", "--subscribers", "subscribers.csv"]
JSON_WORKER = [sys.executable, "-m", "newsletter", "--log-format", "json", "worker"]
JSON_SCHEDULE = [sys.executable, "-m", "newsletter", "--log-format", "json", "schedule"]


def scrape(server: PublicServer, **headers: str) -> httpx.Response:
    return httpx.get(server.url + "/metrics", headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels (0 when it was never counted)."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def folder_text(folder: Path) -> str:
    """What a metrics folder holds, read the way a scrape reads it."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return generate_latest(registry).decode()


def sent_in_ledger(root: Path) -> int:
    report = ledger_report(load_settings(root, environ={}), EDITION)
    return report.sent if report is not None else 0


@pytest.fixture
def paper(tmp_path: Path) -> Path:
    root = tmp_path / "paper"
    copy_demo_stories(root / "stories")
    lines = ["email,name"] + [f"reader{i:02d}@example.org,Reader {i}" for i in range(READERS)]
    (root / "subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "newsletter.toml").write_text('[web]\nhosts = ["newsletter.example.org"]\n', encoding="utf-8")
    return root


def test_metrics_follow_the_ledger_during_a_send_and_count_a_sign_up(paper: Path) -> None:
    server = PublicServer(paper, "--workers", "2")
    smtp = GatedSmtp(GATE_AFTER)
    edition = {"newsletter": LIST_ID, "edition": EDITION.isoformat(), "language": "en"}
    sender = subprocess.Popen(
        [*SEND, "--root", str(paper), "--smtp", f"smtp://127.0.0.1:{smtp.port}", "--connections", "1", "--no-progress"],
        env=clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(smtp.accepted) < GATE_AFTER:
            assert time.monotonic() < deadline and sender.poll() is None, sender.communicate()
            time.sleep(0.05)
        time.sleep(FLUSH_SECONDS * 3)  # the ledger has written what it gathered
        during = scrape(server)
        assert during.status_code == 200 and during.headers["content-type"].startswith("text/plain")
        sent_now = value(during.text, "newsletter_messages_total", **edition, outcome="sent")
        assert sent_now == sent_in_ledger(paper) == GATE_AFTER  # mid-send: the counter is where the ledger is
        assert value(during.text, "newsletter_ledger_pending", **edition) == READERS - GATE_AFTER
        assert value(during.text, "newsletter_send_rate_messages_per_second", **edition) > 0  # while it runs
        smtp.open.set()
        assert sender.wait(timeout=60) == 0, sender.communicate()

        with httpx.Client(base_url=server.url, timeout=10, headers={"Host": "newsletter.example.org"}) as client:
            assert subscribe(client, "new.reader@example.org").status_code == 303
            confirmation_mail(paper, "new.reader@example.org")
            for _ in range(6):
                assert client.get("/subscribe/sent").status_code == 200
        time.sleep(0.5)  # the confirmation email is counted after it is handed over
        after = scrape(server).text
        assert value(after, "newsletter_messages_total", **edition, outcome="sent") == sent_in_ledger(paper) == READERS
        assert value(after, "newsletter_ledger_pending", **edition) == 0
        assert value(after, "newsletter_send_rate_messages_per_second", **edition) > 0
        assert value(after, "newsletter_build_seconds_count", newsletter=LIST_ID, language="en") >= 1
        assert value(after, "newsletter_signups_total", newsletter=LIST_ID) == 1
        assert value(after, "newsletter_confirmation_emails_total", newsletter=LIST_ID, outcome="sent") == 1
        # Two worker processes answered these; the counts add up across them.
        assert value(after, "newsletter_http_requests_total", route="/subscribe/sent", method="GET", status="200") == 6
        assert value(after, "newsletter_http_requests_total", route="/subscribe", method="POST", status="303") == 1
        assert "@" not in after  # no reader address in any label

        # Relayed by a proxy (whatever address it claims) or from elsewhere: not answered.
        assert scrape(server, **{"X-Forwarded-For": "127.0.0.1"}).status_code == 404
        assert scrape(server, **{"X-Real-IP": "203.0.113.9"}).status_code == 404
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        smtp.stop()
        assert server.stop() == 0


class RefusingSmtp(GatedSmtp):
    """Accepts every message but for one address, refused for good at RCPT TO."""

    async def handle_RCPT(self, server: object, session: object, envelope: object, address: str, _: object) -> str:
        if address.startswith("gone."):
            return "550 5.1.1 <gone.reader@example.org>: no such user"
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
        return "250 OK"


def test_json_logs_parse_line_by_line_carry_the_context_and_no_address(tmp_path: Path) -> None:
    from tests.test_schedule_e2e import SUBSCRIBERS, make_paper, today

    smtp = RefusingSmtp(None)
    try:
        settings = make_paper(tmp_path, f"smtp://127.0.0.1:{smtp.port}", "06:00", today())
        with (settings.root / "subscribers.csv").open("a", encoding="utf-8") as f:
            f.write("gone.reader@example.org,Gone\n")
        env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET)
        run = subprocess.run(
            [*JSON_SCHEDULE, "--root", str(settings.root), "--run-now", "--metrics-port", str(free_port())],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        smtp.stop()
    assert sorted(smtp.accepted) == sorted(SUBSCRIBERS)
    lines = [json.loads(line) for line in run.stderr.splitlines()]  # every line is one JSON object
    assert lines, run.stderr
    for line in lines:
        assert {"time", "level", "logger", "message", "newsletter", "sender", "run_id"} <= set(line), line
        assert line["newsletter"] == LIST_ID
        assert "gone.reader@" not in json.dumps(line) and "reader00@" not in json.dumps(line)
    edition_lines = [line for line in lines if line.get("edition") == today().isoformat()]
    assert edition_lines and len({line["run_id"] for line in edition_lines}) == 1
    counted = folder_text(settings.root / "data" / "metrics")
    assert value(counted, "newsletter_scheduler_runs_total", newsletter=LIST_ID, outcome="completed") == 1
    assert value(counted, "newsletter_last_good_morning_timestamp_seconds", newsletter=LIST_ID) > time.time() - 300
    refused = [line for line in lines if "not delivered" in line["message"]]
    assert refused and refused[0]["level"] == "warning" and "…@example.org" in refused[0]["message"]

    # The default stays the human format; `[logging] format = "json"` chooses JSON without the flag.
    plain = subprocess.run(
        [sys.executable, "-m", "newsletter", "schedule", "--root", str(settings.root), "--run-now"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert plain.stderr and not plain.stderr.lstrip().startswith("{")
    config = settings.root / "newsletter.toml"
    config.write_text('[logging]\nformat = "json"\n\n' + config.read_text(), encoding="utf-8")
    configured = subprocess.run(
        [sys.executable, "-m", "newsletter", "schedule", "--root", str(settings.root), "--run-now"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert configured.stderr and all(json.loads(line) for line in configured.stderr.splitlines())
    assert os.environ.get("NEWSLETTER_LOG_FORMAT") is None


def test_the_scheduler_answers_scrapes_on_its_metrics_port(tmp_path: Path) -> None:
    from tests.test_schedule_e2e import make_paper, today

    settings = make_paper(tmp_path, "smtp://127.0.0.1:9", "23:59", today())
    env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET)
    build = [sys.executable, "-m", "newsletter", "build", "--root", str(settings.root)]
    assert subprocess.run(build, env=env, capture_output=True, timeout=120).returncode == 0  # counted in data/
    port = free_port()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "schedule", "--root", str(settings.root), "--metrics-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert daemon.poll() is None, daemon.communicate()
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "no answer on the metrics port"
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        # What another process (the build) counted into the shared folder is in the daemon's answer.
        assert value(answer.text, "newsletter_build_seconds_count", newsletter=LIST_ID, language="en") == 1
        assert daemon.stderr is not None
        while "scheduler started" not in daemon.stderr.readline():  # its SIGTERM handler is in place
            assert daemon.poll() is None
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)
    assert daemon.returncode == 0


def test_a_worker_logs_json_lines_with_its_edition(paper: Path, pg_url: str) -> None:
    """A fleet sender under systemd: with --log-format json its lines are log records with the context."""
    env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET, NEWSLETTER_DATABASE_URL=pg_url)
    smtp = GatedSmtp(None)
    try:
        enrol = subprocess.run(
            [*SEND, "--root", str(paper), "--limit", "0", "--smtp", f"smtp://127.0.0.1:{smtp.port}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert enrol.returncode == 0 and f"pending {READERS}" in enrol.stdout, enrol.stderr  # enrolled, none sent
        relay = f"smtp://127.0.0.1:{smtp.port}"
        worker = subprocess.run(
            [*JSON_WORKER, "--root", str(paper), "--once", "--smtp", relay],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        smtp.stop()
    assert worker.returncode == 0, worker.stderr
    assert len(smtp.accepted) == READERS and worker.stdout == ""
    lines = [json.loads(line) for line in worker.stderr.splitlines()]
    done = [line for line in lines if line["logger"] == "newsletter.worker"]
    assert done and done[0]["edition"] == EDITION.isoformat() and f"sent {READERS} here" in done[0]["message"]
    assert all("@example.org" not in line["message"] or "…@" in line["message"] for line in lines)
