"""`newsletter dkim keygen`, `newsletter doctor`: signing keys and the sending set-up checked."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import cli, handle_errors, load, root_option


@cli.group()
def dkim() -> None:
    """DKIM signing keys (the [dkim] section of newsletter.toml).

    \b
    Example:
      newsletter dkim keygen --selector mb2027a
    """


@dkim.command()
@root_option
@click.option("--selector", required=True, metavar="S", help="The selector: a DNS label, e.g. mb2027a.")
@click.option("--ed25519", "ed25519_key", is_flag=True, help="An Ed25519 key (for ed25519_selector) instead of RSA.")
@handle_errors
def keygen(root: Path, selector: str, ed25519_key: bool) -> None:
    """Write a new signing key to [dkim] key_dir (data/dkim/S.pem) and print the DNS record to publish.

    RSA keys have 2048 bits. The key is encrypted when NEWSLETTER_DKIM_PASSPHRASE is set (signing then
    needs the same variable). An existing key is never overwritten: rotate with a new selector, publish
    its record, set it as [dkim] next_selector until `newsletter doctor` finds it, then make it the
    selector.

    \b
    Example:
      newsletter dkim keygen --selector mb2027a
    """
    from ..delivery import PASSPHRASE_ENV, DkimOptions, generate_key, key_dir, txt_record, zone_line

    settings = load(root)
    if not selector or len(selector) > 63 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in selector):
        raise click.ClickException(f"--selector {selector!r}: must be a DNS label (letters, digits, '-')")
    options = DkimOptions.from_settings(settings)
    domain = options.domain if options else settings.sender.address.rsplit("@", 1)[-1].lower()
    path = key_dir(settings) / f"{selector}.pem"
    key = generate_key(path, selector, ed25519_key=ed25519_key)
    name, value = txt_record(key, domain)
    locked = "encrypted with NEWSLETTER_DKIM_PASSPHRASE" if os.environ.get(PASSPHRASE_ENV) else "not encrypted"
    click.echo(f"wrote {path} ({key.kind}, {locked}, readable by its owner only)")
    click.echo("publish this TXT record:")
    click.echo(f"  name:  {name}")
    click.echo(f"  value: {value}")
    click.echo(f"  zone:  {zone_line(key, domain)}")


@cli.command()
@root_option
@click.option("--nameserver", metavar="HOST[:PORT]", help="Ask this DNS resolver instead of the system's.")
@click.option("--smtp", metavar="URL", help="The relay to check (default: [smtp] url).")
@click.option("--sending-ip", "sending_ips", multiple=True, metavar="IP", help="An address the relay sends from.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the checklist.")
@handle_errors
def doctor(root: Path, nameserver: str | None, smtp: str | None, sending_ips: tuple[str, ...], as_json: bool) -> None:
    """Check the sending set-up against DNS and the relay: a checklist with a verdict and a fix per line.

    SPF of the return-path domain (evaluated for the sending addresses: --sending-ip, else the relay's
    address) and the reverse DNS of those addresses, the DKIM record of each [dkim] selector against
    its key, DMARC and the alignment of the From domain with the DKIM d= and the return path, MX of the
    return-path domain (bounces come back), the relay's TLS certificate and AUTH, and the headers of a
    probe message of the newest edition, its signature verified against the DNS.

    Exit status (for monitoring): 0 all good, 1 warnings, 2 errors. --json prints one object:
    {"verdict", "exit", "checks": [{"name", "verdict", "detail", "fix"}, ...]}.

    \b
    Examples:
      newsletter doctor
      newsletter doctor --nameserver 127.0.0.1:5353 --sending-ip 203.0.113.7 --json
    """
    import ipaddress

    from ..delivery import doctor as run_doctor

    for ip in sending_ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise click.ClickException(f"--sending-ip {ip!r}: not an IPv4 or IPv6 address") from None
    settings = load(root)
    checklist = run_doctor(settings, nameserver=nameserver, smtp=smtp, sending_ips=list(sending_ips))
    if as_json:
        click.echo(json.dumps(checklist.to_json(), indent=2))
    else:
        for line in checklist.lines():
            click.echo(line)
    sys.exit(checklist.exit_code)
