"""Photos on the web archive and in the preview: a body photo offered in every format and width like a
story's own photo, the masthead logo on the archive's pages (light and dark), and the preview's email
showing the photos from this machine's `site/images/` before anything is deployed."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image, features

from newsletter.config import load_settings
from newsletter.web.site import file_for
from tests.helpers import DEMO_DATE

BASE = "https://newsletter.example.org"
LEAD = "stories/2016/12/30/syrian-regime-emboldened-ahead-of-russia-backed-peace-talks.md"
BODY_ALT = "Aid parcels stacked in a warehouse"
AVIF = features.check("avif")


def _body_photo(root: Path) -> None:
    """The demo's lead story gets a photo in its body (a demo illustration, by a path from the story)."""
    story = root / LEAD
    story.write_text(
        story.read_text(encoding="utf-8") + f"\n![{BODY_ALT}](../../../images/aid-warehouse.jpg)\n", encoding="utf-8"
    )


def _build(root: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(root), "--date", str(DEMO_DATE)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _story_page(root: Path) -> str:
    pages = [p for p in (root / "site").rglob("index.html") if BODY_ALT in p.read_text(encoding="utf-8")]
    assert len(pages) == 1, pages  # the story's own page (the edition page shows its standfirst)
    return pages[0].read_text(encoding="utf-8")


def _srcset_files(settings, srcset: str) -> list[tuple[Path, int]]:  # type: ignore[no-untyped-def]
    found = []
    for part in srcset.split(","):
        url, width = part.split()
        target = file_for(settings, url)
        assert target is not None and target.is_file(), url
        found.append((target, int(width.removesuffix("w"))))
    return found


@pytest.mark.parametrize("avif", [False, True] if AVIF else [False])
def test_a_body_photo_in_the_archive_is_a_picture_with_every_format(demo_root: Path, avif: bool) -> None:
    """The email's body `<img>` stays one JPEG with width and height; the archive's story page offers
    AVIF (when asked for), WebP and the JPEGs by width, like the story's own photo."""
    _body_photo(demo_root)
    if avif:
        (demo_root / "newsletter.toml").write_text("[images]\navif = true\n", encoding="utf-8")
    _build(demo_root)
    settings = load_settings(demo_root, environ={})
    email = (demo_root / "outbox" / str(DEMO_DATE) / "newsletter.html").read_text(encoding="utf-8")
    assert "<picture" not in email
    page = _story_page(demo_root)
    picture = re.search(rf"<picture>((?:(?!</picture>).)*alt=\"{BODY_ALT}\"(?:(?!</picture>).)*)</picture>", page)
    assert picture is not None, page
    found = re.findall(r'<source type="image/(\w+)" srcset="([^"]+)" sizes="[^"]+">', picture.group(1))
    assert [fmt for fmt, _ in found] == (["avif", "webp"] if avif else ["webp"])  # the browser takes the first
    sources = dict(found)
    for fmt, srcset in sources.items():
        made = _srcset_files(settings, srcset)
        assert [w for _, w in made] == [480, 800, 1200]
        for target, width in made:
            with Image.open(target) as img:
                assert img.format == fmt.upper() and img.width == width
    img = re.search(r"<img [^>]*>", picture.group(1)).group(0)  # type: ignore[union-attr]
    assert 'width="1200" height="800"' in img and 'sizes="' in img and 'loading="lazy"' in img
    fallback = _srcset_files(settings, re.search(r'srcset="([^"]+)"', img).group(1))  # type: ignore[union-attr]
    assert all(Image.open(t).format == "JPEG" for t, _ in fallback) and len(fallback) >= 3
    # The feed keeps the one JPEG (feed readers drop <source>).
    feed = (demo_root / "site" / "feed.xml").read_text(encoding="utf-8")
    assert BODY_ALT in feed and "&lt;picture" not in feed


@pytest.mark.browser
def test_chromium_takes_the_modern_rendition_of_a_body_photo(browser, demo_root: Path) -> None:  # type: ignore[no-untyped-def]
    """In Chromium the body photo loads from site/ in the best format offered (AVIF when made, else WebP)."""
    _body_photo(demo_root)
    if AVIF:
        (demo_root / "newsletter.toml").write_text("[images]\navif = true\n", encoding="utf-8")
    _build(demo_root)
    settings = load_settings(demo_root, environ={})
    context = browser.new_context(viewport={"width": 800, "height": 900})
    try:
        context.route(f"{BASE}/**", _from_site(settings))
        page = context.new_page()
        page.set_content(_story_page(demo_root), wait_until="load")
        img = page.locator(f'img[alt="{BODY_ALT}"]')
        img.scroll_into_view_if_needed()
        page.wait_for_function(f"document.querySelector('img[alt=\"{BODY_ALT}\"]').complete")
        src, width = img.evaluate("e => [e.currentSrc, e.naturalWidth]")
        assert width > 0 and src.endswith(".avif" if AVIF else ".webp"), (src, width)
    finally:
        context.close()


def _from_site(settings):  # type: ignore[no-untyped-def]
    """A Playwright route handler answering base_url from site/ (404 for what is not there)."""
    kinds = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif", "css": "text/css"}

    def answer(route) -> None:  # type: ignore[no-untyped-def]
        target = file_for(settings, route.request.url)
        if target is None or not target.is_file():
            route.fulfill(status=404, body="missing")
        else:
            route.fulfill(body=target.read_bytes(), content_type=kinds.get(target.suffix[1:], "text/html"))

    return answer


def _logos(root: Path) -> None:
    for name, colour in (("logo.png", (20, 40, 90, 255)), ("logo-dark.png", (240, 240, 250, 255))):
        img = Image.new("RGBA", (800, 200), (0, 0, 0, 0))
        img.paste(colour, (20, 40, 780, 160))
        img.save(root / name)
    (root / "newsletter.toml").write_text(
        '[images.logo]\nsrc = "logo.png"\ndark = "logo-dark.png"\nalt = "The Morning Brief"\nwidth = 240\n',
        encoding="utf-8",
    )


@pytest.mark.browser
def test_the_archive_pages_show_the_logo_light_and_dark(browser, demo_root: Path) -> None:  # type: ignore[no-untyped-def]
    """Every archive page carries the masthead logo the email does; a browser in dark mode takes the
    dark variant."""
    _logos(demo_root)
    _build(demo_root)
    settings = load_settings(demo_root, environ={})
    email = (demo_root / "outbox" / str(DEMO_DATE) / "newsletter.html").read_text(encoding="utf-8")
    logos = re.findall(r'<img\b[^>]*\bsrc="([^"]+)" alt="The Morning Brief"', email)
    assert len(logos) == 2 and logos[0] != logos[1]
    light, dark = logos  # the dark variant follows the light one (templates/partials/header.mjml.j2)
    pages = list((demo_root / "site").rglob("index.html"))
    assert len(pages) > 5
    for path in pages:
        html = path.read_text(encoding="utf-8")
        if '<header class="masthead">' not in html:
            continue  # a redirect page (latest/)
        tag = re.search(r'<p class="masthead-title masthead-logo">.*?</p>', html, re.S)
        assert tag is not None, path
        assert f'srcset="{dark}"' in tag.group(0) and f'src="{light}"' in tag.group(0), path
        assert 'alt="The Morning Brief" width="240" height="60"' in tag.group(0)
    home = (demo_root / "site" / "index.html").read_text(encoding="utf-8")
    for scheme, want in (("light", light), ("dark", dark)):
        context = browser.new_context(viewport={"width": 800, "height": 900}, color_scheme=scheme)
        try:
            context.route(f"{BASE}/**", _from_site(settings))
            page = context.new_page()
            page.set_content(home, wait_until="load")
            page.wait_for_function("document.querySelector('.masthead-logo img').complete")
            src, width = page.eval_on_selector(".masthead-logo img", "e => [e.currentSrc, e.naturalWidth]")
            assert src == want and width > 0, (scheme, src, width)
        finally:
            context.close()


@pytest.mark.browser
def test_the_preview_email_shows_every_image_with_no_network(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`newsletter preview` before anything is deployed, the browser cut off from every host but the
    preview's: each image of the email (photos, the logo, light and dark) loads; the `.eml` keeps base_url."""
    from tests.test_preview import DAY, PreviewServer, make_root

    root = make_root(tmp_path)
    _logos(root)
    srv = PreviewServer(root)
    try:
        blocked: list[str] = []

        def offline(route) -> None:  # type: ignore[no-untyped-def]
            if route.request.url.startswith(srv.url.rstrip("/") + "/"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort("internetdisconnected")

        for scheme in ("light", "dark"):
            context = browser.new_context(viewport={"width": 700, "height": 900}, color_scheme=scheme)
            try:
                context.route("**/*", offline)
                page = context.new_page()
                page.goto(f"{srv.url.rstrip('/')}/editions/{DAY}/email.html?scheme={scheme}", wait_until="load")
                # The email's images load eagerly, the hidden logo variant too: wait, do not scroll.
                page.wait_for_function("[...document.images].every(i => i.complete)")
                shown = page.eval_on_selector_all("img", "els => els.map(e => [e.currentSrc, e.naturalWidth])")
                assert len(shown) >= 5 and all(w > 0 for _, w in shown), (scheme, shown)
                assert all("/site-images/" in src for src, _ in shown), shown
            finally:
                context.close()
        assert not [u for u in blocked if "/images/" in u], blocked
        eml = srv.get(f"/editions/{DAY}/newsletter.eml").content
        assert b"/site-images/" not in eml and f"{BASE}/images/".encode() in eml
        photo = srv.get(re.search(r'src="(/site-images/[^"]+)"', srv.get(f"/editions/{DAY}/email.html").text).group(1))  # type: ignore[union-attr]
        assert photo.status_code == 200 and Image.open(io.BytesIO(photo.content)).width > 0
    finally:
        assert srv.stop() == 0


def test_check_warns_about_a_body_photo_over_the_size_budget(demo_root: Path) -> None:
    folder = demo_root / "stories" / "2016" / "12" / "30"
    Image.effect_noise((3000, 2000), 120).convert("RGB").save(folder / "noise.jpg", quality=95)
    story = demo_root / LEAD
    story.write_text(story.read_text(encoding="utf-8") + "\n![Static](noise.jpg)\n", encoding="utf-8")
    (demo_root / "newsletter.toml").write_text("[images]\nmax_kb = 50\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "check", "--root", str(demo_root)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(
        r"syrian-regime[^:]*\.md: image 2016/12/30/noise\.jpg in the body is \d+ KB in the email after processing, "
        r"over \[images\] max_kb = 50",
        proc.stderr,
    ), proc.stderr


def test_avif_is_a_flag(demo_root: Path) -> None:
    (demo_root / "newsletter.toml").write_text('[images]\navif = "yes"\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(demo_root)], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "[images] avif must be true or false, got 'yes'" in proc.stderr, proc.stderr


def test_the_public_app_pages_carry_the_logo(tmp_path: Path) -> None:
    """`newsletter serve`'s own pages (sign-up, unsubscribe) wear the archive's masthead, logo included."""
    from tests.test_web_app import CONFIG, PublicServer, make_root

    root = make_root(tmp_path)
    _logos(root)
    (root / "newsletter.toml").write_text(
        CONFIG + (root / "newsletter.toml").read_text(encoding="utf-8").replace("[images.logo]", "\n[images.logo]"),
        encoding="utf-8",
    )
    srv = PublicServer(root)
    try:
        page = httpx.get(srv.url + "/subscribe", headers={"Host": "newsletter.example.org"}, timeout=10).text
        tag = re.search(r'<p class="masthead-title masthead-logo">.*?</p>', page, re.S)
        assert tag is not None and 'alt="The Morning Brief" width="240" height="60"' in tag.group(0), page[:2000]
        settings = load_settings(root, environ={})
        for url in re.findall(r'(?:src|srcset)="([^"]+)"', tag.group(0)):
            target = file_for(settings, url)
            assert target is not None and target.is_file(), url
    finally:
        assert srv.stop() == 0
