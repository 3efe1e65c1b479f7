"""`[images] mirror = true`: https photos fetched once from a real TLS server on loopback and published
with the archive; what is not an image, missing or too big is a warning, and the story stays."""

from __future__ import annotations

import datetime as dt
import io
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from newsletter.config import load_settings
from newsletter.edition import build
from newsletter.web.site import file_for
from tests.helpers import write_story

FRONT = 'title: "{title}"\npublished: 2016-12-30T05:{minute:02d}:00+01:00\npriority: {priority}'


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


def _photo() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2400, 1600), (30, 120, 60)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


class CmsHost:
    """A CMS's media host: a photo, a web page, a 404, an original over the size limit."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.files = {
            "/photo.jpg": ("image/jpeg", _photo()),
            "/page.jpg": ("text/html", b"<html>Not a photo</html>"),
            "/huge.jpg": ("image/jpeg", b"\xff" * 2_500_000),
        }


@pytest.fixture
def cms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, CmsHost]]:
    cert, key = make_certificate(tmp_path)
    host = CmsHost()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host.hits[self.path] += 1
            kind, body = host.files.get(self.path, ("text/plain", b""))
            self.send_response(200 if self.path in host.files else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the client hanging up on an oversized original is what the test wants

    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx trusts our certificate authority, and only it
    try:
        yield f"https://localhost:{server.server_address[1]}", host
    finally:
        server.shutdown()
        server.server_close()


def test_https_photos_are_fetched_once_and_published(empty_root: Path, cms: tuple[str, CmsHost]) -> None:
    url, host = cms
    (empty_root / "newsletter.toml").write_text("[images]\nmirror = true\nmax_source_mb = 2\n", encoding="utf-8")
    for i, (name, path) in enumerate((("lead", "photo"), ("page", "page"), ("gone", "missing"), ("huge", "huge"))):
        front = FRONT.format(title=f"Story {name}", minute=i, priority=10 - i)
        body = f"In the body too:\n\n![The same photo]({url}/{path}.jpg)\n"
        write_story(empty_root, f"{name}.md", f"{front}\nimage:\n  src: {url}/{path}.jpg\n  alt: A photo", body)
    settings = load_settings(empty_root, environ={})
    first = build(settings)
    html = first.rendered.html
    assert url not in html and 'alt="The same photo"' in html  # no email hotlinks the CMS, body photos neither
    src = next(s.image for s in first.edition.stories if s.id == "lead")
    assert src is not None and src.published is not None
    target = file_for(settings, src.published.for_width(600)[0].url)
    assert target is not None and target.is_file() and target.parent == empty_root / "site" / "images"
    assert sorted(str(w).split(": ", 2)[-1] for w in first.warnings if "field" in str(w)) == [
        f"{url}/huge.jpg: cannot fetch it: 2.5 MB is over 2 MB; shown without the photo",
        f"{url}/missing.jpg: cannot fetch it: HTTP 404; shown without the photo",
        f"{url}/page.jpg: cannot fetch it: the server sent text/html, not an image; shown without the photo",
    ]
    assert [s.image is not None for s in first.edition.stories] == [True, False, False, False]
    second = build(settings)
    assert second.rendered.html == html and host.hits["/photo.jpg"] == 1  # fetched once


def test_without_mirroring_an_https_photo_is_linked_as_it_is(empty_root: Path, cms: tuple[str, CmsHost]) -> None:
    url, host = cms
    write_story(
        empty_root,
        "lead.md",
        FRONT.format(title="Lead", minute=0, priority=1) + f"\nimage:\n  src: {url}/photo.jpg\n  alt: A",
    )
    result = build(load_settings(empty_root, environ={}))
    assert f'src="{url}/photo.jpg"' in result.rendered.html and 'width="600"' in result.rendered.html
    assert host.hits == Counter()
