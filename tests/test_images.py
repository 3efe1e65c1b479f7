"""Story photos: processed into site/images/ (upright, sRGB, no metadata, sized), or refused with a warning.

Every original is made here with Pillow (nothing committed): a camera-size JPEG turned by its EXIF
orientation and carrying a GPS position, a CMYK JPEG, a 16-bit PNG with transparency, an animated GIF,
a truncated file and a text file named like a photo.
"""

from __future__ import annotations

import email
import io
import re
import struct
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from urllib.parse import urldefrag

import pytest
from PIL import Image

from newsletter.config import load_settings
from newsletter.delivery.personalize import Personalizer
from newsletter.edition import attach_images, build, load_stories
from newsletter.images import ImageRefused, Published, Publisher, Work, image_options
from newsletter.web.site import file_for
from tests.helpers import write_story

BASE = "https://newsletter.example.org"
FRONT = 'title: "Photo story"\npublished: 2016-12-30T05:30:00+01:00\nsummary: "A story with a photo."'


def camera_jpeg(path: Path) -> None:
    """6,000 × 4,000 as the sensor stores it, orientation 6 (turn 90° clockwise to view), a GPS position;
    a red block in the stored top-left corner, which an upright photo shows top right."""
    img = Image.new("RGB", (6000, 4000), (40, 90, 160))
    img.paste((220, 20, 20), (0, 0, 1200, 1200))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "CameraMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    img.save(path, "JPEG", quality=90, exif=exif.tobytes())


def png16_rgba(width: int, height: int) -> bytes:
    """A 16-bit-per-channel RGBA PNG (Pillow cannot write one): orange, its left half transparent."""
    row = b"".join(struct.pack(">HHHH", 65535, 32768, 0, 0 if x < width // 2 else 65535) for x in range(width))
    raw = b"".join(b"\x00" + row for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture
def publisher(tmp_path: Path) -> Publisher:
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True)
    return Publisher(image_options(load_settings(root, environ={})), BASE)


def rendition_file(publisher: Publisher, url: str) -> Path:
    assert url.startswith(BASE + "/images/")
    return publisher.options.site_dir / url[len(BASE) + 1 :]


def opened(publisher: Publisher, published: Published, fmt: str = "jpeg") -> Image.Image:
    best = max((r for r in published.renditions if r.format == fmt), key=lambda r: r.width)
    return Image.open(rendition_file(publisher, best.url))


def test_a_camera_original_is_upright_without_gps_and_within_budget(publisher: Publisher) -> None:
    source = publisher.options.root / "stories" / "camera.jpg"
    camera_jpeg(source)
    published = publisher.local(source)
    assert published.width == 1200 and published.height == 1800  # upright: portrait, 2:3
    for r in published.renditions:
        path = rendition_file(publisher, r.url)
        data = path.read_bytes()
        assert len(data) == r.bytes < publisher.options.max_kb * 1000
        img = Image.open(path)
        assert img.size == (r.width, r.height) and img.width <= 1200
        assert not img.getexif() and b"CameraMaker" not in data and b"GPS" not in data and b"Exif" not in data
        assert "icc_profile" not in img.info and "xmp" not in img.info
    img = opened(publisher, published).convert("RGB")
    red, blue = img.getpixel((img.width - 20, 20)), img.getpixel((20, 20))
    assert red[0] > 180 and red[2] < 80, red  # the stored top-left is now top right
    assert blue[2] > 120 and blue[0] < 90, blue
    email, width, height = published.for_width(600)
    assert (width, height) == (600, 900) and email.width == 1200 and email.format == "jpeg"
    assert {r.format for r in published.renditions} == {"jpeg", "webp"}


def test_a_cmyk_photo_comes_out_in_rgb(publisher: Publisher) -> None:
    source = publisher.options.root / "stories" / "print.jpg"
    Image.new("CMYK", (1600, 1000), (0, 255, 255, 0)).save(source, "JPEG")
    img = opened(publisher, publisher.local(source))
    assert img.mode == "RGB"
    r, g, b = img.getpixel((50, 50))  # type: ignore[misc]
    assert r > 200 and g < 60 and b < 60


def test_a_16_bit_png_keeps_its_transparency_as_an_8_bit_png(publisher: Publisher) -> None:
    source = publisher.options.root / "stories" / "chart.png"
    source.write_bytes(png16_rgba(700, 300))
    published = publisher.local(source)
    assert {r.format for r in published.fallback()} == {"png"}
    img = opened(publisher, published, "png")
    assert img.mode == "RGBA" and img.size == (700, 300)  # never wider than the original
    assert img.getpixel((10, 10))[3] == 0 and img.getpixel((690, 10)) == (255, 128, 0, 255)


def test_an_animated_gif_is_published_as_its_first_frame(publisher: Publisher) -> None:
    source = publisher.options.root / "stories" / "anim.gif"
    frames = [Image.new("RGB", (400, 300), c) for c in ((0, 160, 0), (160, 0, 160))]
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=100, loop=0)
    img = opened(publisher, publisher.local(source))
    assert getattr(img, "n_frames", 1) == 1
    r, g, b = img.getpixel((200, 150))  # type: ignore[misc]
    assert g > 120 and r < 40 and b < 40


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("truncated.jpg", None, "damaged or truncated"),
        ("notes.jpg", b"These are the editor's notes, not a photo.\n" * 20, "not an image"),
        ("gone.jpg", False, "no such file"),
    ],
)
def test_what_is_not_a_whole_photo_is_refused(
    publisher: Publisher, name: str, content: bytes | bool | None, reason: str
) -> None:
    source = publisher.options.root / "stories" / name
    if content is None:
        buf = io.BytesIO()
        Image.effect_noise((800, 600), 60).convert("RGB").save(buf, "JPEG")
        source.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif content is not False:
        assert isinstance(content, bytes)
        source.write_bytes(content)
    with pytest.raises(ImageRefused, match=reason):
        publisher.local(source)
    assert not (publisher.options.site_dir / "images").exists()


