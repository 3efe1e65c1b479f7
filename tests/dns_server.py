"""A real authoritative DNS server for the tests: Knot DNS (`knotd`) on a free loopback port.

The test writes the zones (`zone(name, records)`), then `start()` writes a config beside them and runs
knotd — as `nobody` when the tests run as root, like the PostgreSQL clusters — and waits until it
answers. `stop()` ends it. Nothing outside its temporary folder is touched.

`in_private_network(server, command)` serves the zones to a program that can only ask the system's
resolver (opendkim-testmsg): in a network and mount namespace of its own (root only), knotd answers on
127.0.0.1:53 and a private /etc/resolv.conf points there; the machine's own stays as it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

KNOTD = Path("/usr/sbin/knotd")


def available() -> bool:
    return KNOTD.is_file()


def _free_port() -> int:
    """A loopback port free for both UDP and TCP (knotd listens on both)."""
    import socket

    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class KnotServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="newsletter-knot-"))
        self.port = _free_port()
        self.zones: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """HOST:PORT, as `newsletter doctor --nameserver` takes it."""
        return f"127.0.0.1:{self.port}"

    def zone(self, origin: str, records: list[str]) -> None:
        """A zone `origin` with an SOA and NS of its own, then `records` (zone-file lines, relative or absolute)."""
        head = [
            f"$ORIGIN {origin}.",
            "$TTL 300",
            f"@ SOA ns.{origin}. hostmaster.{origin}. 1 3600 900 604800 300",
            "@ NS ns",
            "ns A 127.0.0.1",
        ]
        self.zones[origin] = "\n".join(head + records) + "\n"

    def write(self, port: int | None = None) -> list[str]:
        """Zones and config on disk (listening on `port`, default its own); the command that runs knotd."""
        port = port or self.port
        for sub in ("zones", "run", "db"):
            (self.dir / sub).mkdir(exist_ok=True)
        for origin, text in self.zones.items():
            (self.dir / "zones" / f"{origin}.zone").write_text(text, encoding="utf-8")
        zone_list = "\n".join(f"  - domain: {origin}" for origin in self.zones)
        (self.dir / "knot.conf").write_text(
            f"""server:
    rundir: "{self.dir / "run"}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{self.dir / "db"}"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{self.dir / "zones"}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
{zone_list}
""",
            encoding="utf-8",
        )
        prefix: list[str] = []
        if os.geteuid() == 0:  # unprivileged: the port is high, the files are its own
            os.chmod(self.dir, 0o755)
            for path in [self.dir, *self.dir.rglob("*")]:
                shutil.chown(path, "nobody")
            prefix = ["runuser", "-u", "nobody", "--"]
        return [*prefix, str(KNOTD), "-c", str(self.dir / "knot.conf")]

    def start(self) -> KnotServer:
        # A free port can be taken by another process (an outgoing connection's ephemeral port) between
        # the look and knotd's bind: then another port, a few times.
        for attempt in range(5):
            self._proc = subprocess.Popen(self.write(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                self._wait()
                return self
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt == 4:
                    raise
                self.port = _free_port()
        return self

    def _wait(self) -> None:
        origin = next(iter(self.zones))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"knotd exited: {err}")
            try:
                reply = dns.query.udp(dns.message.make_query(origin, "SOA"), "127.0.0.1", timeout=0.5, port=self.port)
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("knotd did not answer within 15 s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def can_unshare() -> bool:
    """Root, and namespaces allowed here (a container may forbid them)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-mn", "true"], capture_output=True).returncode == 0


def in_private_network(server: KnotServer, command: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run `command` (reading `stdin`) where the system resolver is `server`, serving on 127.0.0.1:53."""
    import shlex

    knotd = shlex.join(server.write(port=53))
    (server.dir / "resolv.conf").write_text("nameserver 127.0.0.1\n", encoding="utf-8")
    (server.dir / "stdin").write_bytes(stdin)
    origin = next(iter(server.zones))
    script = f"""set -e
ip link set lo up
sysctl -q -w net.ipv4.ip_unprivileged_port_start=53   # this namespace only: knotd runs as nobody
mount --bind {server.dir / "resolv.conf"} /etc/resolv.conf
{knotd} 2>{server.dir / "knot.log"} &
for i in $(seq 100); do
  getent hosts ns.{origin} >/dev/null 2>&1 && break
  sleep 0.1
done
set +e
{shlex.join(command)} < {server.dir / "stdin"}
status=$?
kill %1
wait
exit $status
"""
    (server.dir / "run.sh").write_text(script, encoding="utf-8")
    return subprocess.run(["unshare", "-mn", "bash", str(server.dir / "run.sh")], capture_output=True, timeout=60)
