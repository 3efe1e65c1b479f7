"""Shared fixtures: a copy of the demo newsletter, a real SMTP server, a real headless Chromium, a
throw-away PostgreSQL server, and the guard that keeps every test off the checkout's editor folders.

Helpers that are not fixtures live in tests/helpers/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import hermetic
from tests.helpers.demo import CHROMIUM, IN_CI, REPO, make_demo_root
from tests.helpers.smtp import SmtpServer, StoreHandler, free_port


@pytest.fixture(autouse=True)
def _hermetic() -> Iterator[None]:
    """Fail a test (or the fixtures before it) that read or wrote the checkout's stories/, data/, outbox/,
    site/ or newsletter.toml other than through the copy helpers (tests/helpers/hermetic.py)."""
    hermetic.install()
    yield
    hermetic.check()


@pytest.fixture
def demo_root(tmp_path: Path) -> Path:
    """A newsletter folder holding a copy of the English demo stories (the checkout's own stay untouched)."""
    return make_demo_root(tmp_path / "paper")


@pytest.fixture
def languages_root(tmp_path: Path) -> Path:
    """The whole demo: English, French and Arabic stories and the demo's newsletter.toml (three editions)."""
    return make_demo_root(tmp_path / "paper", languages=True)


@pytest.fixture
def empty_root(tmp_path: Path) -> Path:
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True)
    return root


# --- SMTP -------------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real aiosmtpd server on 127.0.0.1 that stores what it receives."""
    from aiosmtpd.controller import Controller

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(StoreHandler(server), hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


# --- browser ----------------------------------------------------------------------------------------


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
    from tests import pg_cluster as pgc

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
