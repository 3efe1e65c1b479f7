"""`newsletter preview`: a real server subprocess answered over HTTP, plus the rendering state in-process.

The browser side (widths, dark mode, live reload seen in Chromium) is in test_preview_browser.py, which
reuses `PreviewServer` and `make_root` from here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from watchfiles import Change

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery.suppression import SuppressionList, suppression_path
from newsletter.delivery.unsubscribe import make_token
from newsletter.edition.build import build
from newsletter.web.preview.app import create_app, dark_variant, has_dark_styles, scheme_variant
from newsletter.web.preview.security import allowed_hosts, loopback_host
from newsletter.web.preview.state import Previewer
from newsletter.web.preview.watcher import watch
from tests.helpers import REPO, copy_demo_stories, write_story

DAY = date(2016, 12, 30)
EARLIER = date(2016, 12, 29)
LEAD = "Syrian regime emboldened ahead of Russia-backed peace talks"
LEAD_FILE = "stories/2016/12/30/syrian-regime-emboldened-ahead-of-russia-backed-peace-talks.md"
HOSTILE_TITLE = "Markets <script>alert(1)</script> & bonds"
SECRET = "preview-test-secret-4f1c0e2b9a"
LIST_ID = "morning-brief.newsletter.example.org"


def run_async(coro):
    """asyncio.run in a thread of its own: the session's Playwright browser keeps a loop running on this one."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def make_root(base: Path, *, templates: bool = False) -> Path:
    """The demo newsletter plus an earlier edition whose headline is hostile HTML."""
    root = base / "paper"
    copy_demo_stories(root / "stories")
    if templates:
        shutil.copytree(REPO / "templates", root / "templates")
    write_story(
        root,
        "2016/12/29/markets.md",
        f'title: "{HOSTILE_TITLE}"\npublished: 2016-12-29T04:00:00+01:00\nsection: Business\n'
        'summary: "A quiet session before the holiday, with thin trading across Europe and Asia."',
        "Trading was thin.\n",
    )
    return root


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any NEWSLETTER_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(extra)
    return env


