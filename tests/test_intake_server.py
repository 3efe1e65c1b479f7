"""Story intake over real HTTP: a server on 127.0.0.1 serves the fixtures, with ETag / Last-Modified, 304s,
slow and trickling answers, oversized and compressed bodies, redirects and wrong content types.

The server and the small helpers here are shared by the other test_intake_* modules.
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from newsletter.config import load_settings
from newsletter.intake import import_configured, import_feed, import_page

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "intake"
RSS = "application/rss+xml; charset=utf-8"


# --- the server -------------------------------------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    content_type: str | None = "text/html; charset=utf-8"
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    redirect: str | None = None
    delay: float = 0.0  # seconds before anything is sent
    trickle: float | None = None  # seconds between single bytes of the body
    endless: bool = False  # a body without Content-Length that never ends
    gzip: bool = False


@dataclass
class FixtureServer:
    host: str = "127.0.0.1"
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(self, path: str, body: bytes | str = b"", **options: Any) -> str:
        self.routes[path] = Route(body=body.encode() if isinstance(body, str) else body, **options)
        return self.url(path)

    def fixture(self, path: str, name: str, content_type: str, **options: Any) -> str:
        return self.add(path, (FIXTURES / name).read_bytes(), content_type=content_type, **options)

    def hits(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [headers for p, headers in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        fs = self.server.fixture
        path = urlsplit(self.path).path
        with fs.lock:
            fs.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
        route = fs.routes.get(path)
        try:
            if route is None:
                self._plain(404, b"not found")
            elif route.redirect:
                self.send_response(302)
                self.send_header("Location", route.redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._serve(route)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose (size cap, deadline)

    def _plain(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, route: Route) -> None:
        if route.delay:
            time.sleep(route.delay)
        fresh = (route.etag and self.headers.get("If-None-Match") == route.etag) or (
            route.last_modified and self.headers.get("If-Modified-Since") == route.last_modified
        )
        if fresh and route.status == 200:
            self.send_response(304)
            if route.etag:
                self.send_header("ETag", route.etag)
            self.end_headers()
            return
        body = gzip.compress(route.body) if route.gzip else route.body
        self.send_response(route.status)
        if route.content_type:
            self.send_header("Content-Type", route.content_type)
        if route.etag:
            self.send_header("ETag", route.etag)
        if route.last_modified:
            self.send_header("Last-Modified", route.last_modified)
        if route.gzip:
            self.send_header("Content-Encoding", "gzip")
        if route.endless:
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"<p>" + b"x" * 65_536 + b"</p>\n"
            for _ in range(2000):  # ~130 MB at most, should the client never stop reading
                self.wfile.write(chunk)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if route.trickle is None:
            self.wfile.write(body)
            return
        for i in range(len(body)):
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()
            time.sleep(route.trickle)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fixture: FixtureServer


def serve() -> Iterator[FixtureServer]:
    """Run a real HTTP server on 127.0.0.1 serving the routes a test adds; it records every request.

    A generator, so other test modules make it their own `http_server` fixture with `yield from serve()`.
    """
    server = _Server(("127.0.0.1", 0), _Handler)
    fs = FixtureServer(port=server.server_address[1])
    server.fixture = fs
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fs
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_server() -> Iterator[FixtureServer]:
    yield from serve()


# --- helpers shared by the intake tests -------------------------------------------------------------


def make_root(tmp_path: Path, config: str = "") -> Path:
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True)
    if config:
        (root / "newsletter.toml").write_text(config, encoding="utf-8")
    return root


def settings(root: Path) -> Any:
    return load_settings(root, environ={})


def front(path: Path) -> dict[str, Any]:
    match = re.match(r"---\n(.*?)\n---\n", path.read_text(encoding="utf-8"), re.S)
    assert match, f"{path}: no front matter"
    return yaml.safe_load(match.group(1))


def body(path: Path) -> str:
    return path.read_text(encoding="utf-8").split("\n---\n", 1)[1]


def story_files(root: Path) -> dict[str, int]:
    """Every story file under stories/ with its modification time (ns), to prove nothing was rewritten."""
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in sorted((root / "stories").rglob("*.md"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- conditional GET --------------------------------------------------------------------------------


def test_etag_is_remembered_and_a_304_rewrites_nothing(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/rss.xml", "rss-media.xml", RSS, etag='"v1"')
    root = make_root(tmp_path)
    first = import_feed(settings(root), url)
    assert (first.written, first.updated, first.failed) == (4, 0, [])
    before = story_files(root)
    assert len(before) == 4

    again = import_feed(settings(root), url)
    assert (again.written, again.updated, again.unchanged, again.failed) == (0, 0, 4, [])
    assert again.sources == [f"{url}: not modified since the last import (HTTP 304)"]
    assert story_files(root) == before
    sent = http_server.hits("/rss.xml")
    assert "if-none-match" not in sent[0]
    assert sent[1]["if-none-match"] == '"v1"'
    assert sent[0]["user-agent"].startswith("newsletter-intake/")
    assert "https://newsletter.example.org" in sent[0]["user-agent"]


def test_last_modified_is_sent_back_as_if_modified_since(http_server: FixtureServer, tmp_path: Path) -> None:
    stamp = "Tue, 05 Mar 2024 09:00:00 GMT"
    url = http_server.fixture("/atom.xml", "atom.xml", "application/atom+xml", last_modified=stamp)
    root = make_root(tmp_path)
    assert import_feed(settings(root), url).written == 2
    again = import_feed(settings(root), url)
    assert (again.written, again.unchanged) == (0, 2)
    assert http_server.hits("/atom.xml")[1]["if-modified-since"] == stamp


def test_a_changed_feed_updates_only_the_changed_entry(http_server: FixtureServer, tmp_path: Path) -> None:
    original = (FIXTURES / "rss-media.xml").read_text(encoding="utf-8")
    url = http_server.add("/rss.xml", original, content_type=RSS, etag='"v1"')
    root = make_root(tmp_path)
    import_feed(settings(root), url)
    before = story_files(root)

    changed = original.replace("Twelve museums will open", "Fifteen museums will open")
    http_server.add("/rss.xml", changed, content_type=RSS, etag='"v2"')
    kept = import_feed(settings(root), url, update=False)
    assert (kept.written, kept.updated, kept.kept, kept.unchanged) == (0, 0, 1, 3)
    assert story_files(root) == before

    # --no-update held the change back, so the next run downloads the feed again instead of a 304.
    updated = import_feed(settings(root), url)
    assert http_server.hits("/rss.xml")[-1]["if-none-match"] == '"v1"'
    assert (updated.updated, updated.unchanged) == (1, 3)
    path = root / "stories/2024/03/05/museums-stay-open-late-for-spring-festival.md"
    assert front(path)["summary"] == "Fifteen museums will open until midnight on Saturday."
    after = story_files(root)
    assert [p for p in after if after[p] != before[p]] == [path.relative_to(root).as_posix()]


# --- slow, big and wrong answers --------------------------------------------------------------------


def test_a_server_that_does_not_answer_times_out_with_one_line(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/slow.xml", "rss-media.xml", RSS, delay=3)
    root = make_root(tmp_path, "[intake]\ntimeout = 0.4\n")
    started = time.monotonic()
    report = import_feed(settings(root), url)
    assert time.monotonic() - started < 2.5
    assert report.failed == [f"{url}: the server sent nothing for 0.4 s"]
    assert story_files(root) == {}


def test_a_server_that_trickles_is_cut_off_by_the_deadline(http_server: FixtureServer, tmp_path: Path) -> None:
    # One byte every 20 ms never trips the per-read timeout; the whole-download deadline (4 × 0.5 s) must.
    url = http_server.fixture("/drip.xml", "rss-media.xml", RSS, trickle=0.02)
    root = make_root(tmp_path, "[intake]\ntimeout = 0.5\n")
    started = time.monotonic()
    report = import_feed(settings(root), url)
    assert time.monotonic() - started < 4
    assert report.failed == [f"{url}: download took longer than 2 s; stopped"]


def test_oversized_answers_are_refused(http_server: FixtureServer, tmp_path: Path) -> None:
    root = make_root(tmp_path, "[intake]\nmax_mb = 0.05\n")
    big = http_server.add("/big.html", b"<p>" + b"word " * 40_000 + b"</p>", content_type="text/html")
    endless = http_server.add("/endless.html", content_type="text/html", endless=True)
    # 10 MB of zeros compress to ~10 KB: the cap applies to what is decompressed.
    bomb = http_server.add("/bomb.xml", b"<rss>" + b"\0" * 10_000_000, content_type=RSS, gzip=True)
    started = time.monotonic()
    assert import_page(settings(root), big).failed == [f"{big}: 0.2 MB is larger than the 0.05 MB limit"]
    assert import_page(settings(root), endless).failed == [
        f"{endless}: larger than the 0.05 MB limit; download stopped"
    ]
    assert import_feed(settings(root), bomb).failed == [f"{bomb}: larger than the 0.05 MB limit; download stopped"]
    assert time.monotonic() - started < 5
    huge_file = tmp_path / "huge.html"
    huge_file.write_bytes(b"<p>" + b"word " * 40_000)
    assert import_page(settings(root), str(huge_file)).failed == [f"{huge_file}: larger than the 0.05 MB limit"]


def test_a_gzip_encoded_feed_is_read(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/rss.xml", "rss-media.xml", RSS, gzip=True)
    assert import_feed(settings(make_root(tmp_path)), url).written == 4


def test_redirects_are_followed_but_limited(http_server: FixtureServer, tmp_path: Path) -> None:
    final = http_server.fixture("/feeds/world.xml", "rss-media.xml", RSS)
    moved = http_server.add("/rss", redirect=final)
    http_server.add("/loop-a", redirect=http_server.url("/loop-b"))
    loop = http_server.add("/loop-b", redirect=http_server.url("/loop-a"))
    root = make_root(tmp_path)
    assert import_feed(settings(root), moved).written == 4
    assert import_feed(settings(root), loop).failed == [f"{loop}: too many redirects (more than 5)"]


def test_http_errors_and_refused_connections_are_one_line(http_server: FixtureServer, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    missing = http_server.url("/gone.xml")
    assert import_feed(settings(root), missing).failed == [f"{missing}: HTTP 404 Not Found"]
    nobody = f"http://127.0.0.1:{free_port()}/rss.xml"
    (failure,) = import_feed(settings(root), nobody).failed
    assert failure.startswith(f"{nobody}: ")
    assert "refused" in failure
    assert "\n" not in failure


def test_content_types_are_checked(http_server: FixtureServer, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    page = http_server.fixture("/article.html", "article-cluttered.html", "text/html; charset=utf-8")
    photo = http_server.add("/photo.jpg", b"\xff\xd8\xff\xe0JFIF", content_type="image/jpeg")
    assert import_feed(settings(root), page).failed == [
        f"{page}: is a web page (text/html), not a feed; for one article use `newsletter import page`"
    ]
    assert import_page(settings(root), photo).failed == [f"{photo}: content type image/jpeg is not an HTML page"]
    assert import_feed(settings(root), photo).failed == [
        f"{photo}: content type image/jpeg is not a feed (RSS, Atom or JSON Feed)"
    ]


def test_one_bad_source_does_not_stop_the_others(http_server: FixtureServer, tmp_path: Path) -> None:
    rss = http_server.fixture("/rss.xml", "rss-media.xml", RSS)
    broken = http_server.add("/broken.json", b"{not json", content_type="application/feed+json")
    missing = http_server.url("/missing.xml")
    config = f"""