def test_a_path_outside_the_newsletter_folder_is_refused(publisher: Publisher, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.jpg"
    Image.new("RGB", (100, 100)).save(outside)
    with pytest.raises(ImageRefused, match="outside the newsletter folder"):
        publisher.local(outside)


def test_a_rebuild_does_no_image_work_and_a_missing_photo_keeps_the_story(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    (root / "stories" / "photos").mkdir(parents=True)
    camera_jpeg(root / "stories" / "photos" / "camera.jpg")
    write_story(
        root,
        "one.md",
        FRONT + "\nimage:\n  src: photos/camera.jpg\n  alt: A blue wall",
        "![A chart](photos/camera.jpg)\n",
    )
    write_story(
        root, "two.md", FRONT.replace("Photo story", "Lost photo") + "\nimage:\n  src: nowhere.jpg\n  alt: Gone"
    )
    settings = load_settings(root, environ={})
    stories = load_stories(settings.stories_dir, root, settings.base_url).stories
    first, second = Work(), Work()
    shown, warnings = attach_images(stories, settings, first)
    assert first.processed == 1 and first.reused == 1  # the body's photo is the same file
    again, _ = attach_images(stories, settings, second)
    assert second.processed == 0 and second.reused == 2 and again == shown
    by_id = {s.id: s for s in shown}
    assert by_id["two"].image is None and [str(w) for w in warnings] == [
        "stories/two.md: field 'image.src': nowhere.jpg: no such file; shown without the photo"
    ]
    body = by_id["one"].blocks[0].html
    assert re.fullmatch(
        rf'<p><img src="{BASE}/images/[0-9a-f]{{20}}-1200\.jpg" alt="A chart" width="552" height="828"></p>\n', body
    )


def test_the_email_gives_every_photo_width_and_height(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    (root / "stories").mkdir(parents=True)
    camera_jpeg(root / "stories" / "camera.jpg")
    write_story(root, "lead.md", FRONT + "\npriority: 5\nimage:\n  src: camera.jpg\n  alt: A blue wall")
    write_story(
        root,
        "card.md",
        FRONT.replace("Photo story", "Second") + "\nsection: World\nimage:\n  src: camera.jpg\n  alt: Again",
    )
    result = build(load_settings(root, environ={}))
    imgs = re.findall(r"<img\b[^>]*>", result.rendered.html)
    assert len(imgs) == 2
    sizes = [(re.search(r'\bwidth="(\d+)"', i).group(1), re.search(r'\bheight="(\d+)"', i).group(1)) for i in imgs]  # type: ignore[union-attr]
    assert sizes == [("600", "900"), ("216", "324")]
    for tag in imgs:
        src = re.search(r'src="([^"]+)"', tag).group(1)  # type: ignore[union-attr]
        assert file_for(result.settings, src) is not None and file_for(result.settings, src).is_file()  # type: ignore[union-attr]
        assert "height:auto" in tag  # the attribute for Outlook, a scaling height for phones


def _urls(html: str) -> list[str]:
    found = re.findall(r'\b(?:src|href)="([^"]+)"', html)
    for srcset in re.findall(r'\bsrcset="([^"]+)"', html):
        found += [part.split()[0] for part in srcset.split(",")]
    return found


def test_every_image_and_link_of_the_demo_resolves_in_site(languages_root: Path) -> None:
    """The README's first command on a copy of the demo: every src, srcset and href under base_url in
    the emails and the archive is a file in site/ (the web app's own routes aside)."""
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(languages_root)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    settings = load_settings(languages_root, environ={})
    documents = [p for p in (languages_root / "outbox").rglob("newsletter.html")]
    documents += [p for p in (languages_root / "site").rglob("*.html")]
    checked, images, dead = 0, 0, []
    for doc in documents:
        for url in _urls(doc.read_text(encoding="utf-8")):
            url = urldefrag(url)[0].replace("&amp;", "&")
            if not url.startswith(BASE) or url.startswith(f"{BASE}/u/") or url.split("?")[0] == f"{BASE}/subscribe":
                continue
            checked += 1
            images += "/images/" in url
            target = file_for(settings, url)
            if target is None or not target.is_file():
                dead.append(f"{doc.relative_to(languages_root)}: {url}")
    assert dead == [] and checked > 100 and images > 30


@pytest.mark.browser
def test_chromium_shows_the_demo_photos(browser, languages_root: Path) -> None:  # type: ignore[no-untyped-def]
    """The demo email and archive page in Chromium, base_url answered from site/ only: every photo loads."""
    subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(languages_root)], check=True, capture_output=True
    )
    settings = load_settings(languages_root, environ={})

    def answer(route) -> None:  # type: ignore[no-untyped-def]
        target = file_for(settings, route.request.url)
        if target is None or not target.is_file():
            route.fulfill(status=404, body="missing")
        else:
            kind = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}.get(target.suffix[1:], "text/html")
            route.fulfill(body=target.read_bytes(), content_type=kind)

    context = browser.new_context(viewport={"width": 800, "height": 900})
    try:
        context.route(f"{BASE}/**", answer)
        page = context.new_page()
        for doc in (
            languages_root / "outbox" / "2016-12-30" / "en" / "newsletter.html",
            languages_root / "site" / "editions" / "2016-12-30" / "index.html",
        ):
            page.set_content(doc.read_text(encoding="utf-8"), wait_until="load")
            for img in page.query_selector_all("img"):
                img.scroll_into_view_if_needed()
            page.wait_for_function("[...document.images].every(i => i.complete)")
            widths = page.eval_on_selector_all("img", "els => els.map(e => [e.currentSrc, e.naturalWidth])")
            assert len(widths) >= 3 and all(w > 0 for _, w in widths), (doc.name, widths)
            assert all(src.startswith(f"{BASE}/images/") for src, _ in widths)
    finally:
        context.close()


