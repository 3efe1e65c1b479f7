"""Only the article: what we remove around and inside trafilatura's choice of main text.

trafilatura (with `favor_precision`) drops most of a news site. Because the importer keeps links and
images, which the extractor's plain output would not, a few kinds of clutter still get through; these
rules catch them:

- before extraction, containers whose class or id says what they are: related or recommended
  stories, "read also", most read, adverts and sponsored slots, newsletter and subscription promos,
  outbrain/taboola-style widgets, share bars, and `<aside>`s (unless one holds the article);
- after extraction, in the article's HTML: "Read also: …" paragraphs (in the languages we import),
  lists whose every item is only a link (a list of other headlines), the heading that introduced such a
  list, a lone "Advertisement" label, subscription calls, images wrapped in a link to another page
  (thumbnails of other stories) and icons declared smaller than 50 px.

Each rule errs on keeping the article: a container holding the page's `<h1>` or most of its text is
never removed, whatever its class says.
"""

from __future__ import annotations

import re
from typing import Any

import lxml.html
from lxml import etree

_CLUTTER_TOKEN = re.compile(
    r"^(?:ads?|ad[-_].+|.+[-_]ads?|advert\w*|advertisement|anzeige|publicite|pub|sponsor\w*|.*promo\w*|"
    r"related\w*|.+[-_]related|recommend\w*|.*read-?also|.*readmore|lire-?aussi|a-lire|lesen-?sie-?auch|"
    r"leggi-?anche|le[ea]-?tambien|leia-?tambem|veja-?tambem|more-(?:stories|articles|news)|most-(?:read|popular|viewed)|"
    r"mostread|popular|newsletter\w*|.*subscri\w*|outbrain\w*|taboola\w*|plista\w*|share(?:bar|-bar|-tools)?|"
    r"social(?:-share|-bar)?|teaser-list|paywall\w*)$",
    re.I,
)
_READ_ALSO = re.compile(
    r"^\s*(?:read (?:also|more|next)|see also|related(?: stories| articles)?|more on this|"
    r"lire aussi|à lire aussi|a lire aussi|lire également|sur le même sujet|voir aussi|"
    r"lesen sie auch|lesen sie mehr|mehr zum thema|auch interessant|weiterlesen|"
    r"leggi anche|potrebbe interessarti|lee también|lea también|leer también|te puede interesar|"
    r"leia também|veja também|saiba mais)\b\s*(?P<sep>[:»›>\-–—])?",
    re.I,
)
_ADVERT_LABEL = re.compile(
    r"^\s*(?:advertisement|advertising|sponsored|anzeige|werbung|publicité|publicite|pubblicità|publicidad|"
    r"publicidade|広告|广告)\s*$",
    re.I,
)
_SUBSCRIBE = re.compile(
    r"^\s*(?:subscribe|sign up|get our|abonnez-vous|inscrivez-vous|jetzt abonnieren|abonnieren sie|"
    r"iscriviti|abbonati|suscríbete|suscribete|assine|inscreva-se)\b",
    re.I,
)
_BYLINE = re.compile(r"^\s*(?:by|von|par|di|por|de|door|av)\s+\w+", re.I)
_SMALL_IMAGE_PX = 50


def prune_page(tree: Any) -> None:
    """Remove clutter containers from a page tree, in place, before the extractor sees it."""
    body = tree.find(".//body")
    if body is None:
        return
    total = len(" ".join(body.text_content().split())) or 1
    doomed = []
    for el in body.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag == "aside" or _is_clutter(el):
            doomed.append(el)
    for el in doomed:
        if el.getparent() is None or _holds_article(el, total):
            continue
        if any(a is not el and a in doomed for a in el.iterancestors()):
            continue  # gone with its ancestor
        el.drop_tree()


def prune_article(html: str) -> str:
    """The extracted article HTML without the clutter the extractor let through."""
    if not html.strip():
        return html
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return html
    changed = False
    for el in list(root.iter("p", "div", "li", "blockquote")):
        if el.getparent() is None:
            continue
        text = " ".join(el.text_content().split())
        links = " ".join(" ".join(a.text_content().split()) for a in el.iter("a"))
        # "Read also: <link>" or "Lire aussi » …" — not a sentence that happens to start "Read more about".
        prompt = _READ_ALSO.match(text)
        read_also = prompt and (prompt.group("sep") or len(links) >= 0.5 * len(text))
        promo = _SUBSCRIBE.match(text) and len(text.split()) < 30
        if _ADVERT_LABEL.match(text) or read_also or promo:
            el.drop_tree()
            changed = True
    first = next((el for el in root.iter("p") if " ".join(el.text_content().split())), None)
    if first is not None and _BYLINE.match(first.text_content()) and len(first.text_content().split()) <= 8:
        first.drop_tree()  # "By Jane Doe · 07:05": the byline is a field of the story, not its first paragraph
        changed = True
    for lst in list(root.iter("ul", "ol")):
        items = [li for li in lst if isinstance(li.tag, str) and li.tag == "li"]
        if len(items) >= 2 and all(_only_a_link(li) for li in items):
            heading = lst.getprevious()
            if heading is not None and heading.tag in ("h2", "h3", "h4", "h5", "h6", "p"):
                title = " ".join(heading.text_content().split())
                if len(title) < 60 and (heading.tag != "p" or _READ_ALSO.match(title) or title.endswith(":")):
                    heading.drop_tree()
            lst.drop_tree()
            changed = True
    for img in list(root.iter("img")):
        link = next((a for a in img.iterancestors("a")), None)
        if (link is not None and not _same_image(link.get("href"), img.get("src"))) or _is_icon(img):
            (link if link is not None and link.getparent() is not None else img).drop_tree()
            changed = True
    return lxml.html.tostring(root, encoding="unicode") if changed else html


def _is_clutter(el: Any) -> bool:
    names = f"{el.get('class') or ''} {el.get('id') or ''}".split()
    if el.get("data-ad-unit") is not None or el.get("data-ad-slot") is not None:
        return True
    return any(_CLUTTER_TOKEN.match(n) for n in names)


def _holds_article(el: Any, total: int) -> bool:
    if el.tag in ("body", "html", "main", "article"):
        return True
    if el.find(".//h1") is not None or el.find(".//article") is not None:
        return True
    return len(" ".join(el.text_content().split())) > 0.4 * total


def _only_a_link(li: Any) -> bool:
    text = " ".join(li.text_content().split())
    linked = " ".join(" ".join(a.text_content().split()) for a in li.iter("a") if a.get("href"))
    return bool(text) and len(linked) >= 0.8 * len(text)


def _same_image(href: str | None, src: str | None) -> bool:
    """A link around an image that opens the image itself (a zoom), not another page."""
    if not href or not src:
        return False
    strip = re.compile(r"[?#].*$")
    return strip.sub("", href).rsplit("/", 1)[-1] == strip.sub("", src).rsplit("/", 1)[-1]


def _is_icon(img: Any) -> bool:
    # 1 and 2 px are tracking pixels: the tracker rule removes those, and names their host in a warning.
    sizes = [img.get("width", ""), img.get("height", "")]
    return any(s.strip().isdigit() and 2 < int(s) < _SMALL_IMAGE_PX for s in sizes)
