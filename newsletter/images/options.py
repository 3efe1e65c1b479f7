"""`[images]` in newsletter.toml, read once into `ImageOptions`.

[images]
mirror = false            # fetch https photos once and publish them with the archive
max_kb = 200              # a photo larger than this after processing is a `check` warning
quality = 80              # JPEG and WebP quality
archive_widths = [480, 800, 1200]   # the web archive's srcset
avif = false              # AVIF beside WebP in the archive (needs a Pillow that writes AVIF)
fetch_timeout = 10        # seconds, per mirrored photo
max_source_mb = 40        # a larger original (file or download) is refused

[images.logo]             # optional masthead logo
src = "images/logo.png"   # relative to the newsletter folder (or https with mirror)
dark = "images/logo-dark.png"   # optional: the variant for dark mode
alt = "The Morning Brief"
width = 200               # shown width in the email, in CSS pixels
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigError

# The email's layout (templates/partials): the lead photo spans the 600 px column, a card's photo
# its 36 % column, a photo in a body the text column inside 24 px margins.
EMAIL_WIDTH = 600
CARD_WIDTH = 216
BODY_WIDTH = 552


@dataclass(frozen=True)
class Logo:
    src: str
    alt: str
    dark: str = ""
    width: int = 200


@dataclass(frozen=True)
class ImageOptions:
    site_dir: Path  # where published images go: `<site>/images/`
    cache_dir: Path  # what is known about sources and outputs: `data/images/`
    root: Path  # the newsletter folder: local images must be inside it (or inside the stories folder)
    stories_dir: Path | None = None
    mirror: bool = False
    max_kb: int = 200
    quality: int = 80
    archive_widths: tuple[int, ...] = (480, 800, 1200)
    fetch_timeout: float = 10.0
    max_source_mb: int = 40
    max_pixels: int = 120_000_000  # a 12,000 × 10,000 original; more is a decompression bomb
    logo: Logo | None = None
    avif: bool = False

    @property
    def email_widths(self) -> tuple[int, ...]:
        """Every width an email shows a photo at, at 1× and 2× (high-density screens)."""
        # A body photo at 2× takes the lead's 2× file: nearly the same width, one file fewer.
        return tuple(sorted({EMAIL_WIDTH, 2 * EMAIL_WIDTH, CARD_WIDTH, 2 * CARD_WIDTH, BODY_WIDTH}))

    @property
    def recipe(self) -> str:
        """What the outputs depend on besides the source: part of every published name."""
        widths = f"e{','.join(map(str, self.email_widths))} a{','.join(map(str, self.archive_widths))}"
        return f"v1 q{self.quality} {widths}" + (" avif" if self.avif else "")


def image_options(settings: Settings) -> ImageOptions:
    """The `[images]` table of `settings` as options; a bad value is a `ConfigError` naming the key."""
    table = settings.section("images")
    known = {"mirror", "max_kb", "quality", "archive_widths", "fetch_timeout", "max_source_mb", "logo", "avif"}
    for key in table:
        if key not in known:
            raise ConfigError(f"[images] {key}: unknown key (known: {', '.join(sorted(known))})")
    site = settings.section("site").get("dir", "site")
    site_dir = (settings.root / (site if isinstance(site, str) and site.strip() else "site")).resolve()
    widths = table.get("archive_widths", [480, 800, 1200])
    if not isinstance(widths, list) or not widths or not all(_whole(w, 64, 4000) for w in widths):
        raise ConfigError(f"[images] archive_widths must be a list of widths from 64 to 4000 px, got {widths!r}")
    mirror, avif = table.get("mirror", False), table.get("avif", False)
    for key, flag in (("mirror", mirror), ("avif", avif)):
        if not isinstance(flag, bool):
            raise ConfigError(f"[images] {key} must be true or false, got {flag!r}")
    if avif and not _writes_avif():
        raise ConfigError(
            "[images] avif = true, but this Pillow cannot write AVIF (PIL.features.check('avif') is false): "
            "install Pillow 11.3 or later from its wheels, or set avif = false"
        )
    return ImageOptions(
        site_dir=site_dir,
        cache_dir=settings.root / "data" / "images",
        root=Path(os.path.abspath(settings.root)),
        stories_dir=Path(os.path.abspath(settings.stories_dir)),
        mirror=mirror,
        max_kb=_number(table, "max_kb", 200, 10, 10_000),
        quality=_number(table, "quality", 80, 30, 95),
        archive_widths=tuple(sorted(set(widths))),
        fetch_timeout=float(_number(table, "fetch_timeout", 10, 1, 120)),
        max_source_mb=_number(table, "max_source_mb", 40, 1, 500),
        logo=_logo(table.get("logo")),
        avif=avif,
    )


def _writes_avif() -> bool:
    from PIL import features  # only when AVIF is asked for: a warm build never imports Pillow

    return bool(features.check("avif"))


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(table: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if not _whole(value, low, high):
        raise ConfigError(f"[images] {key} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def _logo(value: Any) -> Logo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("[images] logo must be a table with src, alt (and optionally dark, width)")
    for key in value:
        if key not in ("src", "alt", "dark", "width"):
            raise ConfigError(f"[images.logo] {key}: unknown key (known: src, alt, dark, width)")
    src, alt, dark = value.get("src"), value.get("alt"), value.get("dark", "")
    if not isinstance(src, str) or not src.strip():
        raise ConfigError("[images.logo] src must be the logo's path or https URL")
    if not isinstance(alt, str) or not alt.strip():
        raise ConfigError("[images.logo] alt must say what the logo reads (usually the newsletter's name)")
    if not isinstance(dark, str):
        raise ConfigError(f"[images.logo] dark must be a path or https URL, got {dark!r}")
    width = value.get("width", 200)
    if not _whole(width, 16, 600):
        raise ConfigError(f"[images.logo] width must be a whole number from 16 to 600, got {width!r}")
    return Logo(src=src.strip(), alt=alt.strip(), dark=dark.strip(), width=int(width))