def test_repo_demo_images_are_small(demo_root: Path) -> None:
    """The committed illustrations stay light (tens of KB each)."""
    files = sorted((demo_root / "stories" / "images").glob("*.jpg"))
    assert len(files) == 4 and all(p.stat().st_size < 80_000 for p in files)


def _logo(path: Path, colour: tuple[int, int, int, int]) -> None:
    img = Image.new("RGBA", (800, 200), (0, 0, 0, 0))
    img.paste(colour, (20, 40, 780, 160))
    img.save(path)


@pytest.mark.browser
def test_the_masthead_logo_in_light_and_dark(browser, demo_root: Path) -> None:  # type: ignore[no-untyped-def]
    """`[images.logo]`: published like a photo, width and height given; the dark variant shows only in dark mode."""
    _logo(demo_root / "logo.png", (20, 40, 90, 255))
    _logo(demo_root / "logo-dark.png", (240, 240, 250, 255))
    (demo_root / "newsletter.toml").write_text(
        '[images.logo]\nsrc = "logo.png"\ndark = "logo-dark.png"\nalt = "The Morning Brief"\nwidth = 240\n',
        encoding="utf-8",
    )
    result = build(load_settings(demo_root, environ={}))
    html = result.rendered.html
    logos = re.findall(r'<img\b[^>]*alt="The Morning Brief"[^>]*>', html)
    assert len(logos) == 2 and all('width="240" height="60"' in tag for tag in logos)
    for tag in logos:
        target = file_for(result.settings, re.search(r'src="([^"]+)"', tag).group(1))  # type: ignore[union-attr]
        assert target is not None and target.is_file() and Image.open(target).mode == "RGBA"
    settings = result.settings

    def answer(route) -> None:  # type: ignore[no-untyped-def]
        target = file_for(settings, route.request.url)
        if target is None or not target.is_file():
            route.fulfill(status=404, body="missing")
        else:
            route.fulfill(body=target.read_bytes(), content_type=f"image/{target.suffix[1:].replace('jpg', 'jpeg')}")

    for scheme, shown in (("light", "light"), ("dark", "dark")):
        context = browser.new_context(viewport={"width": 700, "height": 900}, color_scheme=scheme)
        try:
            context.route(f"{BASE}/**", answer)
            page = context.new_page()
            page.set_content(html, wait_until="load")
            visible = page.eval_on_selector_all(
                'img[alt="The Morning Brief"]',
                "els => els.map(e => [e.closest('.nl-logo-dark') ? 'dark' : 'light',"
                " e.getBoundingClientRect().height > 0 && e.naturalWidth > 0])",
            )
            assert [which for which, seen in visible if seen] == [shown], (scheme, visible)
        finally:
            context.close()


