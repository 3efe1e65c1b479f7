"""The rules `doctor` applies, without DNS: tags, organizational domains, DMARC alignment, the verdict."""

from __future__ import annotations

from newsletter.delivery.doctor.checks import Checklist, error, ok, warning
from newsletter.delivery.doctor.dnschecks import aligned, check_alignment, org_domain, tags


def test_tags_and_organizational_domains() -> None:
    assert tags("v=DKIM1; k=rsa; p=MIIB IjAN\t BgkqhkiG;") == {"v": "DKIM1", "k": "rsa", "p": "MIIBIjANBgkqhkiG"}
    assert org_domain("news.mail.example.co.uk") == "example.co.uk"  # from the Public Suffix List
    assert org_domain("bounces.example.org") == "example.org"


def test_relaxed_and_strict_alignment() -> None:
    assert aligned("bounces.example.org", "example.org", "r")
    assert not aligned("bounces.example.org", "example.org", "s")
    assert aligned("Example.org.", "example.org", "s")
    assert not aligned("example.co.uk", "other.co.uk", "r")  # a public suffix is no organization


def test_alignment_follows_the_record() -> None:
    good = check_alignment("example.org", "example.org", "bounces.example.org", {"adkim": "s", "aspf": "r"})
    assert [c.verdict for c in good] == ["ok", "ok"]
    strict = check_alignment("example.org", "example.org", "bounces.example.org", {"aspf": "s"})
    assert [c.verdict for c in strict] == ["ok", "warning"]  # DKIM still carries DMARC
    assert 'return_path = "bounces+{token}@example.org"' in strict[1].fix
    lost = check_alignment("example.org", "esp-mail.net", "esp-bounces.net", {})
    assert [c.verdict for c in lost] == ["error", "error"]  # neither aligns: DMARC fails
    unsigned = check_alignment("example.org", None, "example.org", {})
    assert unsigned[0].verdict == "error" and "not signed" in unsigned[0].detail


def test_the_verdict_and_exit_code() -> None:
    checklist = Checklist("t", [ok("a", "fine")])
    assert (checklist.exit_code, checklist.verdict) == (0, "ok")
    checklist.add(warning("b", "hm", "do x"))
    assert (checklist.exit_code, checklist.verdict) == (1, "warning")
    checklist.add(error("c", "bad", "do y"))
    assert (checklist.exit_code, checklist.to_json()["verdict"]) == (2, "error")
    assert checklist.lines()[-1] == "Verdict: 1 error(s), 1 warning(s) in 3 checks"
