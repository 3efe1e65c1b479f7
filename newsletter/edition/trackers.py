"""Tracking pixels: images that exist to tell a third party that someone opened a page or an email.

Feeds carry them into entries (a 1×1 GIF with the story id in its query) and a story written by hand
can carry one too; in an email each would report every open, and the reader's address with it. An
image is a tracker when:

- its declared width or height is 2 px or less (a 1×1 or 2×2 spacer, or `width="0"`);
- its host is a known tracking service (analytics, ad servers, feed and mailing-list open counters);
- its path is a counter's (`/pixel.gif`, `/track/open`, `/~r/…`, `piwik.php`, …);
- its query carries campaign or recipient identifiers (`utm_*`, `mc_eid`, `_hsenc`, `uid`, `email`, …).

Stories lose such images when they are read (so the edition, its text part and the web copy never
request them) and imports drop them with a warning naming the host. Pure: strings in, strings out.
"""

from __future__ import annotations

import html as htmllib
import re
from urllib.parse import parse_qsl, urlsplit

# Registrable domains (and subdomains of them) whose images are only ever counters.
_HOSTS = (
    "google-analytics.com",
    "googletagmanager.com",
    "doubleclick.net",
    "googlesyndication.com",
    "scorecardresearch.com",
    "quantserve.com",
    "pixel.wp.com",
    "stats.wordpress.com",
    "feedsportal.com",
    "pixel.parsely.com",
    "chartbeat.net",
    "bat.bing.com",
    "mathtag.com",
    "adnxs.com",
    "demdex.net",
    "omtrdc.net",
    "2o7.net",
    "krxd.net",
    "counter.yadro.ru",
    "mc.yandex.ru",
    "track.hubspot.com",
    "list-manage.com",
    "mandrillapp.com",
    "sendgrid.net",
    "ct.pinterest.com",
    "analytics.twitter.com",
    "px.ads.linkedin.com",
    "pixel.facebook.com",
    "api.segment.io",
    "api-js.mixpanel.com",
)
# host + path prefix for services that also serve real images from the same host.
_HOST_PATHS = (
    ("feeds.feedburner.com", "/~r/"),
    ("feeds.feedburner.com", "/~ff/"),
    ("feedproxy.google.com", "/~r/"),
    ("www.facebook.com", "/tr"),
    ("facebook.com", "/tr"),
    ("t.co", "/i/adsct"),
)
_PATH = re.compile(
    r"/(?:pixel|tracking|tracker|beacon|track|~r|~ff)/"
    r"|/(?:pixel|1x1|spacer|blank|transparent|clear|__utm|beacon|tracking|open)\.(?:gif|png|jpe?g|webp|php)$"
    r"|/(?:piwik|matomo)\.php$|/track/open|/wf/open",
    re.I,
)
_QUERY_KEYS = re.compile(
    r"^(?:utm_\w+|mc_[ec]id|_hsenc|_hsmi|mkt_tok|fbclid|gclid|dclid|msclkid|oly_(?:enc|anon)_id|vero_id|"
    r"email|e-?mail|uid|user_?id|subscriber_?id|recipient(?:_?id)?|tracking_?id|track_?id|pixel_?id)$",
    re.I,
)
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ATTR = re.compile(r"""\b(src|width|height)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)


def tracker_host(src: str, width: str | None = None, height: str | None = None) -> str | None:
    """The host to name when `src` (with the declared size, if any) is a tracking image; None otherwise.

    A tracker with no readable host (a relative 1×1 image) is named "(no host)".
    """
    try:
        parts = urlsplit(src.strip())
    except ValueError:
        return None
    host = (parts.hostname or "").lower().rstrip(".")
    shown = host or "(no host)"
    if any(_tiny(v) for v in (width, height)):
        return shown
    if host and any(host == h or host.endswith("." + h) for h in _HOSTS):
        return shown
    path = parts.path or "/"
    if host and any(host == h and path.startswith(p) for h, p in _HOST_PATHS):
        return shown
    if _PATH.search(path):
        return shown
    if parts.query and any(_QUERY_KEYS.match(k) for k, _v in parse_qsl(parts.query, keep_blank_values=True)):
        return shown
    return None


def drop_tracking_images(html: str) -> tuple[str, list[str]]:
    """`html` without its tracking `<img>` tags, and the hosts of those removed (in order, repeated)."""
    if "<img" not in html and "<IMG" not in html:
        return html, []
    hosts: list[str] = []

    def check(match: re.Match[str]) -> str:
        attrs = {m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or "" for m in _ATTR.finditer(match[0])}
        host = tracker_host(htmllib.unescape(attrs.get("src", "")), attrs.get("width"), attrs.get("height"))
        if host is None:
            return match[0]
        hosts.append(host)
        return ""

    return _IMG.sub(check, html), hosts


def _tiny(value: str | None) -> bool:
    if value is None:
        return False
    number = value.strip().removesuffix("px").strip()
    return number.isdigit() and int(number) <= 2
