"""A throw-away PostgreSQL server: Debian's binaries, `initdb` + `pg_ctl` in a temp folder, a free port.

The server runs as user `nobody` when the tests run as root (PostgreSQL refuses to run as root), on
127.0.0.1 only, without fsync (the data is thrown away). Each test gets a database of its own
(`new_database`), upgraded to the current schema unless asked not to. Used by the tests and the
`scale` benchmark.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    return Path(found[-1]) if found else None


def available() -> bool:
    bindir = _bindir()
    return bindir is not None and (bindir / "initdb").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    def __init__(self) -> None:
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
        self.port = _free_port()
        self._as: list[str] = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody")

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, cwd=self.dir, timeout=120)

    def start(self) -> PgCluster:
        data = self.dir / "data"
        self._run(
            str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
        )
        return self.resume()

    def resume(self) -> PgCluster:
        """Start the server (again, after `halt`) on the same port and data."""
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        data = self.dir / "data"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )
        return self

    def halt(self) -> None:
        """Stop the server the hard way (`-m immediate`: no shutdown checkpoint, clients cut off), keeping its data."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        try:
            if (self.dir / "data" / "postmaster.pid").exists():  # not already halted
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            # `rm -rf`, not shutil.rmtree: rmtree opens each folder by a name relative to its parent ("data"),
            # which the hermetic guard of a test that stops its own cluster cannot tell from the checkout's.
            subprocess.run(["rm", "-rf", str(self.dir)], check=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, *, upgrade: bool = True) -> str:
        """A fresh empty database; its URL. Upgraded to the current schema unless `upgrade` is false."""
        import psycopg

        from newsletter.storage import Postgres

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        url = self.url(name)
        if upgrade:
            Postgres(url).upgrade()
        return url
