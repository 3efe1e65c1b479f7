"""What an article page says about itself: publication instant, section, tags, title, address, summary, image.

News sites state these in several places at once, with different care. The order of trust, per field:

- **published**: JSON-LD `datePublished` of an article object (`NewsArticle`, `Article`, `BlogPosting`
  and kin, inside `@graph` too) → `article:published_time` (or `datePublished`, `parsely-pub-date`,
  `DC.date.issued` … metas) → `itemprop="datePublished"` → the first
  `<time datetime>` inside the `<article>` (not one marked as an update) → the date extractor's guess.
  A modified time is never read as the published one. The first source that gives a readable value
  wins, and keeps its offset.
- **section**: `article:section` → JSON-LD `articleSection` → the breadcrumb (JSON-LD `BreadcrumbList`,
  else a microdata or `aria-label="breadcrumb"` trail): its last entry that is not the article itself.
  Never the `keywords` meta: a keyword list is a list of tags, not a heading for the email.
- **title**: `og:title` → JSON-LD `headline` → `twitter:title` → `<title>`, with a site-name suffix
  ("… | The Gazette") cut when it matches `og:site_name` (or the publisher's name).
- **url**, **summary**, **image**: `og:` → Twitter card → JSON-LD.

Everything here reads values; none of it is trusted as markup (the caller makes every text plain).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

# schema.org types whose datePublished is the article's (not the page's, the site's or a video's).
_ARTICLE_TYPES = {
    "article",
    "newsarticle",
    "blogposting",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "reviewnewsarticle",
    "liveblogposting",
    "techarticle",
    "scholarlyarticle",
    "socialmediaposting",
}
# <title>s that name the software rather than the article, seen in the wild on misconfigured CMSs.
_CMS_TITLES = {
    "escenic",
    "wordpress",
    "drupal",
    "joomla",
    "joomla!",
    "typo3",
    "ghost",
    "blogger",
    "untitled",
    "untitled document",
    "home",
    "index",
    "article",
    "news",
}
_SEPARATORS = r"\s+[|\-–—:·•»/]\s+|:\s+"
_UPDATE_MARK = re.compile(r"modif|updat|aktualisiert|mis à jour|actualiz|atualiz|aggiornat", re.I)
# Other meta names that carry the publication instant (never "date" alone: some CMSs put today's there).
_PUBLISHED_METAS = (
    "og:published_time",
    "datepublished",
    "parsely-pub-date",
    "sailthru.date",
    "pubdate",
    "publishdate",
    "publish-date",
    "dc.date.issued",
    "dcterms.issued",
    "article.published",
)
_NOT_TRAILS = {"html", "body", "main", "article", "header", "footer"}
MAX_TAGS = 5  # keywords are tags, a handful of them: a list of twenty names helps no reader


@dataclass
class PageMeta:
    """Raw texts as the page gives them ('' when absent); `published_from` names where the date came from."""

    published: str = ""
    published_from: str = ""
    title: str = ""
    site_name: str = ""
    section: str = ""
    tags: list[str] = field(default_factory=list)
    url: str = ""
    summary: str = ""
    image: str = ""
    image_alt: str = ""
    author: str = ""


def read_page_meta(tree: Any, *, guessed_date: str = "") -> PageMeta:
    """Read `tree` (an lxml HTML document). `guessed_date` is the date extractor's answer, the last resort."""
    metas = _metas(tree)
    ld = list(_json_ld(tree))
    articles = [o for o in ld if _types(o) & _ARTICLE_TYPES]
    meta = PageMeta()

    for source, value in (
        ("JSON-LD datePublished", _first_str(o.get("datePublished") for o in articles)),
        ("article:published_time", metas.get("article:published_time", "")),
        ("a published-date meta", next((metas[k] for k in _PUBLISHED_METAS if k in metas), "")),
        ("itemprop datePublished", _itemprop_date(tree)),
        ("<time> in the article", _article_time(tree)),
        ("the page's date", guessed_date),
    ):
        if value and parse_instant(value)[0] is not None:
            meta.published, meta.published_from = value.strip(), source
            break

    meta.site_name = metas.get("og:site_name", "") or _first_str(_name(o.get("publisher")) for o in articles)
    declared = metas.get("og:title", "") or _first_str(o.get("headline") for o in articles)
    title = _title_element(tree)
    if title.strip().casefold() in _CMS_TITLES:
        title = ""
    meta.title = declared or metas.get("twitter:title", "") or title
    meta.title = cut_site_name(meta.title, [meta.site_name, *_title_suffixes(title, meta.title)])

    sections = [metas.get("article:section", "")] + [_section_value(o.get("articleSection")) for o in articles]
    meta.section = next((s.strip() for s in sections if s and s.strip()), "") or _breadcrumb(tree, ld, meta.title)

    tags = [v for k, v in metas.items_all() if k == "article:tag"]
    keywords = [metas.get("keywords", "")] + [_keywords(o.get("keywords")) for o in articles]
    meta.tags = tag_list(tags + keywords)

    meta.url = metas.get("og:url", "") or metas.get("twitter:url", "") or _first_str(_url_of(o) for o in articles)
    meta.summary = (
        metas.get("og:description", "")
        or metas.get("description", "")
        or metas.get("twitter:description", "")
        or _first_str(o.get("description") for o in articles)
    )
    meta.image = (
        metas.get("og:image:secure_url", "")
        or metas.get("og:image", "")
        or metas.get("og:image:url", "")
        or metas.get("twitter:image", "")
        or metas.get("twitter:image:src", "")
        or _first_str(_image_of(o.get("image")) for o in articles)
    )
    meta.image_alt = metas.get("og:image:alt", "") or metas.get("twitter:image:alt", "")
    meta.author = metas.get("author", "") or _first_str(_name(o.get("author")) for o in articles)
    return meta