class PreviewServer:
    """`python -m newsletter preview --port 0` in a subprocess; `url` is the line it prints first."""

    def __init__(
        self, root: Path, *args: str, env: dict[str, str] | None = None, port: str | None = "0", timeout: float = 30
    ) -> None:
        self.root = root
        port_args = ["--port", port] if port is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "preview", "--root", str(root), *port_args, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**(env if env is not None else clean_env()), "PYTHONUNBUFFERED": "1"},
        )
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str | None] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()
        try:
            first = self.stdout.get(timeout=timeout)
        except queue.Empty:
            first = None
        if not first or not first.startswith("http://"):
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"preview did not start: {first!r}; stderr: {self.err_text}")
        self.url = first.strip()
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))

    @property
    def err_text(self) -> str:
        return "".join(line for line in self.stderr if line)

    @staticmethod
    def _pump(stream, put) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            put(line)
        put(None)

    def get(self, path: str, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
        return httpx.get(self.url.rstrip("/") + path, timeout=10, **kw)

    def post(self, path: str, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
        return httpx.post(self.url.rstrip("/") + path, timeout=30, **kw)

    def csrf(self, path: str = f"/editions/{DAY}/") -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert match, "the edition page carries no CSRF token"
        return match.group(1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("preview did not stop within 10 s of Ctrl+C")
        return self.proc.returncode


def wait_until(check, timeout: float = 5.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(interval)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreviewServer]:
    root = make_root(tmp_path_factory.mktemp("preview"))
    srv = PreviewServer(root, env=clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET))
    try:
        yield srv
    finally:
        srv.stop()


# --- the command --------------------------------------------------------------------------------------


def test_prints_the_loopback_url_first(server: PreviewServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", server.url)
    assert server.port != 0


def test_help_names_the_default_port_and_an_example() -> None:
    result = CliRunner().invoke(cli, ["preview", "--help"])
    assert result.exit_code == 0
    assert "http://127.0.0.1:8000/" in result.output
    assert "newsletter preview --root . --port 8000" in result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org", "10.0.0.1"])
def test_refuses_a_host_that_is_not_loopback(demo_root: Path, host: str) -> None:
    result = CliRunner().invoke(cli, ["preview", "--root", str(demo_root), "--host", host])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"--host {host}: refused" in lines[0]
    assert "127.0.0.1" in lines[0]


def test_loopback_hosts() -> None:
    assert loopback_host("localhost") == "127.0.0.1"
    assert loopback_host("127.0.0.1") == "127.0.0.1"
    assert loopback_host("127.0.0.2") == "127.0.0.2"
    assert loopback_host("::1") == "::1"
    assert loopback_host("[::1]") == "::1"
    for bad in ("0.0.0.0", "::", "8.8.8.8", "localhost.example.org", ""):
        with pytest.raises(ValueError):
            loopback_host(bad)
    assert allowed_hosts("127.0.0.1", 8000) == {"localhost:8000", "127.0.0.1:8000", "[::1]:8000"}
    assert "localhost" in allowed_hosts("127.0.0.1", 80)


def test_a_taken_port_is_one_clear_line_and_exit_1(demo_root: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "newsletter", "preview", "--root", str(demo_root), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
    finally:
        taken.close()
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"Error: port {port} on 127.0.0.1 is already in use (another preview?); choose another with --port"
    ]


def test_port_from_the_preview_table_and_its_checks(demo_root: Path) -> None:
    (demo_root / "newsletter.toml").write_text("[preview]\nport = 70000\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["preview", "--root", str(demo_root)])
    assert result.exit_code == 1
    assert "[preview] port must be a whole number from 0 to 65535, got 70000" in result.output
    (demo_root / "newsletter.toml").write_text("[preview]\nport = 0\n", encoding="utf-8")
    srv = PreviewServer(demo_root, port=None)  # no --port: the table's 0 picks a free port
    try:
        assert srv.get("/").status_code == 200
    finally:
        assert srv.stop() == 0


# --- pages ---------------------------------------------------------------------------------------------


def test_an_empty_folder_says_what_to_do(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    root.mkdir()  # not even stories/ yet: the preview starts and waits for the first story

    async def visit() -> list[httpx.Response]:
        app = create_app(Previewer(root), watch=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            return [await client.get("/"), await client.get("/editions/")]

    for page in run_async(visit()):
        assert page.status_code == 200
        assert f"No stories yet under <code>{root / 'stories'}</code>" in page.text


def test_index_lists_every_edition(server: PreviewServer) -> None:
    page = server.get("/editions/")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-date="([\d-]+)">', page.text)
    assert rows == [DAY.isoformat(), EARLIER.isoformat()]
    assert "The Morning Brief — Friday, December 30, 2016" in page.text
    assert "The Morning Brief — Thursday, December 29, 2016" in page.text
    assert page.text.count("not built") == 2
    assert "of Gmail's 102 KB" in page.text


def test_home_is_the_newest_edition_as_subscribers_get_it(server: PreviewServer) -> None:
    home = server.get("/")
    assert home.status_code == 200
    assert f'src="/editions/{DAY}/email.html?v=' in home.text
    email = server.get(f"/editions/{DAY}/email.html")
    assert email.status_code == 200
    settings = load_settings(server.root, environ={})
    expected = build(settings, DAY).rendered.html
    # Byte for byte what subscribers get, but for the photos: taken from site/images/ on this machine.
    published = f"{settings.base_url.rstrip('/')}/images/"
    assert published in expected and published not in email.text
    assert email.text.replace('"/site-images/', f'"{published}') == expected
    assert "default-src 'none'" in email.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in email.headers["content-security-policy"]
    assert email.headers["x-content-type-options"] == "nosniff"


def test_text_eml_and_manifest(server: PreviewServer) -> None:
    text = server.get(f"/editions/{DAY}/text")
    assert '<pre class="plain" id="plain-text">' in text.text
    assert LEAD in text.text
    eml = server.get(f"/editions/{DAY}/newsletter.eml")
    assert eml.headers["content-type"] == "message/rfc822"
    assert eml.headers["content-disposition"] == f'attachment; filename="newsletter-{DAY}.eml"'
    msg = message_from_bytes(eml.content, policy=policy.default)
    assert msg["Subject"] == "The Morning Brief — Friday, December 30, 2016"
    assert LEAD in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    manifest = server.get(f"/editions/{DAY}/manifest.json").json()
    assert manifest["edition"] == DAY.isoformat()
    assert manifest["sizes"]["gmail_clip_bytes"] == 102 * 1024
    page = server.get(f"/editions/{DAY}/manifest")
    assert "of Gmail's 102 KB clip limit" in page.text
    assert manifest["window"]["start"] in page.text
    assert all(s["file"] in page.text for s in manifest["stories"])


def test_story_text_is_escaped_everywhere(server: PreviewServer) -> None:
    for path in ("/editions/", f"/editions/{EARLIER}/manifest", f"/editions/{EARLIER}/"):
        body = server.get(path).text
        assert "<script>alert(1)</script>" not in body, path
    assert (
        "Markets &lt;script&gt;alert(1)&lt;/script&gt; &amp; bonds" in server.get(f"/editions/{EARLIER}/manifest").text
    )
    missing = server.get("/editions/2016-13-45/")
    assert missing.status_code == 404
    probe = server.get("/editions/%3Cb%3Ehi%3C%2Fb%3E/")
    assert probe.status_code == 404 and "<b>hi</b>" not in probe.text


def test_unknown_dates_are_404(server: PreviewServer) -> None:
    page = server.get("/editions/2015-01-01/")
    assert page.status_code == 404
    assert "No edition dated 2015-01-01" in page.text
    assert server.get("/editions/2015-01-01/email.html").status_code == 404


# --- guards --------------------------------------------------------------------------------------------


def test_host_header_must_be_a_loopback_name_with_our_port(server: PreviewServer) -> None:
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert server.get("/", headers={"Host": host}).status_code == 200, host
    for host in (
        "evil.example",
        f"evil.example:{port}",
        f"127.0.0.1:{port + 1}",
        "127.0.0.1",
        f"127.0.0.1.nip.io:{port}",
    ):
        response = server.get("/", headers={"Host": host})
        assert response.status_code == 403, host
        assert "Host not allowed" in response.text
    # the unsubscribe endpoint and the event stream are behind the same check
    assert server.get("/events", headers={"Host": "evil.example"}).status_code == 403
    assert server.post("/u/x.y", headers={"Host": "evil.example"}).status_code == 403


def test_forms_need_the_token_and_nothing_is_written_until_asked(server: PreviewServer) -> None:
    for path in ("/", "/editions/", f"/editions/{DAY}/", f"/editions/{DAY}/text", f"/editions/{DAY}/manifest"):
        assert server.get(path).status_code == 200
    server.get(f"/editions/{DAY}/newsletter.eml")
    outbox = server.root / "outbox"
    assert not outbox.exists(), "the preview wrote to the outbox without being asked"

    token = server.csrf()
    no_token = server.post(f"/editions/{DAY}/write", data={})
    assert no_token.status_code == 403
    wrong = server.post(f"/editions/{DAY}/write", data={"csrf": "guess"})
    assert wrong.status_code == 403
    foreign = server.post(f"/editions/{DAY}/write", data={"csrf": token}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert "another site" in foreign.text
    assert not outbox.exists()

    asked = server.post(f"/editions/{DAY}/write", data={"csrf": token}, headers={"Origin": server.url.rstrip("/")})
    assert asked.status_code == 303
    page = server.get(asked.headers["location"])
    assert "Wrote " in page.text
    assert sorted(p.name for p in (outbox / DAY.isoformat()).iterdir()) == [
        "manifest.json",
        "newsletter.eml",
        "newsletter.html",
        "newsletter.txt",
    ]
    # The file written keeps the photos under base_url; the preview's page takes them from site/images/.
    shown = server.get(f"/editions/{DAY}/email.html").text
    assert (outbox / DAY.isoformat() / "newsletter.html").read_text(encoding="utf-8") == shown.replace(
        '"/site-images/', '"https://newsletter.example.org/images/'
    )
    index = server.get("/editions/").text
    assert index.count("not built") == 1 and " UTC" in index


def test_send_test_is_disabled_without_smtp(server: PreviewServer) -> None:
    page = server.get(f"/editions/{DAY}/").text
    form = page.split('id="send-test"', 1)[1].split("</form>", 1)[0]
    assert "<fieldset disabled>" in form
    assert "Disabled: no SMTP server is configured" in form
    answer = server.post(f"/editions/{DAY}/send-test", data={"csrf": server.csrf(), "address": "ed@example.org"})
    assert answer.status_code == 303
    assert "Not sent: no SMTP server is configured" in server.get(answer.headers["location"]).text


# --- unsubscribe (RFC 8058) ------------------------------------------------------------------------------


def test_unsubscribe_one_click_get_and_forged(server: PreviewServer) -> None:
    settings = load_settings(server.root, environ={})
    assert settings.list.id == LIST_ID
    path = suppression_path(settings)  # the reader base, where the list lives with the readers
    address = "reader@example.org"
    token = make_token(SECRET.encode(), LIST_ID, address)

    page = server.get(f"/u/{token}")
    assert page.status_code == 200
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    with SuppressionList(path) as suppression:
        assert address not in suppression, "a GET must not unsubscribe"

    done = server.post(
        f"/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200, done.text
    with SuppressionList(path) as suppression:
        assert address in suppression

    forged = make_token(b"another secret", LIST_ID, "victim@example.org")
    assert server.post(f"/u/{forged}", content=b"List-Unsubscribe=One-Click").status_code == 403
    assert server.get(f"/u/{forged}").status_code == 403
    assert server.post("/u/not-a-token", content=b"List-Unsubscribe=One-Click").status_code == 400
    assert server.get("/u/not-a-token").status_code == 400
    put = httpx.put(server.url + f"u/{token}", timeout=10)
    assert put.status_code == 405 and put.headers["allow"] == "GET, HEAD, POST"
    with SuppressionList(path) as suppression:
        assert "victim@example.org" not in suppression
        assert suppression.count() == 1


def test_unsubscribe_link_for_trying_the_flow(server: PreviewServer) -> None:
    answer = server.get("/unsubscribe-link", params={"address": "Someone@Example.org"})
    assert answer.status_code == 303
    token = make_token(SECRET.encode(), LIST_ID, "Someone@example.org")
    assert answer.headers["location"] == f"/u/{token}"
    assert server.get("/unsubscribe-link", params={"address": "not an address"}).status_code == 400


# --- live reload ---------------------------------------------------------------------------------------


def _next_event(lines: Iterator[str]) -> tuple[str, str]:
    event = data = ""
    for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line.split(":", 1)[1].strip()
        elif line == "" and event:
            return event, data
    raise AssertionError("event stream ended")


def test_a_saved_story_is_announced_within_a_second(server: PreviewServer) -> None:
    story = server.root / LEAD_FILE
    original = story.read_text(encoding="utf-8")
    server.get(f"/editions/{DAY}/")  # someone is looking at this edition: it is rebuilt before the event
    with httpx.Client(timeout=5) as client, client.stream("GET", server.url + "events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert _next_event(lines)[0] == "hello"
        started = time.monotonic()
        story.write_text(original.replace(LEAD, "Peace talks set for Astana"), encoding="utf-8")
        event, _ = _next_event(lines)
        elapsed = time.monotonic() - started
        assert event == "change"
        assert elapsed < 1.0, f"the change event came {elapsed:.2f} s after the save"
        assert "Peace talks set for Astana" in server.get(f"/editions/{DAY}/email.html").text
        story.write_text(original, encoding="utf-8")
        assert _next_event(lines)[0] == "change"
    assert LEAD in server.get(f"/editions/{DAY}/email.html").text


def test_stops_cleanly_with_an_open_event_stream(tmp_path: Path) -> None:
    srv = PreviewServer(make_root(tmp_path))
    with httpx.Client(timeout=5) as client, client.stream("GET", srv.url + "events") as stream:
        assert _next_event(stream.iter_lines())[0] == "hello"
        started = time.monotonic()
        assert srv.stop() == 0
        assert time.monotonic() - started < 5
    assert "Traceback" not in srv.err_text


# --- the rendering state, in process ---------------------------------------------------------------------


def test_a_broken_story_keeps_the_last_good_render(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    previewer = Previewer(root)
    good = previewer.edition(DAY)
    assert good.ok and good.build is not None
    story = root / LEAD_FILE
    original = story.read_text(encoding="utf-8")
    story.write_text(original.replace("published: 2016-12-30T05:30:00+01:00", "published: yesterday"), "utf-8")
    previewer.changed()
    broken = previewer.edition(DAY)
    assert broken.problems == (f"{LEAD_FILE}: field 'published': not an ISO 8601 datetime: 'yesterday'",)
    assert broken.stale and broken.build is good.build
    assert previewer.overview().problems == broken.problems
    story.write_text(original, encoding="utf-8")
    previewer.changed()
    fixed = previewer.edition(DAY)
    assert fixed.ok and not fixed.stale and fixed.build is not good.build


def test_broken_from_the_start_shows_the_edition_without_it(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write_story(root, "2016/12/30/bad.md", "title: Broken\npublished: 2016-12-30T05:00:00")
    view = Previewer(root).edition(DAY)
    assert view.problems == (
        "stories/2016/12/30/bad.md: field 'published': has no UTC offset: "
        "'2016-12-30T05:00:00' (write e.g. 2016-12-30T05:00:00+01:00)",
    )
    assert view.partial and view.build is not None
    assert LEAD in view.build.rendered.html


def test_template_and_config_errors_name_file_and_line(tmp_path: Path) -> None:
    root = make_root(tmp_path, templates=True)
    previewer = Previewer(root)
    assert previewer.edition(DAY).ok
    card = root / "templates" / "partials" / "lead.mjml.j2"
    original = card.read_text(encoding="utf-8")
    card.write_text(original + "{% if %}\n", encoding="utf-8")
    previewer.changed()
    view = previewer.edition(DAY)
    line = original.count("\n") + 1
    assert len(view.problems) == 1
    assert view.problems[0].startswith(f"templates/partials/lead.mjml.j2:{line}: ")
    assert view.stale
    card.write_text(original, encoding="utf-8")

    (root / "newsletter.toml").write_text('timezone = "Mars/Olympus"\n', encoding="utf-8")
    previewer.changed()
    view = previewer.edition(DAY)
    assert view.problems == ("newsletter.toml: 'timezone': unknown time zone 'Mars/Olympus'",)
    assert view.stale and view.build is not None
    assert str(previewer.settings.timezone) == "Europe/Paris"  # the last config that loaded
    (root / "newsletter.toml").write_text('title = "The Evening Brief"\n', encoding="utf-8")
    previewer.changed()
    assert previewer.edition(DAY).build.rendered.subject.startswith("The Evening Brief")  # type: ignore[union-attr]


def test_dark_variant() -> None:
    plain = "<html><head><style>p{color:#000}</style></head><body><p>x</p></body></html>"
    assert not has_dark_styles(plain)
    inverted = dark_variant(plain)
    assert 'id="preview-dark"' in inverted and "invert(1)" in inverted
    assert inverted.index("preview-dark") < inverted.index("</head>")
    styled = (
        "<html><head><style>@media (prefers-color-scheme: dark) and (max-width: 480px) { p { color: #fff } }"
        "@media (prefers-color-scheme:light){p{color:#000}}</style></head><body></body></html>"
    )
    assert has_dark_styles(styled)
    out = dark_variant(styled)
    assert "@media (min-width: 0px) and (max-width: 480px)" in out
    assert "@media (max-width: 0px)" in out
    assert "invert" not in out
    # The light view settles the query the other way, so a browser in dark mode still shows the light email.
    light = scheme_variant(styled, "light")
    assert "@media (max-width: 0px) and (max-width: 480px)" in light and "@media (min-width: 0px)" in light
    # The email's own colour-scheme declarations name the one scheme shown.
    declared = (
        '<html><head><meta name="color-scheme" content="light dark"><meta name="supported-color-schemes" '
        'content="light dark"><style>:root { color-scheme: light dark; supported-color-schemes: light dark; }'
        "@media (prefers-color-scheme: dark) { p { color: #fff } }</style></head><body></body></html>"
    )
    out = dark_variant(declared)
    assert "light dark" not in out and out.count('content="dark"') == 3
    assert "color-scheme: dark;" in out and "supported-color-schemes: dark;" in out
    assert "light dark" not in scheme_variant(declared, "light")


def test_the_watcher_follows_new_and_moved_folders(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True)
    seen: list[set[str]] = []

    async def scenario() -> None:
        current = {"settings": load_settings(root, environ={})}

        async def on_change(changes: set[tuple[Change, str]]) -> None:
            current["settings"] = load_settings(root, environ={})  # what Previewer.changed() does
            seen.append({Path(p).relative_to(root).as_posix() for _, p in changes})

        async def saved(rel: str, text: str | None = None, *, expect: str | None = None) -> None:
            path = root / rel
            if text is None:
                path.mkdir()
            else:
                path.write_text(text, encoding="utf-8")
            deadline = time.monotonic() + 5
            while not any((expect or rel) in batch for batch in seen):
                assert time.monotonic() < deadline, f"{rel} was not seen; saw {seen}"
                await asyncio.sleep(0.02)

        async def restarted() -> None:
            deadline = time.monotonic() + 5
            while set() not in seen:
                assert time.monotonic() < deadline, f"the watches did not start again; saw {seen}"
                await asyncio.sleep(0.02)
            seen.clear()

        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(watch(lambda: current["settings"], on_change, stop, ready=ready))
        await ready.wait()
        await saved("stories/a.md", "---\ntitle: A\n---\n")
        (root / "notes.txt").write_text("ignored", encoding="utf-8")  # not part of an edition: not reported …
        await saved("newsletter.toml", 'title = "T"\n')  # … while the config is
        assert not any("notes.txt" in batch for batch in seen)
        await saved("templates")  # a templates folder appears: it is watched from now on
        await restarted()
        await saved("templates/newsletter.txt.j2", "{{ subject }}\n")
        (root / "news").mkdir()
        await saved("newsletter.toml", '[paths]\nstories = "news"\n')  # the stories move
        await restarted()
        await saved("news/b.md", "---\ntitle: B\n---\n")
        stop.set()
        await asyncio.wait_for(task, 5)

    run_async(scenario())


def test_a_save_renders_again_only_the_editions_it_touches(tmp_path: Path) -> None:
    root = make_root(tmp_path, templates=True)
    previewer = Previewer(root)
    newest, earlier = previewer.edition(DAY), previewer.edition(EARLIER)
    markets = root / "stories" / "2016" / "12" / "29" / "markets.md"
    markets.write_text(markets.read_text(encoding="utf-8") + "More trading news.\n", encoding="utf-8")
    previewer.changed()
    assert previewer.edition(DAY).build is newest.build
    again = previewer.edition(EARLIER)
    assert again.build is not earlier.build and "More trading news." in again.build.rendered.text  # type: ignore[union-attr]
    footer = root / "templates" / "partials" / "footer.mjml.j2"
    footer.write_text(footer.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    previewer.changed()
    assert previewer.edition(DAY).build is not newest.build
    assert previewer.edition(EARLIER).build is not again.build
