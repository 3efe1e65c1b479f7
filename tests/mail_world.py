"""A small sending world for the deliverability tests: DKIM keys made by `newsletter dkim keygen`, DNS
zones on a real Knot server, a relay with STARTTLS (a certificate from a throw-away CA) and AUTH.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import SmtpServer, StoreHandler, copy_demo_stories, free_port

PASSPHRASE = "correct horse battery staple"
SECRET = "test-unsubscribe-secret-0123456789"
SMTP_USER, SMTP_PASSWORD = "newsletter", "relay-password"


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    base.update(
        NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET,
        NEWSLETTER_DKIM_PASSPHRASE=PASSPHRASE,
        NEWSLETTER_SMTP_USERNAME=SMTP_USER,
        NEWSLETTER_SMTP_PASSWORD=SMTP_PASSWORD,
    )
    base.update(extra)
    return base


def cli(root: Path, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        env=environ or env(),
        timeout=120,
    )


@dataclass
class Keys:
    """Key files (PEM, encrypted with PASSPHRASE) by selector, and their TXT values as keygen printed them."""

    folder: Path
    values: dict[str, str]

    def install(self, root: Path) -> None:
        shutil.copytree(self.folder, root / "data" / "dkim", dirs_exist_ok=True)

    def record(self, selector: str, domain: str, value: str | None = None) -> str:
        text = value or self.values[selector]
        chunks = " ".join(f'"{text[i : i + 200]}"' for i in range(0, len(text), 200))
        return f"{selector}._domainkey.{domain}. 300 IN TXT ( {chunks} )"


def make_keys(base: Path, selectors: dict[str, bool]) -> Keys:
    """Run `newsletter dkim keygen` for each selector (True: Ed25519) in a scratch newsletter folder."""
    root = base / "keygen"
    (root / "stories").mkdir(parents=True, exist_ok=True)
    values = {}
    for selector, ed in selectors.items():
        done = cli(root, "dkim", "keygen", "--selector", selector, *(["--ed25519"] if ed else []))
        assert done.returncode == 0, done.stderr
        value = next(line.split("value:", 1)[1].strip() for line in done.stdout.splitlines() if "value:" in line)
        values[selector] = value
    return Keys(root / "data" / "dkim", values)


def good_records(domain: str, keys: Keys, selectors: list[str], *, skip: frozenset[str] = frozenset()) -> list[str]:
    records = []
    if "spf" not in skip:
        records.append('@ TXT "v=spf1 ip4:127.0.0.1 -all"')
    if "mx" not in skip:
        records += ["@ MX 10 mx", "mx A 127.0.0.1"]
    if "dmarc" not in skip:
        records.append('_dmarc TXT "v=DMARC1; p=reject; adkim=r; aspf=r; rua=mailto:dmarc@' + domain + '"')
    if "dkim" not in skip:
        records += [keys.record(s, domain) for s in selectors]
    return records


def newsletter_root(
    base: Path, name: str, domain: str, keys: Keys, *, return_domain: str | None = None, relay: TlsRelay | None = None
) -> Path:
    root = base / name
    copy_demo_stories(root / "stories")
    keys.install(root)
    if relay is not None:
        shutil.copy(relay.ca, root / "ca.pem")
    smtp = f'[smtp]\nurl = "{relay.url}"\nca_file = "ca.pem"\n' if relay else ""
    (root / "newsletter.toml").write_text(
        f"""[sender]
name = "The Paper"
address = "morning@{domain}"

[list]
address = "list@{domain}"
id = "paper.{domain}"
unsubscribe_url = "https://www.{domain}/u/"

[mailing]
return_path = "bounces+{{token}}@{return_domain or domain}"

[dkim]
selector = "rsa1"
ed25519_selector = "ed1"

{smtp}""",
        encoding="utf-8",
    )
    return root


# --- a relay with STARTTLS and AUTH ----------------------------------------------------------------------


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1, from a CA made here."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test relay CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "relay.pem", folder / "relay.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class TlsRelay:
    """aiosmtpd with STARTTLS and AUTH (LOGIN/PLAIN, only after STARTTLS), storing what it receives."""

    def __init__(self, folder: Path) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.ca, cert, key = make_tls(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.server = SmtpServer("127.0.0.1", free_port())

        def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
            good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
                SMTP_USER.encode(),
                SMTP_PASSWORD.encode(),
            )
            return AuthResult(success=good)

        self.controller = Controller(
            StoreHandler(self.server),
            hostname="127.0.0.1",
            port=self.server.port,
            tls_context=context,
            require_starttls=True,
            authenticator=authenticator,
            auth_require_tls=True,
        )
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp+starttls://127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        self.controller.stop()
