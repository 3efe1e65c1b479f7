"""HTML rendering: structure of the email, escaping, CSS inlining, template errors, the size budget."""

from __future__ import annotations

import re
import shutil
from datetime import date
from html.parser import HTMLParser

import pytest

from newsletter.config import load_settings
from newsletter.edition.build import build
from newsletter.edition.lint import lint_html
from newsletter.edition.render import Personal, make_environment, render_edition
from newsletter.edition.select import demote, select_edition
from newsletter.edition.stories import load_stories
from newsletter.errors import EditionError, TemplateError
from tests.helpers import DEMO_DATE, REPO, write_story


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def all(self, name):
        return [a for t, a in self.tags if t == name]


def parse(html: str) -> Tags:
    t = Tags()
    t.feed(html)
    return t


@pytest.fixture
def demo(demo_root):
    settings = load_settings(demo_root, environ={})
    return settings, build(settings, DEMO_DATE)


def test_demo_edition_html_structure(demo):
    settings, result = demo
    html = result.rendered.html
    tags = parse(html)
    root = tags.all("html")[0]
    assert root["lang"] == "en" and root["dir"] == "ltr"
    # preheader: the hidden first text of the body is the lead's standfirst
    assert result.rendered.preheader.startswith("Victory in Aleppo has strengthened")
    body = html[html.index("<body") :]
    assert re.search(r'<div style="display:none;[^"]*">Victory in Aleppo', body)
    assert all(img.get("alt") for img in tags.all("img"))
    for a in tags.all("a"):
        assert a["href"].startswith(("https://", "mailto:")), a
    assert "https://newsletter.example.org/editions/2016-12-30/" in html  # view in browser
    assert "Unsubscribe" in html
    assert all(t.get("role") == "presentation" for t in tags.all("table"))
    assert lint_html(html, result.rendered.preheader, settings.html_budget) == []


def test_css_is_inlined_and_media_queries_kept(demo):
    _, result = demo
    html = result.rendered.html
    # the rule `.nl-body a { color: #b0122b; ... }` from email.css sits on the links themselves
    assert re.search(r'<a href="https://[^"]+" style="[^"]*color: ?#b0122b', html)
    assert "@media only screen and (max-width: 479px)" in html  # the mobile rules stay in <style>
    assert 'inline="inline"' not in html and "<mj-" not in html


def test_seed_article_content_and_no_chrome(demo):
    _, result = demo
    html, text = result.rendered.html, result.rendered.text
    for part in (html, text):
        assert "Syrian regime emboldened ahead of Russia-backed peace talks" in part
        for chrome in ("Skip to main content", "Advertising", "Share :", "Page not found", "Daily newsletter"):
            assert chrome not in part
    assert "Illustration: The Morning Brief, in place of the agency photo" in html
    assert "“Victory in east Aleppo makes any precondition regarding the regime" in html


def test_untrusted_text_is_escaped(empty_root):
    write_story(
        empty_root,
        "x.md",
        'title: "<img src=x onerror=alert(1)> & friends"\npublished: 2016-12-30T05:00:00+01:00\n'
        'summary: "</mj-text><script>alert(2)</script>"\nsection: "<b>S</b>"',
    )
    settings = load_settings(empty_root, environ={})
    result = build(settings)
    html = result.rendered.html
    assert "<script" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; friends" in html
    assert "&lt;/mj-text&gt;&lt;script&gt;" in html


def test_personal_parts_are_escaped(demo_root):
    settings = load_settings(demo_root, environ={})
    stories = load_stories(settings.stories_dir, settings.root, settings.base_url).stories
    ed = select_edition(stories, date(2016, 12, 30), settings)
    hostile = Personal(name='<script>x</script>"', unsubscribe_url="https://u.example/u/abc?x=1&y=2")
    out = render_edition(ed, settings, personal=hostile)
    assert re.search(r"Good morning, &lt;script&gt;x&lt;/script&gt;(\"|&#34;|&quot;) ", out.html)
    assert 'href="https://u.example/u/abc?x=1&amp;y=2"' in out.html
    assert "https://u.example/u/abc?x=1&y=2" in out.text


def test_rtl_story_renders_right_to_left(empty_root):
    write_story(
        empty_root,
        "ar.md",
        'title: "النظام السوري يتعزز قبل محادثات السلام"\n'
        'published: 2016-12-30T05:00:00+01:00\nsummary: "نص عربي قصير للاختبار."',
        "فقرة أولى من النص العربي.\n",
    )
    write_story(empty_root, "en.md", 'title: "English"\npublished: 2016-12-30T04:00:00+01:00')
    result = build(load_settings(empty_root, environ={}))
    html = result.rendered.html
    assert re.search(r'<h1 id="ar" dir="rtl"[^>]*>.*النظام السوري', html)
    assert re.search(r'<h3 id="en" dir="ltr"', html)
    assert 'align="right"' in html or "text-align:right" in html


def test_template_syntax_error_names_file_and_line(demo_root):
    shutil.copytree(REPO / "templates", demo_root / "templates")
    card = demo_root / "templates" / "partials" / "story_card.mjml.j2"
    lines = card.read_text().splitlines()
    lines[4] = lines[4] + " {% if %}"
    card.write_text("\n".join(lines) + "\n")
    with pytest.raises(TemplateError) as err:
        build(load_settings(demo_root, environ={}))
    assert str(err.value).startswith("templates/partials/story_card.mjml.j2:5: ")


