"""The IMAP bounce mailbox against a real Dovecot (Debian's dovecot-imapd), run unprivileged on loopback.

Each test starts its own Dovecot with a throw-away configuration: IMAPS on a free port with a
certificate made here, one user in a passwd-file, Maildir storage in a temp folder. A small TCP relay in
front of it cuts the connection part-way to show what a dropped connection does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import grp
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.bounces.run import PASSWORD_ENV
from newsletter.bounces.sources import PROCESSED_KEYWORD
from newsletter.cli import cli
from tests.helpers import IN_CI, free_port
from tests.test_bounces import FIXTURES, MEMBERS, entry, make_root

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "imap-test-password"

if not os.path.exists(DOVECOT):
    if IN_CI:
        raise RuntimeError("dovecot is missing: .ci/run installs dovecot-imapd")
    pytest.skip("needs Debian's dovecot-imapd (apt-get install dovecot-imapd)", allow_module_level=True)


def make_certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Imap:
    port: int
    cert: Path
    user: str = "bounces"

    def client(self, port: int | None = None):
        from imapclient import IMAPClient

        context = ssl.create_default_context(cafile=str(self.cert))
        client = IMAPClient("localhost", port=port or self.port, ssl=True, ssl_context=context, timeout=20)
        client.login(self.user, PASSWORD)
        return client

    def append(self, messages: list[bytes]) -> None:
        client = self.client()
        try:
            for raw in messages:
                client.append("INBOX", raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        finally:
            client.logout()

    def count(self, folder: str, criteria: list[str] | None = None) -> int:
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return 0
            client.select_folder(folder, readonly=True)
            return len(client.search(criteria or ["ALL"]))
        finally:
            client.logout()

    def config(self, port: int | None = None, extra: str = "") -> str:
        return (
            f'\n[bounces]\nhost = "localhost"\nport = {port or self.port}\nuser = "{self.user}"\n'
            f'ca_file = "{self.cert}"\n{extra}'
        )


@pytest.fixture
def imap() -> Iterator[Imap]:
    base = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    root_user = os.geteuid() == 0
    user = "nobody" if root_user else getpass.getuser()
    group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    port = free_port()
    for sub in ("run", "state", "home"):
        (base / sub).mkdir()
    cert, key = make_certificate(base)
    (base / "passwd").write_text(f"bounces:{{PLAIN}}{PASSWORD}::::::\n", encoding="utf-8")
    (base / "dovecot.conf").write_text(
        f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = {base}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={base}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  user = {user}
}}
service auth-worker {{
  user = {user}
}}
""",
        encoding="utf-8",
    )
    os.chmod(base, 0o755)
    if root_user:
        for path in [base, *base.rglob("*")]:
            os.chown(path, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    proc = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(base / "dovecot.conf")],
        user=user if root_user else None,
        group=group if root_user else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (base / "dovecot.log").read_text() if (base / "dovecot.log").exists() else ""
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"dovecot did not start: {out} {log}")
            time.sleep(0.1)
        yield Imap(port, cert)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


class Relay:
    """Forwards one TCP port to another and cuts every connection once `limit` bytes came back."""

    def __init__(self, target: int, limit: int) -> None:
        self.target, self.limit = target, limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
                threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
                threading.Thread(target=self._pump, args=(upstream, client, self.limit), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while data := src.recv(16384):
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: limit - sent])
                    self.cut.set()
                    break
                dst.sendall(data)
                sent += len(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


def all_fixtures() -> list[bytes]:
    return [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]


def run(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root)], env={PASSWORD_ENV: PASSWORD})
    return result.exit_code, result.output


def test_imap_run_moves_handled_messages_and_never_repeats(imap: Imap, tmp_path: Path) -> None:
    imap.append(all_fixtures())
    root = make_root(tmp_path, imap.config())
    code, out = run(root)
    assert code == 0, out
    assert "IMAP bounces@localhost:" in out and "read 15 message(s)" in out
    assert out.rstrip().endswith("7 address(es) suppressed; 4 left in the mailbox"), out
    assert entry(root, "ghost@example.net").reason == "bounced"  # type: ignore[union-attr]
    assert entry(root, "complainer@example.com").reason == "complained"  # type: ignore[union-attr]
    # Unrecognised + malformed stay for a person, the two reports that match no one for the next run.
    assert (imap.count("INBOX"), imap.count("processed")) == (4, 11)
    code, out = run(root)
    assert code == 0 and "read 4 message(s)" in out and "0 already handled; 0 address(es) suppressed" in out
    assert (imap.count("INBOX"), imap.count("processed")) == (4, 11)


