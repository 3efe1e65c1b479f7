"""What a published photo is to the templates: its renditions (URL, size, format) and how to pick one."""

from __future__ import annotations

from dataclasses import dataclass

MODERN = ("avif", "webp")  # formats only the archive offers (in a `<picture>`), best first


class ImageRefused(ValueError):
    """The original is not a photo that can be published; the message says why, for one warning line."""


@dataclass(frozen=True)
class Rendition:
    url: str  # absolute, under base_url
    width: int
    height: int
    format: str  # "jpeg", "png", "webp", "avif"
    bytes: int

    @property
    def mime(self) -> str:
        return f"image/{self.format}"


@dataclass(frozen=True)
class Published:
    """A photo processed into `site/images/`: every rendition, the widest last."""

    renditions: tuple[Rendition, ...]

    @property
    def width(self) -> int:
        return max(r.width for r in self.renditions)

    @property
    def height(self) -> int:
        return max(r.height for r in self.renditions)

    def fallback(self) -> tuple[Rendition, ...]:
        """The JPEG/PNG renditions (what every mail client and browser shows), narrowest first."""
        return tuple(sorted((r for r in self.renditions if r.format not in MODERN), key=lambda r: r.width))

    def modern(self, fmt: str = "webp") -> tuple[Rendition, ...]:
        """The renditions in `fmt` ("webp" or "avif": for browsers that take it), narrowest first."""
        return tuple(sorted((r for r in self.renditions if r.format == fmt), key=lambda r: r.width))

    def for_width(self, shown: int) -> tuple[Rendition, int, int]:
        """For a photo shown `shown` CSS pixels wide (never wider than it is): the JPEG/PNG sharp on a 2×
        screen, and the width and height to give the `<img>`."""
        width = min(shown, self.width)
        height = max(1, round(width * self.height / self.width))
        choices = self.fallback()
        best = next((r for r in choices if r.width >= 2 * width), choices[-1])
        return best, width, height


@dataclass(frozen=True)
class Shown:
    """One published image as an `<img>` shows it: the file, and the width and height to give it."""

    src: str
    width: int
    height: int


@dataclass(frozen=True)
class Masthead:
    """The masthead logo as the email shows it; `dark` replaces `light` in dark mode when there is one."""

    alt: str
    light: Shown
    dark: Shown | None = None


def srcset(renditions: tuple[Rendition, ...]) -> str:
    """`url 480w, url 800w, …` for a `srcset` attribute."""
    return ", ".join(f"{r.url} {r.width}w" for r in renditions)