def test_every_subscriber_gets_the_logo(demo_root: Path) -> None:
    """The personalized messages carry the masthead the list copy does (it travels with the edition)."""
    _logo(demo_root / "logo.png", (20, 40, 90, 255))
    (demo_root / "newsletter.toml").write_text('[images.logo]\nsrc = "logo.png"\nalt = "Brief"\n', encoding="utf-8")
    built = build(load_settings(demo_root, environ={}))
    tag = re.search(r'<img\b[^>]*class="nl-logo-light"[^>]*>', built.rendered.html).group(0)  # type: ignore[union-attr]
    src = re.search(r'src="([^"]+)"', tag).group(1)  # type: ignore[union-attr]
    personal = Personalizer(built.settings, built.edition, secret=b"k" * 32, date=datetime.now(UTC))
    message = email.message_from_bytes(personal.message("reader@example.com", "Reader"), policy=policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    mine = re.search(r'<img\b[^>]*class="nl-logo-light"[^>]*>', html)
    assert personal.fast and mine is not None and f'src="{src}"' in mine.group(0)
    assert 'width="200"' in mine.group(0) and 'height="50"' in mine.group(0) and 'alt="Brief"' in mine.group(0)


def test_a_logo_that_cannot_be_published_is_a_warning(demo_root: Path) -> None:
    (demo_root / "newsletter.toml").write_text('[images.logo]\nsrc = "missing.png"\nalt = "Brief"\n', encoding="utf-8")
    result = build(load_settings(demo_root, environ={}))
    assert [str(w) for w in result.warnings] == [
        "newsletter.toml: field 'images.logo.src': missing.png: no such file; no logo"
    ]
    assert "The Morning Brief" in result.rendered.html and 'alt="Brief"' not in result.rendered.html


def test_check_warns_about_a_photo_over_the_size_budget(demo_root: Path) -> None:
    noisy = Image.effect_noise((3000, 2000), 120).convert("RGB")
    noisy.save(demo_root / "stories" / "2016" / "12" / "30" / "noise.jpg", quality=95)
    story = next((demo_root / "stories" / "2016" / "12" / "30").glob("*.md"))
    text = story.read_text(encoding="utf-8")
    story.write_text(re.sub(r"(?m)^  src: .*$", "  src: noise.jpg", text, count=1), encoding="utf-8")
    (demo_root / "newsletter.toml").write_text("[images]\nmax_kb = 50\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "check", "--root", str(demo_root)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(
        r"field 'image\.src': noise\.jpg is \d+ KB in the email after processing, over \[images\] max_kb = 50",
        proc.stderr,
    ), proc.stderr


def test_the_preview_shows_the_published_photos(tmp_path: Path) -> None:
    """`newsletter preview` serves site/images/ itself: the web page's photos show before the site is
    deployed; so do the email's (tests/test_images_archive.py)."""
    from tests.test_preview import DAY, PreviewServer, make_root

    srv = PreviewServer(make_root(tmp_path))
    try:
        for page in (f"/editions/{DAY}/web.html",):
            html = srv.get(page).text
            srcs = re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', html)
            assert srcs and all(src.startswith("/site-images/") for src in srcs), (page, srcs)
            for src in set(srcs):
                got = srv.get(src)
                assert got.status_code == 200 and got.headers["content-type"].startswith("image/"), src
                assert Image.open(io.BytesIO(got.content)).width > 0
    finally:
        assert srv.stop() == 0