def test_imap_a_report_for_the_store_is_acted_on_and_an_unmatched_one_waits(imap: Imap, tmp_path: Path) -> None:
    hard, forwarded = (FIXTURES / "postfix-hard.eml").read_bytes(), (FIXTURES / "exim.eml").read_bytes()
    imap.append([hard, forwarded])
    root = make_root(tmp_path, imap.config())
    (root / "newsletter.toml").write_text(imap.config(), encoding="utf-8")  # no CSV: the store is the list
    added = CliRunner().invoke(cli, ["subscribers", "add", "--root", str(root), "ghost@example.net"])
    assert added.exit_code == 0, added.output
    code, out = run(root)
    assert code == 0 and "ghost@example.net: hard — suppressed" in out, out
    assert "gone@example.com: not on the subscriber list; nothing suppressed, left for the next run" in out
    assert (imap.count("INBOX"), imap.count("processed")) == (1, 1)
    result = CliRunner().invoke(
        cli, ["bounces", "--root", str(root), "--subscribers", "subscribers.csv"], env={PASSWORD_ENV: PASSWORD}
    )
    assert "gone@example.com: hard — suppressed" in result.output and "0 already handled" in result.output
    assert (imap.count("INBOX"), imap.count("processed")) == (0, 2)


def test_imap_flag_mode_keeps_messages_in_the_inbox(imap: Imap, tmp_path: Path) -> None:
    imap.append([(FIXTURES / "postfix-hard.eml").read_bytes(), (FIXTURES / "exim.eml").read_bytes()])
    root = make_root(tmp_path, imap.config(extra='processed = "flag"\n'))
    code, out = run(root)
    assert code == 0 and "2 address(es) suppressed" in out, out
    assert imap.count("INBOX") == 2 and imap.count("INBOX", ["KEYWORD", PROCESSED_KEYWORD]) == 2
    assert imap.count("processed") == 0
    code, out = run(root)
    assert "read 0 message(s)" in out


def test_a_refused_login_is_one_line(imap: Imap, tmp_path: Path) -> None:
    root = make_root(tmp_path, imap.config())
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root)], env={PASSWORD_ENV: "wrong"})
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: IMAP bounces@localhost:{imap.port}/INBOX: login refused "
        "(check the user and NEWSLETTER_BOUNCES_PASSWORD)"
    )
    result = CliRunner().invoke(cli, ["bounces", "--root", str(root)], env={PASSWORD_ENV: ""})
    assert result.exit_code == 1 and "NEWSLETTER_BOUNCES_PASSWORD is not set" in result.output


def test_an_untrusted_certificate_is_refused(imap: Imap, tmp_path: Path) -> None:
    root = make_root(tmp_path, imap.config().replace(f'ca_file = "{imap.cert}"\n', ""))
    code, out = run(root)
    assert code == 1 and "cannot connect" in out and "CERTIFICATE_VERIFY_FAILED" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


def padded(name: str, address: str, n: int) -> bytes:
    """A Postfix bounce for `address` with 40 KB of epilogue, so fetching it takes many packets."""
    raw = (FIXTURES / name).read_bytes().replace(b"ghost@example.net", address.encode())
    raw = raw.replace(b"4Jx2kQ0ZfJz9sQD@mail", f"4Jx2kQ0ZfJz9sQD-{n}@mail".encode())
    return raw + b"\n" + (b"padding " * 9 + b"\n") * 560


def test_a_dropped_connection_is_one_line_and_a_rerun_finishes(imap: Imap, tmp_path: Path) -> None:
    addresses = ["ghost@example.net", "gone@example.com", "nouser@example.net"]
    assert all(a in MEMBERS for a in addresses)
    imap.append([padded("postfix-hard.eml", a, i) for i, a in enumerate(addresses)])
    relay = Relay(imap.port, limit=70_000)  # the first message and a half come through, then the line drops
    try:
        root = make_root(tmp_path, imap.config(port=relay.port))
        code, out = run(root)
    finally:
        relay.close()
    assert relay.cut.is_set()
    assert code == 1, out
    assert "the server closed or dropped the connection" in out and "run again" in out
    assert "Traceback" not in out
    assert "read 1 message(s)" in out and "1 address(es) suppressed" in out
    assert entry(root, "ghost@example.net") is not None and entry(root, "gone@example.com") is None
    (root / "newsletter.toml").write_text(
        (root / "newsletter.toml").read_text().replace(f"port = {relay.port}", f"port = {imap.port}"), encoding="utf-8"
    )
    code, out = run(root)
    assert code == 0 and "read 2 message(s)" in out and "2 address(es) suppressed" in out, out
    assert all(entry(root, a) is not None for a in addresses)
    assert (imap.count("INBOX"), imap.count("processed")) == (0, 3)