def cut_site_name(title: str, names: list[str]) -> str:
    """`title` without a trailing (or leading) " | Site name" when the part cut is one of `names`."""
    wanted = {_fold(n) for n in names if n and _fold(n)}
    if not wanted:
        return title.strip()
    parts = re.split(f"({_SEPARATORS})", title.strip())
    # parts: text, separator, text, separator, … — try the longest suffix first, then a prefix.
    for i in range(1, len(parts) - 1, 2):
        head, tail = "".join(parts[:i]), "".join(parts[i + 1 :])
        if _fold(tail) in wanted and head.strip():
            return head.strip()
    for i in range(len(parts) - 2, 0, -2):
        head, tail = "".join(parts[:i]), "".join(parts[i + 1 :])
        if _fold(head) in wanted and tail.strip():
            return tail.strip()
    return title.strip()


def parse_instant(text: str) -> tuple[datetime | None, bool]:
    """An ISO 8601 (or RFC 822) date or date-time → (datetime, has a time of day); naive when the text
    gives no offset; (None, False) when it is not a date."""
    raw = text.strip()
    if not raw:
        return None, False
    raw = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    # "2024-03-05 07:05:00 +0100" and "…T07:05:00.000+0100": fromisoformat wants no space before the offset.
    raw = re.sub(r"(\d)\s+([+-]\d{2}:?\d{2})$", r"\1\2", raw)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        try:
            # Some CMSs write their feed's date format into the page: "Tue, 05 Mar 2024 07:05:00 +0100".
            return parsedate_to_datetime(raw), True
        except (TypeError, ValueError, IndexError):
            return None, False
    return moment, bool(re.search(r"\d[T ]\d{1,2}:\d{2}", raw))


# --- readers ----------------------------------------------------------------------------------------


class _Metas(dict[str, str]):
    """First value of each meta name/property (lower case), and every value in `items_all`."""

    def __init__(self) -> None:
        super().__init__()
        self.all: list[tuple[str, str]] = []

    def add(self, key: str, value: str) -> None:
        self.all.append((key, value))
        if value and key not in self:
            self[key] = value

    def items_all(self) -> list[tuple[str, str]]:
        return self.all


def _metas(tree: Any) -> _Metas:
    found = _Metas()
    for el in tree.iter("meta"):
        key = (el.get("property") or el.get("name") or "").strip().lower()
        content = (el.get("content") or "").strip()
        if key and content:
            found.add(key, content)
    return found


def _json_ld(tree: Any) -> Iterator[dict[str, Any]]:
    """Every JSON-LD object on the page, `@graph` members and nested lists flattened; bad JSON skipped."""
    for script in tree.xpath("//script[@type='application/ld+json']"):
        text = (script.text or "").strip()
        if not text:
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            # CMSs leave raw newlines and tabs in strings; that is the only repair worth trying.
            try:
                data = json.loads(re.sub(r"[\r\n\t]+", " ", text))
            except json.JSONDecodeError:
                continue
        yield from _objects(data, 0)


def _objects(data: Any, depth: int) -> Iterator[dict[str, Any]]:
    if depth > 4:
        return
    if isinstance(data, list):
        for member in data:
            yield from _objects(member, depth + 1)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _objects(data["@graph"], depth + 1)


