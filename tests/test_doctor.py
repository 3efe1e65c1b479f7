"""`newsletter doctor` against a real DNS server (Knot, on loopback) and a real relay (STARTTLS, AUTH).

One zone is right in every way; each other zone has one planted fault, and doctor must name it — the
check, its verdict and a fix — and exit 2 for an error, 1 for a warning, 0 for the good zone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import dns_server
from tests.helpers import IN_CI
from tests.mail_world import Keys, TlsRelay, cli, good_records, make_keys, newsletter_root

SELECTORS = ["rsa1", "ed1"]
FAULTS = {
    # name: (domain, what to leave out of the good records, extra records, check that must fail, verdict)
    "nospf": ("nospf-paper-test.org", {"spf"}, [], "SPF of nospf-paper-test.org", "error"),
    "spffail": (
        "spffail-paper-test.org",
        {"spf"},
        ['@ TXT "v=spf1 ip4:192.0.2.1 -all"'],
        "SPF of spffail-paper-test.org",
        "error",
    ),
    "dkimbad": ("dkimbad-paper-test.org", {"dkim"}, [], "DKIM rsa1._domainkey.dkimbad-paper-test.org", "error"),
    "nodmarc": ("nodmarc-paper-test.org", {"dmarc"}, [], "DMARC of nodmarc-paper-test.org", "error"),
    "nomx": ("nomx-paper-test.org", {"mx"}, [], "MX of nomx-paper-test.org", "error"),
    "misaligned": ("misaligned-paper-test.org", set(), [], "return-path alignment (relaxed)", "warning"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not dns_server.available():
        if IN_CI:
            pytest.fail("knotd is missing (apt-get install knot)")
        pytest.skip("knotd is not installed (apt-get install knot)")
    base = tmp_path_factory.mktemp("doctor")
    keys = make_keys(base, {"rsa1": False, "ed1": True, "other": False})
    relay = TlsRelay(base / "tls")
    server = dns_server.KnotServer()
    server.zone("good-paper-test.org", good_records("good-paper-test.org", keys, SELECTORS))
    for domain, skip, extra, _check, _verdict in FAULTS.values():
        records = good_records(domain, keys, SELECTORS, skip=frozenset(skip)) + extra
        if domain == "dkimbad-paper-test.org":  # the rsa1 record publishes another key
            records += [keys.record("rsa1", domain, keys.values["other"]), keys.record("ed1", domain)]
        server.zone(domain, records)
    server.zone("elsewhere-paper-test.org", good_records("elsewhere-paper-test.org", keys, []))
    server.zone("0.0.127.in-addr.arpa", ["1 PTR mx.good-paper-test.org."])  # the relay's address, confirmed
    roots = {"good": newsletter_root(base, "good", "good-paper-test.org", keys, relay=relay)}
    for name, (domain, *_rest) in FAULTS.items():
        other = "elsewhere-paper-test.org" if name == "misaligned" else None
        roots[name] = newsletter_root(base, name, domain, keys, return_domain=other, relay=relay)
    server.start()
    try:
        yield {"server": server, "roots": roots, "keys": keys, "relay": relay}
    finally:
        server.stop()
        relay.stop()


def doctor(world: dict[str, Any], name: str, *args: str) -> tuple[int, dict[str, Any]]:
    done = cli(world["roots"][name], "doctor", "--nameserver", world["server"].address, "--json", *args)
    assert done.stderr == "", done.stderr
    return done.returncode, json.loads(done.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in report["checks"]}


def test_the_good_zone_passes_every_check(world: dict[str, Any]) -> None:
    code, report = doctor(world, "good")
    bad = [c for c in report["checks"] if c["verdict"] != "ok"]
    assert code == 0 and report["verdict"] == "ok", bad
    checks = by_name(report)
    assert "pass for 127.0.0.1" in checks["SPF of good-paper-test.org"]["detail"]
    assert checks["DKIM rsa1._domainkey.good-paper-test.org"]["verdict"] == "ok"
    assert checks["DKIM ed1._domainkey.good-paper-test.org"]["verdict"] == "ok"
    assert "p=reject" in checks["DMARC of good-paper-test.org"]["detail"]
    assert "10 mx.good-paper-test.org" in checks["MX of good-paper-test.org"]["detail"]
    assert checks["reverse DNS of 127.0.0.1"]["detail"] == "mx.good-paper-test.org, which resolves back to it"
    assert any(n.startswith("TLS of relay") and "verified" in c["detail"] for n, c in checks.items())
    assert any(n.startswith("AUTH at relay") and "logged in" in c["detail"] for n, c in checks.items())
    assert "rsa1 (rsa), s=ed1 (ed25519)" in checks["DKIM signature"]["detail"]
    assert "Feedback-ID" in checks["headers"]["detail"]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_doctor_finds_each_planted_fault(world: dict[str, Any], fault: str) -> None:
    _domain, _skip, _extra, check, verdict = FAULTS[fault]
    code, report = doctor(world, fault)
    found = by_name(report)[check]
    assert found["verdict"] == verdict, found
    assert found["fix"], found
    assert code == (2 if verdict == "error" else 1)
    others = [c["name"] for c in report["checks"] if c["verdict"] != "ok" and c["name"] != check]
    if fault == "dkimbad":  # the signature of a probe message fails with the published key, too
        assert others == ["DKIM signature"]
    else:
        assert others == [], report


def test_the_text_checklist_gives_the_fix(world: dict[str, Any]) -> None:
    done = cli(world["roots"]["nomx"], "doctor", "--nameserver", world["server"].address)
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "MX of nomx-paper-test.org" in line)
    assert "ERROR" in lines[at] and lines[at + 1].strip().startswith("fix: publish nomx-paper-test.org. MX 10")
    assert lines[-1].startswith("Verdict: 1 error(s)")


def test_a_wrong_passphrase_and_a_bad_nameserver_are_one_line(world: dict[str, Any]) -> None:
    from tests.mail_world import env

    done = cli(world["roots"]["good"], "dkim", "keygen", "--selector", "rsa1")
    assert done.returncode == 1 and "exists already" in done.stderr and "Traceback" not in done.stderr
    done = cli(world["roots"]["good"], "doctor", "--nameserver", "127.0.0.1:notaport")
    assert done.returncode == 1 and "--nameserver" in done.stderr and "Traceback" not in done.stderr
    done = cli(world["roots"]["good"], "doctor", "--sending-ip", "relay.example.org")
    assert done.returncode == 1 and "--sending-ip 'relay.example.org'" in done.stderr
    code = cli(
        world["roots"]["good"],
        "doctor",
        "--nameserver",
        world["server"].address,
        "--json",
        environ=env(NEWSLETTER_DKIM_PASSPHRASE="wrong"),
    )
    report = json.loads(code.stdout)
    assert code.returncode == 2
    assert "is not its passphrase" in by_name(report)["DKIM rsa1._domainkey.good-paper-test.org"]["detail"]


def test_keygen_writes_a_private_key_and_prints_the_record(tmp_path: Path, world: dict[str, Any]) -> None:
    keys: Keys = world["keys"]
    pem = keys.folder / "rsa1.pem"
    assert pem.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert b"ENCRYPTED PRIVATE KEY" in pem.read_bytes()  # NEWSLETTER_DKIM_PASSPHRASE was set
    assert keys.values["rsa1"].startswith("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")  # RSA 2048
    assert keys.values["ed1"].startswith("v=DKIM1; k=ed25519; p=")


def test_a_rotation_checks_the_next_selector_too(world: dict[str, Any]) -> None:
    """`next_selector`: no key yet is a warning (make one); a key not yet published is an error."""
    root = world["roots"]["good"]
    config = root / "newsletter.toml"
    before = config.read_text(encoding="utf-8")
    try:
        config.write_text(
            before.replace('ed25519_selector = "ed1"', 'ed25519_selector = "ed1"\nnext_selector = "rsa2"')
        )
        code, report = doctor(world, "good")
        found = by_name(report)["DKIM rsa2._domainkey.good-paper-test.org"]
        assert (code, found["verdict"], found["fix"]) == (1, "warning", "newsletter dkim keygen --selector rsa2")
        made = cli(root, "dkim", "keygen", "--selector", "rsa2")
        assert made.returncode == 0 and "rsa2._domainkey.good-paper-test.org" in made.stdout
        code, report = doctor(world, "good")
        found = by_name(report)["DKIM rsa2._domainkey.good-paper-test.org"]
        assert (code, found["verdict"]) == (2, "error") and found["fix"].startswith("publish rsa2._domainkey.")
    finally:
        config.write_text(before, encoding="utf-8")
        (root / "data" / "dkim" / "rsa2.pem").unlink(missing_ok=True)


def test_a_resolver_that_does_not_answer_is_an_error_not_a_traceback(world: dict[str, Any]) -> None:
    silent = f"127.0.0.1:{dns_server._free_port()}"  # nothing listens there
    done = cli(world["roots"]["nomx"], "doctor", "--nameserver", silent, "--json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    spf = by_name(json.loads(done.stdout))["SPF of nomx-paper-test.org"]
    assert spf["verdict"] == "error" and f"no answer from {silent}" in spf["detail"] and silent in spf["fix"]
