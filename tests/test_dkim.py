"""DKIM signing: messages sent through a real SMTP hop verify with an independent verifier (Perl's
Mail::DKIM, asking the test's Knot DNS server for the keys); changing the Subject or the body, or adding
a List-Unsubscribe in transit, breaks the signature.

Debian's Mail::DKIM (1.2023) knows no Ed25519: it must call that signature "unsupported" and still pass
the RSA one — what a receiver of its age does. OpenDKIM (opendkim-testmsg) checks each signature alone,
Ed25519 included; it asks only the system resolver, so it runs in a network namespace of its own where
the test's DNS server answers on port 53 (`dns_server.in_private_network`). dkimpy's verifier checks
the Ed25519 signature against the same DNS server too.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import dns_server
from tests.helpers import IN_CI, SmtpServer, check_eml_tool
from tests.mail_world import PASSPHRASE, cli, env, good_records, make_keys, newsletter_root

DOMAIN = "signed-paper-test.org"
VERIFIER = r"""
use strict;
use Mail::DKIM::Verifier;
use Net::DNS;
my $res = Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $ARGV[0], recurse => 0, tcp_timeout => 5, udp_timeout => 5);
Mail::DKIM::DNS::resolver($res);
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (<STDIN>) { s/\015?\012$//; $dkim->PRINT("$_\015\012"); }
$dkim->CLOSE;
foreach my $sig ($dkim->signatures) {
    print join(" ", $sig->algorithm, $sig->selector, $sig->result, $sig->result_detail), "\n";
}
"""


def _mail_dkim() -> bool:
    return subprocess.run(["perl", "-MMail::DKIM::Verifier", "-MNet::DNS", "-e", "1"]).returncode == 0


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    for ok, what in ((dns_server.available(), "knot"), (_mail_dkim(), "libmail-dkim-perl")):
        if not ok:
            if IN_CI:
                pytest.fail(f"missing Debian packages: {what}")
            pytest.skip(f"needs the Debian packages {what}")
    base = tmp_path_factory.mktemp("dkim")
    keys = make_keys(base, {"rsa1": False, "ed1": True})
    server = dns_server.KnotServer()
    server.zone(DOMAIN, good_records(DOMAIN, keys, ["rsa1", "ed1"]))
    root = newsletter_root(base, "paper", DOMAIN, keys)
    (root / "subscribers.csv").write_text(
        "email,name\nann@example.com,Ann\nbob@example.net,\nchloe@example.org,Chloé Müller\n", encoding="utf-8"
    )
    server.start()
    try:
        yield {"server": server, "root": root}
    finally:
        server.stop()


def verify(server: dns_server.KnotServer, data: bytes, tmp: Path) -> list[str]:
    script = tmp / "verify.pl"
    script.write_text(VERIFIER, encoding="utf-8")
    done = subprocess.run(["perl", str(script), str(server.port)], input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().splitlines()


@pytest.fixture(scope="module")
def received(signed: dict[str, Any]) -> list[bytes]:
    """The edition sent to three readers through a real SMTP server; what it received."""
    from aiosmtpd.controller import Controller

    from tests.helpers import StoreHandler, free_port

    relay = SmtpServer("127.0.0.1", free_port())
    controller = Controller(StoreHandler(relay), hostname="127.0.0.1", port=relay.port)
    controller.start()
    try:
        plain = env(NEWSLETTER_SMTP_USERNAME="", NEWSLETTER_SMTP_PASSWORD="")  # this relay takes mail without AUTH
        done = cli(signed["root"], "send", "--subscribers", "subscribers.csv", "--smtp", relay.url, environ=plain)
    finally:
        controller.stop()
    assert done.returncode == 0, done.stderr
    assert "DKIM d=signed-paper-test.org s=rsa1 (rsa),ed1 (ed25519)" in done.stdout
    assert len(relay.received) == 3
    return [r.data for r in relay.received]


def ed25519_verifies(server: dns_server.KnotServer, data: bytes) -> bool:
    """dkimpy's verdict on the second (Ed25519) signature, its key read from the test's DNS server."""
    import dkim
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], server.port

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        found = [b"".join(r.strings) for r in resolver.resolve(name.decode().rstrip("."), "TXT")]
        return found[0] if found else None

    try:
        return bool(dkim.DKIM(data).verify(idx=1, dnsfunc=txt))
    except dkim.DKIMException:  # some failures (a body hash mismatch) are raised rather than returned
        return False


def test_every_message_verifies_with_an_independent_verifier(signed, received, tmp_path) -> None:
    for data in received:
        results = verify(signed["server"], data, tmp_path)
        assert [r.split()[:3] for r in results] == [
            ["rsa-sha256", "rsa1", "pass"],
            ["ed25519-sha256", "ed1", "invalid"],
        ], results
        assert "unsupported algorithm" in results[1]
        assert ed25519_verifies(signed["server"], data)


def test_the_signature_covers_the_list_headers_and_oversigns_them(received) -> None:
    head = received[0].split(b"\r\n\r\n", 1)[0].decode()
    signature = re.search(r"DKIM-Signature:.*?(?=\r\n\S)", head, re.S)
    assert signature is not None
    h = re.search(r"h=([^;]+);", " ".join(signature.group(0).split()))
    assert h is not None
    names = [n.strip() for n in h.group(1).split(":")]
    for name in ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe", "feedback-id"):
        assert name in names
    for name in ("from", "list-id", "list-unsubscribe", "list-unsubscribe-post"):
        assert names.count(name) == 2, name  # once more than it occurs: none can be added
    assert "c=relaxed/simple" in signature.group(0) and "d=signed-paper-test.org" in signature.group(0)


@pytest.mark.parametrize(
    "change",
    [
        (b"\r\nSubject: ", b"\r\nSubject: Re: "),
        (b"Good morning", b"Good evening"),
        (b"\r\nList-Unsubscribe: ", b"\r\nList-Unsubscribe: <https://evil.example/u>\r\nList-Unsubscribe: "),
    ],
    ids=["subject", "body", "added-list-unsubscribe"],
)
def test_tampering_breaks_both_signatures(signed, received, tmp_path, change) -> None:
    old, new = change
    data = received[0]
    assert old in data
    changed = data.replace(old, new, 1)
    results = verify(signed["server"], changed, tmp_path)
    assert results[0].split()[:3] == ["rsa-sha256", "rsa1", "fail"], results
    assert not ed25519_verifies(signed["server"], changed)


def test_signed_messages_pass_the_eml_checker(received, tmp_path) -> None:
    tool = check_eml_tool()
    files = []
    for i, data in enumerate(received):
        files.append(tmp_path / f"signed-{i}.eml")
        files[-1].write_bytes(data)
    done = subprocess.run(["python3", str(tool), "--personalized", *map(str, files)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RESULT: PASS" in done.stdout


def test_openssl_signs_the_same_bytes_as_dkimpy(signed) -> None:
    """The RSA step goes through OpenSSL for speed; PKCS#1 v1.5 is deterministic, so both must agree."""
    import os

    os.environ["NEWSLETTER_DKIM_PASSPHRASE"] = PASSPHRASE
    try:
        from newsletter.delivery import dkim as signing

        key = signing.load_key(signed["root"] / "data" / "dkim" / "rsa1.pem", "rsa1")
    finally:
        del os.environ["NEWSLETTER_DKIM_PASSPHRASE"]
    parsed = signing._parse_pem(key.private)
    assert isinstance(parsed, signing._OpenSSLKey)
    digest = hashlib.sha256(b"a message")
    assert signing._rsa_sign(digest, parsed) == signing._pure_sign(digest, dict(parsed))


def test_a_send_without_its_key_stops_before_anything_goes_out(signed, tmp_path) -> None:
    from tests.mail_world import env

    done = cli(
        signed["root"],
        "send",
        "--subscribers",
        "subscribers.csv",
        "--dry-run",
        environ=env(NEWSLETTER_DKIM_PASSPHRASE=""),
    )
    assert done.returncode == 1
    assert "the DKIM key is encrypted; set NEWSLETTER_DKIM_PASSPHRASE" in done.stderr and "Traceback" not in done.stderr


def test_the_sign_up_confirmation_is_signed_too(signed, tmp_path, monkeypatch) -> None:
    """The public app's double opt-in email leaves from the same domain: unsigned, DMARC would drop it."""
    from datetime import datetime

    from newsletter.config import load_settings
    from newsletter.web.app.mail import confirmation_message, send_confirmation

    monkeypatch.setenv("NEWSLETTER_DKIM_PASSPHRASE", PASSPHRASE)
    settings = load_settings(signed["root"], environ={})
    data = confirmation_message(settings, "new@example.com", "New Reader", "https://www.example.org/c/x", 48)
    assert send_confirmation(settings, "new@example.com", data).sent
    day = datetime.now(settings.timezone).date().isoformat()
    written = (signed["root"] / "outbox" / day / "confirm" / "new@example.com.eml").read_bytes()
    results = verify(signed["server"], written, tmp_path)
    assert results[0].split()[:3] == ["rsa-sha256", "rsa1", "pass"], results
    assert written.count(b"\r\nAuto-Submitted: ") == 1 and b"Auto-Submitted: auto-replied" in written


def one_signature(data: bytes, keep: int) -> bytes:
    """The message with only its `keep`-th DKIM-Signature (neither signature covers the other)."""
    head, _, body = data.partition(b"\r\n\r\n")
    fields = re.findall(rb"[^\r\n]+\r\n(?:[ \t][^\r\n]*\r\n)*", head + b"\r\n")
    signatures = [f for f in fields if f.lower().startswith(b"dkim-signature:")]
    kept = [f for f in fields if f not in signatures or f == signatures[keep]]
    return b"".join(kept) + b"\r\n" + body


def test_each_signature_verifies_with_opendkim(signed, received) -> None:
    if not (shutil.which("opendkim-testmsg") and dns_server.can_unshare()):
        if IN_CI:
            pytest.fail("needs opendkim-tools and root with unshare (a private network namespace)")
        pytest.skip("needs opendkim-tools and root with unshare (a private network namespace)")
    private = dns_server.KnotServer()
    private.zones = dict(signed["server"].zones)
    try:
        for keep, algorithm in ((0, b"a=rsa-sha256"), (1, b"a=ed25519-sha256")):
            alone = one_signature(received[0], keep)
            assert alone.count(b"DKIM-Signature:") == 1 and algorithm in alone
            done = dns_server.in_private_network(private, ["opendkim-testmsg"], alone)
            assert done.returncode == 0, done.stderr
            changed = dns_server.in_private_network(
                private, ["opendkim-testmsg"], alone.replace(b"Good morning", b"Good evening")
            )
            assert changed.returncode != 0 and b"Bad signature" in changed.stderr, changed.stderr
    finally:
        private.stop()


def test_sender_processes_sign_and_pipeline_every_message(signed, tmp_path) -> None:
    """`--processes 2` to a relay offering PIPELINING: each process signs with the run's keys, the signed
    bytes go as they are (no line of them starts with a dot), and every message verifies."""
    from tests.test_smtp_pipelining import Pipelining
    from tests.test_smtp_server import serve

    root = tmp_path / "paper"
    shutil.copytree(signed["root"], root, ignore=shutil.ignore_patterns("ledger", "outbox", "site"))
    plain = env(NEWSLETTER_SMTP_USERNAME="", NEWSLETTER_SMTP_PASSWORD="")
    with serve(Pipelining()) as relay:
        done = cli(root, "send", "--subscribers", "subscribers.csv", "--smtp", relay.url, "--processes", "2",
                   environ=plain)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(r.rcpt_tos[0] for r in relay.received) == ["ann@example.com", "bob@example.net", "chloe@example.org"]
    for r in relay.received:
        assert b"\r\n." not in r.data
        results = verify(signed["server"], r.data, tmp_path)
        assert results[0].split()[:3] == ["rsa-sha256", "rsa1", "pass"], results
        assert ed25519_verifies(signed["server"], r.data)
