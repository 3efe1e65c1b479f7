"""DKIM figures: signatures per second on one core, and what signing costs a real send.

python bench/run.py dkim

- Sign 400 personalized messages of the 20-story edition (~60 KB each) on one thread: RSA-2048, Ed25519,
  and both (what `ed25519_selector` costs). Beside it, dkimpy's own pure-Python RSA on a few messages:
  the reference the OpenSSL step is measured against (dkim.py says why it is there).
- The whole `send_edition` of 2,000 messages to a local aiosmtpd (its own process) with 4 connections,
  signing on and off in the same run: the rate and its ratio.
Medians of 3 runs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from bench_edition import _twenty_story_root
from bench_mailing import NAMES, SECRET, _Server, _write_list

from newsletter.config import load_settings
from newsletter.delivery import dkim as signing
from newsletter.delivery.personalize import Personalizer
from newsletter.delivery.send import send_edition
from newsletter.delivery.sinks import make_sink
from newsletter.delivery.unsubscribe import SECRET_ENV
from newsletter.edition.build import build

DAY = date(2016, 12, 30)
SIGN = 400
PURE = 20
SEND = 2_000
RUNS = 3


def _rate(signer: signing.Signer, messages: list[bytes]) -> float:
    t0 = time.perf_counter()
    for data in messages:
        signer.sign(data)
    return len(messages) / (time.perf_counter() - t0)


def _pure_rate(signer: signing.Signer, messages: list[bytes]) -> float:
    """dkimpy as it comes: its pure-Python RSA, the key parsed on every signature."""
    saved = signing.dkim.parse_pem_private_key, signing.dkim.RSASSA_PKCS1_v1_5_sign
    signing.dkim.parse_pem_private_key, signing.dkim.RSASSA_PKCS1_v1_5_sign = signing._pure_parse, signing._pure_sign
    try:
        return _rate(signer, messages)
    finally:
        signing.dkim.parse_pem_private_key, signing.dkim.RSASSA_PKCS1_v1_5_sign = saved


def _send(root: Path, url: str) -> float:
    settings = load_settings(root, environ={})
    shutil.rmtree(root / "data" / "ledger", ignore_errors=True)
    sink = make_sink(settings, DAY, smtp=url, connections=4)
    report = send_edition(settings, DAY, subscribers="list.csv", sink=sink, progress=False)
    assert report.sent_now == SEND, report.summary()
    return SEND / report.send_seconds


def figures() -> Iterator[tuple[str, float, str]]:
    os.environ.setdefault(SECRET_ENV, SECRET)
    with tempfile.TemporaryDirectory() as tmp:
        root = _twenty_story_root(Path(tmp))
        keys = root / "data" / "dkim"
        rsa = signing.generate_key(keys / "b1.pem", "b1")
        ed = signing.generate_key(keys / "b2.pem", "b2", ed25519_key=True)
        settings = load_settings(root, environ={})
        p = Personalizer(settings, build(settings, DAY).edition, secret=SECRET.encode(), date=datetime.now(UTC))
        messages = [p.message(f"reader{i}@example.com", NAMES[i % len(NAMES)]) for i in range(SIGN)]
        yield "dkim.message_size", len(messages[0]) / 1000, "KB"
        domain = "newsletter.example.org"
        for label, keyset in (("rsa2048", [rsa]), ("ed25519", [ed]), ("rsa2048+ed25519", [rsa, ed])):
            rate = statistics.median(_rate(signing.Signer(domain, keyset), messages) for _ in range(RUNS))
            yield f"dkim.sign_{label}_one_core.median", rate, "msg/s"
            if label == "rsa2048":
                pure = statistics.median(
                    _pure_rate(signing.Signer(domain, keyset), messages[:PURE]) for _ in range(RUNS)
                )
                yield "dkim.sign_rsa2048_dkimpy_pure_python.median", pure, "msg/s"
                yield "dkim.openssl_vs_pure_python", rate / pure, "x"

        # The end-to-end send, signing on and off, against the same server in the same run.
        _write_list(root, SEND, "list.csv")
        plain = Path(tmp) / "plain"
        shutil.copytree(root, plain)
        (root / "newsletter.toml").write_text('[dkim]\nselector = "b1"\ned25519_selector = "b2"\n', encoding="utf-8")
        server = _Server()
        try:
            url = f"smtp://127.0.0.1:{server.port}"
            on, off = [], []
            for _ in range(RUNS):
                off.append(_send(plain, url))
                on.append(_send(root, url))
        finally:
            received = server.close()
        assert received == 2 * RUNS * SEND, received
        yield "dkim.send_2000_4_connections_unsigned.median", statistics.median(off), "msg/s"
        yield "dkim.send_2000_4_connections_signed_rsa+ed25519.median", statistics.median(on), "msg/s"
        yield "dkim.send_signed_vs_unsigned", statistics.median(on) / statistics.median(off), "x"
