"""The preview with several language editions: every one listed, shown and written (a real server)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_preview import DAY, PreviewServer, clean_env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreviewServer]:
    from tests.helpers import make_demo_root

    root = make_demo_root(tmp_path_factory.mktemp("languages") / "paper", languages=True)
    srv = PreviewServer(root, env=clean_env())
    try:
        yield srv
    finally:
        srv.stop()


def test_the_index_lists_the_three_languages(server: PreviewServer) -> None:
    page = server.get("/editions/")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-date="2016-12-30" data-lang="(\w+)">', page.text)
    assert rows == ["en", "fr", "ar"]
    assert f'href="/editions/{DAY}/?lang=fr"' in page.text and f'href="/editions/{DAY}/?lang=ar"' in page.text
    assert "The Morning Brief · l’essentiel du vendredi 30 décembre 2016" in html.unescape(page.text)


def test_a_language_edition_page_and_its_email(server: PreviewServer) -> None:
    page = server.get(f"/editions/{DAY}/?lang=ar")
    assert page.status_code == 200
    assert re.findall(r'hreflang="(\w+)"', page.text) == ["en", "fr", "ar"]
    assert f'href="/editions/{DAY}/text?lang=ar"' in page.text  # the tabs stay in the language
    src = html.unescape(re.search(r'<iframe[^>]*\bsrc="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    assert "lang=ar" in src
    email = server.get(src)
    assert email.status_code == 200 and re.search(r'<html lang="ar" dir="rtl"', email.text)
    text = server.get(f"/editions/{DAY}/newsletter.txt?lang=fr").text
    assert "Voir dans votre navigateur" in text and "View in your browser" not in text
    assert server.get(f"/editions/{DAY}/?lang=de").status_code == 404


def test_writing_a_language_edition_goes_to_its_folder(server: PreviewServer) -> None:
    token = server.csrf(f"/editions/{DAY}/?lang=fr")
    done = server.post(
        f"/editions/{DAY}/write?lang=fr", data={"csrf": token}, headers={"Origin": server.url.rstrip("/")}
    )
    assert done.status_code == 303 and done.headers["location"].startswith(f"/editions/{DAY}/?lang=fr&notice=")
    folder = Path(server.root) / "outbox" / "2016-12-30" / "fr"
    assert (folder / "newsletter.html").is_file() and "Se désabonner" in (folder / "newsletter.html").read_text()
    assert not (Path(server.root) / "outbox" / "2016-12-30" / "newsletter.html").exists()