[[intake.feeds]]
url = "{missing}"

[[intake.feeds]]
url = "{rss}"
section = "World"

[[intake.feeds]]
url = "{broken}"

[[intake.feeds]]
url = "feeds/atom.xml"
"""
    root = make_root(tmp_path, config)
    (root / "feeds").mkdir()
    (root / "feeds" / "atom.xml").write_bytes((FIXTURES / "atom.xml").read_bytes())
    report = import_configured(settings(root))
    assert report.written == 6
    assert report.failed == [
        f"{missing}: HTTP 404 Not Found",
        f"{broken}: not valid JSON (line 1, column 2: Expecting property name enclosed in double quotes)",
    ]
    sections = sorted(str(front(root / p).get("section")) for p in story_files(root))
    # The configured section overrides the RSS categories; Atom entries keep their first category.
    assert sections == ["Europe", "None", "World", "World", "World", "World"]


def test_environment_can_shorten_the_timeout(http_server: FixtureServer, tmp_path: Path) -> None:
    url = http_server.fixture("/slow.xml", "rss-media.xml", RSS, delay=2)
    root = make_root(tmp_path)
    report = import_feed(load_settings(root, environ={**os.environ, "NEWSLETTER_INTAKE__TIMEOUT": "0.3"}), url)
    assert report.failed == [f"{url}: the server sent nothing for 0.3 s"]
