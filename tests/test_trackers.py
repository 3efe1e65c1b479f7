"""Tracking pixels never reach a reader, whoever wrote the story; texts without spaces are measured
in characters (CJK) or letter groups (Thai, Lao, Khmer), for the excerpt as for the import threshold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.edition.build import build
from newsletter.edition.stories import load_stories
from newsletter.edition.trackers import drop_tracking_images, tracker_host
from newsletter.textutil import count_words
from tests.helpers import write_story


@pytest.mark.parametrize(
    ("src", "width", "height", "host"),
    [
        ("https://stats.example.net/s/88412.gif", "1", "1", "stats.example.net"),
        ("https://cdn.example.org/x.gif", "2", "2", "cdn.example.org"),
        ("https://cdn.example.org/x.gif", "0", None, "cdn.example.org"),
        ("https://cdn.example.org/x.gif", "1px", "600", "cdn.example.org"),
        ("/relative/spacer.gif", "1", "1", "(no host)"),
        ("https://www.google-analytics.com/collect?v=1", None, None, "www.google-analytics.com"),
        ("https://ad.doubleclick.net/ddm/ad/N123", None, None, "ad.doubleclick.net"),
        ("https://pixel.wp.com/g.gif?blog=1", None, None, "pixel.wp.com"),
        ("https://feeds.feedburner.com/~r/site/~4/abc", None, None, "feeds.feedburner.com"),
        ("https://news.example.org/pixel.gif", None, None, "news.example.org"),
        ("https://news.example.org/track/open?m=1", None, None, "news.example.org"),
        ("https://us5.list-manage.com/track/open.php?u=1", None, None, "us5.list-manage.com"),
        ("https://news.example.org/img/a.jpg?utm_source=rss", None, None, "news.example.org"),
        ("https://news.example.org/img/a.jpg?uid=991", None, None, "news.example.org"),
        ("https://news.example.org/img/a.jpg?mc_eid=7f3", None, None, "news.example.org"),
    ],
)
def test_trackers_are_recognised_and_named_by_host(src: str, width: str | None, height: str | None, host: str) -> None:
    assert tracker_host(src, width, height) == host


@pytest.mark.parametrize(
    "src",
    [
        "https://news.example.org/photos/harbour.jpg",
        "https://cdn.example.org/img/a.jpg?w=800&h=533&fit=crop",
        "https://news.example.org/sport/track-and-field-final.jpg",
        "https://feeds.feedburner.com/site/logo.png",
        "https://news.example.org/openair-concert.png",
    ],
)
def test_article_images_are_not_trackers(src: str) -> None:
    assert tracker_host(src, "800", "533") is None
    assert tracker_host(src) is None


def test_drop_tracking_images_keeps_everything_else() -> None:
    html = (
        '<p>Before <img src="https://news.example.org/a.jpg" alt="A"> and '
        '<img alt="" src="https://t.example/p.gif" width="1" height="1"> after.</p>'
    )
    assert drop_tracking_images(html) == (
        '<p>Before <img src="https://news.example.org/a.jpg" alt="A"> and  after.</p>',
        ["t.example"],
    )


def test_a_story_written_by_hand_loses_its_tracking_pixels_with_a_warning(empty_root: Path) -> None:
    write_story(
        empty_root,
        "2016/12/30/pixel.md",
        'title: "Harbour wall to be rebuilt"\npublished: 2016-12-30T05:00:00+01:00',
        "The council voted on Tuesday to rebuild the harbour wall before winter.\n\n"
        "![The harbour wall](https://news.example.org/photos/harbour-wall.jpg)\n\n"
        "Work starts in May. ![](https://stats.example.net/pixel.gif?story=4412)\n\n"
        '<p><img src="https://open.example.com/o/4412.gif" width="1" height="1" alt=""></p>\n\n'
        "The end.\n",
    )
    settings = load_settings(empty_root, environ={})
    loaded = load_stories(settings.stories_dir, settings.root, settings.base_url)
    assert loaded.errors == []
    assert [(w.field, w.message) for w in loaded.warnings] == [
        (None, "tracking image from stats.example.net removed from the body"),
        (None, "tracking image from open.example.com removed from the body"),
    ]
    (story,) = loaded.stories
    assert len(story.blocks) == 4  # the paragraph that held only a pixel is gone too
    result = build(settings)
    for part in (result.rendered.html, result.rendered.text):
        assert "stats.example.net" not in part and "open.example.com" not in part
    assert 'src="https://news.example.org/photos/harbour-wall.jpg"' in result.rendered.html
    assert "Work starts in May." in result.rendered.text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("The harbour reopens on Thursday.", 5),
        ("港町の商店街", 6),  # Japanese: one word per character
        ("市议会通过了计划", 8),  # Chinese
        # Thai: 21 letters (vowel signs and tone marks not counted) / 4 → 6; a reader sees 7 words.
        ("ตลาดน้ำริมคลองกลับมาคึกคัก", 6),
        ("ຕະຫຼາດນ້ຳ", 2),  # Lao
        ("ផ្សារទឹក", 2),  # Khmer
        ("Tokyo 東京 Bangkok กรุงเทพ", 2 + 2 + 2),
        ("서울 시의회가 계획을 통과시켰다", 4),  # Korean spaces its words: counted by spaces
    ],
)
def test_words_are_counted_where_scripts_do_not_space_them(text: str, words: int) -> None:
    assert count_words(text) == words


JA = "港町の商店街に若手職人が相次いで工房を構えている。週末には県外からの買い物客の姿も目立つようになった。"
TH = "ตลาดน้ำริมคลองแห่งนี้กลับมาคึกคักอีกครั้งในเช้าวันเสาร์ หลังจากระดับน้ำในคลองลดลงจนเรือของแม่ค้าสามารถพายเข้ามาขายของได้ตามปกติ"


@pytest.mark.parametrize(("lang", "mark", "paragraph"), [("ja", "段落", JA), ("th", "ย่อหน้า", TH)])
def test_the_lead_excerpt_is_cut_in_scripts_without_spaces(
    empty_root: Path, lang: str, mark: str, paragraph: str
) -> None:
    body = "".join(f"{mark}{n}: {paragraph}\n\n" for n in range(1, 13))
    write_story(
        empty_root,
        "2016/12/30/lead.md",
        f'title: "{paragraph[:12]}"\npublished: 2016-12-30T05:00:00+01:00\nlang: {lang}',
        body,
    )
    result = build(load_settings(empty_root, environ={}))
    shown = [int(n) for n in re.findall(f"{mark}(\\d+)", result.rendered.html)]
    # 150 words: a few paragraphs, not all twelve (counted by spaces, the whole story was "twenty words").
    assert shown and 1 < max(shown) < 12