def _types(obj: dict[str, Any]) -> set[str]:
    kinds = obj.get("@type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return {k.rsplit("/", 1)[-1].lower() for k in kinds if isinstance(k, str)}


def _first_str(values: Any) -> str:
    for value in values:
        if isinstance(value, list):
            value = value[0] if value else ""
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _name(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(n for n in (_name(v) for v in value) if n)
    if isinstance(value, dict):
        name = value.get("name")
        return name.strip() if isinstance(name, str) else ""
    return value.strip() if isinstance(value, str) else ""


def _url_of(obj: dict[str, Any]) -> str:
    url = obj.get("url")
    if isinstance(url, str):
        return url
    entity = obj.get("mainEntityOfPage")
    if isinstance(entity, dict):
        entity = entity.get("@id") or entity.get("url")
    return entity if isinstance(entity, str) else ""


def _image_of(value: Any) -> str:
    if isinstance(value, list):
        return _first_str(_image_of(v) for v in value)
    if isinstance(value, dict):
        url = value.get("url") or value.get("contentUrl")
        return url if isinstance(url, str) else ""
    return value if isinstance(value, str) else ""


def _section_value(value: Any) -> str:
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), "")
    if not isinstance(value, str):
        return ""
    # Some CMSs put a comma list here too; a section is one heading.
    return value.split(",")[0].strip() if value.count(",") >= 2 else value.strip()


def _keywords(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def tag_list(values: list[str]) -> list[str]:
    """At most `MAX_TAGS` distinct tags from comma- or semicolon-separated lists."""
    tags: list[str] = []
    for value in values:
        tags += [t.strip() for t in re.split(r"[,;]", value) if t.strip()]
    return list(dict.fromkeys(t for t in tags if len(t) <= 60))[:MAX_TAGS]


def _itemprop_date(tree: Any) -> str:
    for el in tree.xpath("//*[@itemprop='datePublished']"):
        value = el.get("content") or el.get("datetime") or (el.text_content() if el.tag != "meta" else "")
        if value and value.strip():
            return str(value).strip()
    return ""


def _article_time(tree: Any) -> str:
    """The first `<time datetime>` of the article that does not announce an update."""
    for el in tree.xpath("//article//time[@datetime]"):
        context = " ".join(filter(None, [el.get("class"), el.get("itemprop"), el.text_content(), _parent_class(el)]))
        if not _UPDATE_MARK.search(context):
            return str(el.get("datetime")).strip()
    return ""


def _parent_class(el: Any) -> str:
    parent = el.getparent()
    return str(parent.get("class") or "") if parent is not None else ""


def _title_element(tree: Any) -> str:
    found = tree.xpath("//head/title/text()") or tree.xpath("//title/text()")
    return " ".join(str(found[0]).split()) if found else ""


def _title_suffixes(title: str, chosen: str) -> list[str]:
    """Site names the `<title>` reveals: what it adds around the chosen title ("Headline - Gazette")."""
    if not title or not chosen or title == chosen or chosen not in title:
        return []
    rest = title.replace(chosen, "", 1)
    return [re.sub(f"^(?:{_SEPARATORS})|(?:{_SEPARATORS})$", "", rest).strip(" |-–—:·•»/")]


def _breadcrumb(tree: Any, ld: list[dict[str, Any]], title: str) -> str:
    names: list[str] = []
    for obj in ld:
        if "breadcrumblist" in _types(obj):
            items = obj.get("itemListElement")
            items = items if isinstance(items, list) else []
            ordered = sorted(
                (i for i in items if isinstance(i, dict)),
                key=lambda i: int(i["position"]) if str(i.get("position", "")).isdigit() else 0,
            )
            names = [_name(i) or _name(i.get("item")) for i in ordered]
            break
    if not names:
        trails = tree.xpath(
            "//*[contains(@itemtype, 'BreadcrumbList')] | //nav[contains(translate(@aria-label, 'BREADCUMB', "
            "'breadcumb'), 'breadcrumb')] | //*[contains(@class, 'breadcrumb')]"
        )
        # A trail is a short list of links; `<body class="has-breadcrumb">` or a whole menu is not one.
        trail = next((t for t in trails if t.tag not in _NOT_TRAILS and 0 < len(t.findall(".//a")) <= 8), None)
        if trail is not None:
            names = [" ".join(a.text_content().split()) for a in trail.iter("a")]
    folded_title = _fold(title)
    for name in reversed(names):
        folded = _fold(name)
        if not folded or folded in ("home", "accueil", "startseite", "inicio", "início", "home page"):
            continue
        if folded_title and (folded == folded_title or (folded in folded_title and len(folded) > 20)):
            continue  # the article itself, last in most trails
        return name.strip()
    return ""


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())
