"""The DNS half of `doctor`: SPF, DKIM, DMARC and MX of the sending domains, read with dnspython.

SPF is evaluated by pyspf (`spf.check2`, RFC 7208), its lookups sent to the same resolver as ours.
The organizational domain that DMARC's relaxed alignment compares (RFC 7489 §3.2) comes from the
Public Suffix List that `publicsuffixlist` ships.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import dns.exception
import dns.resolver
import dns.reversename
import spf
from publicsuffixlist import PublicSuffixList

from ...errors import ConfigError
from ..dkim import DkimOptions, Key, load_key, zone_line
from .checks import Check, error, ok, warning

_PSL = PublicSuffixList()


class DnsTrouble(Exception):
    """The resolver did not answer (timeout, SERVFAIL): not the same as "no such record"."""


class Dns:
    """A resolver: the system's, or `nameserver` (HOST[:PORT], for tests and split-horizon DNS)."""

    def __init__(self, nameserver: str | None = None, timeout: float = 3.0) -> None:
        if nameserver:
            host, port = _host_port(nameserver)
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [host]
            self.resolver.port = port
        else:
            try:
                self.resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise ConfigError("no DNS resolver configured here (/etc/resolv.conf); pass --nameserver") from None
        self.resolver.lifetime = timeout
        self.where = nameserver or "the system resolver"

    def _answer(self, name: str, qtype: str) -> list[Any]:
        try:
            return list(self.resolver.resolve(name, qtype))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise DnsTrouble(f"no answer from {self.where} for {name} {qtype} ({exc.__class__.__name__})") from None

    def txt(self, name: str) -> list[str]:
        """Each TXT record as one string (its character-strings joined)."""
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._answer(name, "TXT")]

    def mx(self, name: str) -> list[tuple[int, str]]:
        return sorted((r.preference, r.exchange.to_text(omit_final_dot=True)) for r in self._answer(name, "MX"))

    def ptr(self, ip: str) -> list[str]:
        """The host names the address's PTR records give."""
        name = str(dns.reversename.from_address(ip))
        return [r.target.to_text(omit_final_dot=True) for r in self._answer(name, "PTR")]

    def addresses(self, name: str) -> list[str]:
        return [r.address for qtype in ("A", "AAAA") for r in self._answer(name, qtype)]

    def spf_lookup(self, name: str, qtype: str, strict: bool = True, timeout: float = 20) -> list[Any]:
        """pyspf's lookup interface ((name, type), data) over this resolver."""
        out: list[Any] = []
        try:
            answers = self._answer(name, qtype)
        except DnsTrouble as exc:
            raise spf.TempError(f"DNS {exc}") from None
        for r in answers:
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), r.address))
            elif qtype == "MX":
                out.append(((name, qtype), (r.preference, r.exchange)))
            elif qtype == "PTR":
                out.append(((name, qtype), r.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                out.append(((name, qtype), r.strings))
        return out

    @contextlib.contextmanager
    def for_spf(self) -> Iterator[None]:
        """pyspf looks up through the module's `DNSLookup`: ours while this lasts."""
        before = spf.DNSLookup
        spf.DNSLookup = self.spf_lookup
        try:
            yield
        finally:
            spf.DNSLookup = before


def _dns_fix(resolver: Dns) -> str:
    return f"check that {resolver.where} answers, and the domain's name servers behind it"


def _host_port(text: str) -> tuple[str, int]:
    host, port = text.strip(), 53
    if host.startswith("["):  # [::1]:5353
        host, _, rest = host[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif host.count(":") == 1:
        host, _, p = host.partition(":")
        port = int(p) if p.isdigit() else -1
    if not 0 < port < 65536:
        raise ConfigError(f"--nameserver {text!r}: the port must be a number from 1 to 65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = str(socket.getaddrinfo(host, port)[0][4][0])
        except OSError:
            raise ConfigError(f"--nameserver {text!r}: cannot resolve {host}") from None
    return host, port


def org_domain(domain: str) -> str:
    """The organizational domain: `news.example.co.uk` → `example.co.uk`."""
    return str(_PSL.privatesuffix(domain.lower()) or domain.lower())


def aligned(one: str, other: str, mode: str) -> bool:
    """DMARC identifier alignment: strict needs the same name, relaxed the same organizational domain."""
    one, other = one.lower().rstrip("."), other.lower().rstrip(".")
    return one == other if mode == "s" else org_domain(one) == org_domain(other)


def tags(record: str) -> dict[str, str]:
    """`v=DKIM1; k=rsa; p=…` → {"v": "DKIM1", …} (keys lowercased, spaces inside values dropped)."""
    out = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip().lower()] = "".join(value.split())
    return out


# --- SPF -------------------------------------------------------------------------------------------


def check_spf(resolver: Dns, domain: str, ips: list[str], helo: str) -> Check:
    name = f"SPF of {domain}"
    try:
        records = [r for r in resolver.txt(domain) if r.lower().startswith("v=spf1")]
    except DnsTrouble as exc:
        return error(name, str(exc), _dns_fix(resolver))
    example = f'{domain}. TXT "v=spf1 ' + (" ".join(f"ip4:{ip}" for ip in ips) or "include:<your relay>") + ' -all"'
    if not records:
        return error(name, "no SPF record: receivers cannot tell the relay may send for it", f"publish {example}")
    if len(records) > 1:
        return error(name, f"{len(records)} SPF records (RFC 7208 allows one): {records}", "merge them into one")
    if not ips:
        return warning(
            name,
            f"published ({records[0]}), not evaluated: no sending address known",
            "pass --sending-ip with the relay's public address",
        )
    failing = []
    with resolver.for_spf():
        for ip in ips:
            result, explanation = spf.check2(i=ip, s=f"postmaster@{domain}", h=helo or domain, querytime=10)
            if result != "pass":
                failing.append(f"{result} for {ip}" + (f" ({explanation})" if explanation else ""))
    if failing:
        return error(
            name, f"{'; '.join(failing)} — {records[0]}", f"let the relay's addresses pass, e.g. publish {example}"
        )
    return ok(name, f"pass for {', '.join(ips)} ({records[0]})")


# --- DKIM ------------------------------------------------------------------------------------------


def check_dkim(resolver: Dns, options: DkimOptions, selector: str) -> Check:
    record_name = f"{selector}._domainkey.{options.domain}"
    name = f"DKIM {record_name}"
    path = options.key_path(selector)
    key: Key | None = None
    try:
        key = load_key(path, selector)
    except ConfigError as exc:
        if selector == options.next_selector and not path.exists():
            return warning(name, f"no key yet at {path}", f"newsletter dkim keygen --selector {selector}")
        return error(name, str(exc), "fix the key file or its passphrase (NEWSLETTER_DKIM_PASSPHRASE)")
    publish = f"publish {zone_line(key, options.domain)}"
    try:
        records = [r for r in resolver.txt(record_name) if "p=" in r]
    except DnsTrouble as exc:
        return error(name, str(exc), _dns_fix(resolver))
    if not records:
        return error(name, "no key published: receivers cannot verify the signature", publish)
    if len(records) > 1:
        return error(name, f"{len(records)} key records; receivers pick one at random", publish + " (and only that)")
    found = tags(records[0])
    if found.get("v", "DKIM1") != "DKIM1":
        return error(name, f"v={found['v']}: not a DKIM key record", publish)
    if not found.get("p"):
        return error(name, "the key is revoked (empty p=)", publish)
    if found.get("k", "rsa") != key.kind or found["p"] != key.public:
        return error(name, f"the published key is not the one in {path}: signatures will fail", publish)
    role = "next (published ahead of the rotation)" if selector == options.next_selector else "signing"
    return ok(name, f"{key.kind} key matches {path.name} ({role})")


# --- DMARC and alignment ---------------------------------------------------------------------------


def find_dmarc(resolver: Dns, from_domain: str) -> tuple[str, dict[str, str]] | None:
    """(where, tags) of the DMARC record that governs `from_domain`: its own, else its organizational domain's."""
    for domain in dict.fromkeys((from_domain, org_domain(from_domain))):
        for record in resolver.txt(f"_dmarc.{domain}"):
            found = tags(record)
            if found.get("v", "").upper() == "DMARC1":
                return f"_dmarc.{domain}", found
    return None


def check_dmarc(resolver: Dns, from_domain: str) -> tuple[Check, dict[str, str]]:
    name = f"DMARC of {from_domain}"
    try:
        found = find_dmarc(resolver, from_domain)
    except DnsTrouble as exc:
        return error(name, str(exc), _dns_fix(resolver)), {}
    org = org_domain(from_domain)
    if found is None:
        fix = f'publish _dmarc.{org}. TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@{org}", then tighten p='
        return error(name, "no DMARC record (Gmail and Yahoo require one of bulk senders)", fix), {}
    where, record = found
    tag = "sp" if where != f"_dmarc.{from_domain}" and "sp" in record else "p"  # a subdomain: sp= rules it
    policy = record.get(tag, "")
    if policy not in ("none", "quarantine", "reject"):
        bad = f"{where}: {tag}={policy or '(missing)'} is not a policy"
        return error(name, bad, f"set {tag}=none, quarantine or reject"), record
    modes = f"adkim={record.get('adkim', 'r')}, aspf={record.get('aspf', 'r')}"
    if policy == "none":
        return ok(name, f"{where}: {tag}=none (monitoring only; enough for the bulk-sender rules), {modes}"), record
    return ok(name, f"{where}: {tag}={policy}, {modes}"), record


def check_alignment(
    from_domain: str, dkim_domain: str | None, return_domain: str, record: dict[str, str]
) -> list[Check]:
    """DMARC passes when the DKIM d= or the return-path domain aligns with From (in the record's modes)."""
    adkim, aspf = record.get("adkim", "r"), record.get("aspf", "r")
    words = {"s": "strict", "r": "relaxed"}
    dkim_ok = dkim_domain is not None and aligned(dkim_domain, from_domain, adkim)
    checks = []
    name = f"DKIM alignment ({words.get(adkim, adkim)})"
    if dkim_domain is None:
        checks.append(error(name, "messages are not signed", "configure [dkim] (newsletter dkim keygen --selector …)"))
    elif dkim_ok:
        checks.append(ok(name, f"d={dkim_domain} aligns with From {from_domain}"))
    else:
        fix = f"sign with d={from_domain if adkim == 's' else org_domain(from_domain)} ([dkim] domain)"
        checks.append(error(name, f"d={dkim_domain} does not align with From {from_domain}", fix))
    name = f"return-path alignment ({words.get(aspf, aspf)})"
    if aligned(return_domain, from_domain, aspf):
        checks.append(ok(name, f"{return_domain} aligns with From {from_domain}"))
    else:
        where = from_domain if aspf == "s" else f"bounces.{org_domain(from_domain)}"
        detail = f"the return path's domain {return_domain} does not align with From {from_domain}"
        fix = f'use a return path under {where} ([mailing] return_path = "bounces+{{token}}@{where}")'
        checks.append((warning if dkim_ok else error)(name, detail + (" (DKIM alone carries DMARC)" * dkim_ok), fix))
    return checks


# --- reverse DNS -------------------------------------------------------------------------------------


def check_reverse(resolver: Dns, ip: str) -> Check:
    """Forward-confirmed reverse DNS: the address's PTR names a host whose addresses include it again."""
    name = f"reverse DNS of {ip}"
    try:
        hosts = resolver.ptr(ip)
        if not hosts:
            return error(
                name,
                "no PTR record (Gmail and Yahoo refuse bulk mail from such addresses)",
                "ask whoever runs the address (the relay's provider) to set its PTR to the relay's name",
            )
        confirmed = [h for h in hosts if ip in resolver.addresses(h)]
    except DnsTrouble as exc:
        return error(name, str(exc), _dns_fix(resolver))
    if not confirmed:
        return error(
            name, f"PTR {', '.join(hosts)} does not resolve back to {ip}", f"give {hosts[0]} an address record for {ip}"
        )
    return ok(name, f"{confirmed[0]}, which resolves back to it")


# --- MX --------------------------------------------------------------------------------------------


def check_mx(resolver: Dns, domain: str) -> Check:
    name = f"MX of {domain}"
    try:
        records = resolver.mx(domain)
        if records:
            if records == [(0, "")] or records == [(0, ".")]:
                return error(name, "a null MX (RFC 7505): this domain takes no mail", f"publish a real MX for {domain}")
            return ok(name, ", ".join(f"{pref} {host}" for pref, host in records) + " (bounces come back)")
        fallback = resolver.addresses(domain)
    except DnsTrouble as exc:
        return error(name, str(exc), _dns_fix(resolver))
    fix = f"publish {domain}. MX 10 <the host reading the bounce mailbox>"
    if fallback:
        return warning(name, f"no MX; mail falls back to its address {fallback[0]}", fix)
    return error(name, "no MX and no address: bounces (and some receivers' checks) have nowhere to go", fix)
