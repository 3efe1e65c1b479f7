"""Shared fixtures: a copy of the demo newsletter, a real SMTP server, a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
IN_CI = bool(os.environ.get("CI"))


def copy_demo_stories(dest: Path, *, languages: bool = False) -> None:
    """Copy the demo's stories to `dest`: the English edition's, or (`languages`) the French and Arabic
    samples too (stories/samples/fr, stories/samples/ar), which the repo's newsletter.toml publishes as
    their own editions."""
    ignore = None if languages else shutil.ignore_patterns("fr", "ar")
    shutil.copytree(REPO / "stories", dest, ignore=ignore)


def check_eml_tool() -> Path:
    """The independent `.eml` checker beside the checkout (`../shared/tools/check_eml.py`).

    Skips the calling test, with the reason, where that file is absent — except under CI=true, where its
    absence is a failure.
    """
    tool = REPO.parent / "shared" / "tools" / "check_eml.py"
    if not tool.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the .eml checker is missing: {tool.relative_to(REPO.parent)} beside the checkout")
        pytest.skip("no ../shared/tools/check_eml.py beside the checkout (the independent .eml checker)")
    return tool


@pytest.fixture
def demo_root(tmp_path: Path) -> Path:
    """A newsletter folder holding a copy of the English demo stories (the repo's own stay untouched)."""
    root = tmp_path / "paper"
    copy_demo_stories(root / "stories")
    return root


@pytest.fixture
def languages_root(tmp_path: Path) -> Path:
    """The whole demo: English, French and Arabic stories and the repo's newsletter.toml (three editions)."""
    root = tmp_path / "paper"
    copy_demo_stories(root / "stories", languages=True)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    return root


def write_story(root: Path, rel: str, front: str, body: str = "Body text.\n") -> Path:
    path = root / "stories" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front.strip()}\n---\n{body}", encoding="utf-8")
    return path


@pytest.fixture
def empty_root(tmp_path: Path) -> Path:
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True)
    return root


# --- SMTP -------------------------------------------------------------------------------------------


@dataclass
class SmtpRecord:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class SmtpServer:
    host: str
    port: int
    received: list[SmtpRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"


class _StoreHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server, session, envelope):
        with self.server.lock:
            self.server.received.append(SmtpRecord(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def free_port() -> int:
    """A port nothing listens on now (aiosmtpd checks readiness by connecting, so it needs a real one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real aiosmtpd server on 127.0.0.1 that stores what it receives."""
    from aiosmtpd.controller import Controller

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(_StoreHandler(server), hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


# --- browser ----------------------------------------------------------------------------------------


def placeholder_png(width: int, height: int) -> bytes:
    """A flat grey PNG standing in for the photo host, which tests cannot reach."""
    raw = b"".join(b"\x00" + bytes((150, 160, 175)) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright. Never skipped in CI."""
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing: .ci/run must install Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


# --- node tools (the reference MJML compiler, axe-core) ------------------------------------------------

NODE_TOOLS = Path(os.environ.get("NEWSLETTER_NODE_TOOLS") or REPO / "tests" / "node")


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """tests/node with its npm packages installed (`npm ci --prefix tests/node`: scripts/test and .ci/run
    do it). Never skipped in CI."""
    if not (NODE_TOOLS / "node_modules" / "mjml").is_dir() or not shutil.which("node"):
        message = f"node and the npm packages of {NODE_TOOLS} are needed: npm ci --prefix {NODE_TOOLS}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return NODE_TOOLS


# --- PostgreSQL -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """One throw-away PostgreSQL server for the session (see pg_cluster.py); never skipped in CI."""
    import pg_cluster as pgc

    if not pgc.available() and not IN_CI:
        pytest.skip("PostgreSQL binaries not installed")
    cluster = pgc.PgCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    """A fresh database at the current schema, for one test."""
    return str(pg_cluster.new_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every store test runs twice: SQLite files (empty URL) and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    return str(request.getfixturevalue("pg_cluster").new_database())