def test_template_runtime_error_names_file_and_line(demo_root):
    shutil.copytree(REPO / "templates", demo_root / "templates")
    section = demo_root / "templates" / "partials" / "section.mjml.j2"
    section.write_text(section.read_text().replace("{{ section.name }}", "{{ section.nmae }}"))
    with pytest.raises(TemplateError) as err:
        build(load_settings(demo_root, environ={}))
    line = next(i for i, ln in enumerate(section.read_text().splitlines(), 1) if "nmae" in ln)
    assert str(err.value).startswith(f"templates/partials/section.mjml.j2:{line}: UndefinedError")


def test_mjml_error_names_the_template(demo_root):
    shutil.copytree(REPO / "templates", demo_root / "templates")
    footer = demo_root / "templates" / "partials" / "footer.mjml.j2"
    footer.write_text(footer.read_text().replace("</mj-column>", "", 1))
    with pytest.raises(TemplateError) as err:
        build(load_settings(demo_root, environ={}))
    assert str(err.value).startswith("templates/partials/footer.mjml.j2:")
    assert "MJML error" in str(err.value)


def test_unknown_mjml_element_names_the_template(demo_root):
    shutil.copytree(REPO / "templates", demo_root / "templates")
    section = demo_root / "templates" / "partials" / "section.mjml.j2"
    section.write_text(section.read_text().replace("<mj-divider", "<mj-dividr"))
    with pytest.raises(TemplateError, match=r"section.mjml.j2:\d+: MJML error: unknown element <mj-dividr>"):
        build(load_settings(demo_root, environ={}))


def test_root_templates_override_defaults(demo_root):
    (demo_root / "templates" / "partials").mkdir(parents=True)
    footer = (REPO / "templates" / "partials" / "footer.mjml.j2").read_text()
    (demo_root / "templates" / "partials" / "footer.mjml.j2").write_text(
        footer.replace("You receive", "Our own footer. You receive")
    )
    result = build(load_settings(demo_root, environ={}))
    assert "Our own footer." in result.rendered.html
    assert "Syrian regime emboldened" in result.rendered.html  # the rest still from the defaults


def _many_stories(root, n):
    for i in range(n):
        write_story(
            root,
            f"s{i:02d}.md",
            f'title: "Story number {i} with a headline of a realistic length for a card"\n'
            f"published: 2016-12-30T0{i % 5}:{i:02d}:00+01:00\npriority: {100 - i}\nsection: Section {i % 4}\n"
            f'summary: "{"A standfirst that runs a little long, as they do. " * 6}"\n'
            f"url: https://paper.example/{i}\n",
        )


def test_size_budget_moves_fewest_lowest_ranked_stories(empty_root):
    _many_stories(empty_root, 45)
    settings = load_settings(empty_root, environ={})
    moved: list[int] = []
    result = build(settings, on_demote=moved.append)
    ed = result.edition
    assert result.rendered.html_bytes <= settings.html_budget
    assert moved == [len(ed.more)] and len(ed.more) > 0
    # the lowest-ranked went: priorities are 100-i, so the highest numbers
    assert [s.id for s in ed.more] == [f"s{i:02d}" for i in range(45 - len(ed.more), 45)]
    # fewest: one story fewer moved would be over budget
    env = make_environment(settings)
    fuller = render_edition(demote(ed, len(ed.more) - 1), settings, env)
    assert fuller.html_bytes > settings.html_budget or fuller.edition.more != demote(ed, len(ed.more) - 1).more
    html = result.rendered.html
    assert "More stories" in html and "https://paper.example/44" in html
    assert html.rstrip().endswith("</html>") and "Unsubscribe" in html[-5000:]
    assert "MORE STORIES" in result.rendered.text


def test_size_budget_impossible_is_a_clear_error(empty_root):
    _many_stories(empty_root, 3)
    (empty_root / "newsletter.toml").write_text("html_budget_kb = 10\n")
    with pytest.raises(
        EditionError, match=r"even with every story but the lead in 'More stories'; the budget is 10 KB"
    ):
        build(load_settings(empty_root, environ={}))


@pytest.mark.parametrize(
    ("name", "old", "new", "where", "message"),
    [
        ("base.mjml.j2", '<mjml lang="{{ lang }}"', '<mjml><mjml lang="{{ lang }}"', "base.mjml.j2:", "<mjml>"),
        ("partials/header.mjml.j2", "<mj-text", "<mj-text <", "partials/header.mjml.j2:", "stray '<'"),
        (
            "partials/footer.mjml.j2",
            "</mj-text>",
            "</mj-texx>",
            "partials/footer.mjml.j2:",
            "unknown element </mj-texx>",
        ),
        (
            "partials/story_card.mjml.j2",
            "</mj-column>",
            "",
            "partials/story_card.mjml.j2:3:",
            "branches of this {% if %}",
        ),
        (
            "partials/section.mjml.j2",
            "</mj-section>",
            "",
            "partials/section.mjml.j2:2:",
            "<mj-section> is never closed",
        ),
    ],
)
def test_mjml_mistakes_are_placed_by_check(demo_root, name, old, new, where, message):
    from newsletter.edition.lint import check_templates

    shutil.copytree(REPO / "templates", demo_root / "templates")
    path = demo_root / "templates" / name
    path.write_text(path.read_text().replace(old, new, 1))
    settings = load_settings(demo_root, environ={})
    problems = [str(p) for p in check_templates(make_environment(settings), settings.root)]
    assert problems, "check found nothing"
    assert problems[0].startswith("templates/" + where) and message in problems[0], problems
    assert all(p.startswith("templates/" + where) for p in problems), problems


def test_default_templates_are_clean(demo_root):
    from newsletter.edition.lint import check_templates

    settings = load_settings(demo_root, environ={})
    assert check_templates(make_environment(settings), settings.root) == []
