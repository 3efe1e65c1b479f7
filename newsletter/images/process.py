"""Photos made fit to publish (Pillow): bytes of an original in, encoded renditions out; no files.

An original is decoded only when it is an image of a known type, within the pixel limit, and whole;
then it is turned upright (EXIF orientation), converted to sRGB (an embedded ICC profile, CMYK), cut to
its first frame when animated, and left without metadata: no EXIF, XMP, GPS position or ICC profile
reaches a reader (browsers and mail clients take untagged pixels as sRGB). Each rendition is a width:
JPEG (or PNG when the photo has transparency) for the email and as the archive's fallback, WebP for
browsers that take it, and AVIF too with `[images] avif = true`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .model import ImageRefused

# What a newsroom's CMS or camera hands out. Anything else with an image name is refused.
_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "WEBP", "TIFF", "BMP"})
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class Encoded:
    width: int
    height: int
    format: str  # "jpeg", "png", "webp" or "avif"
    data: bytes

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format


def decode(data: bytes, *, largest: int, max_pixels: int) -> Image.Image:
    """The original as an upright sRGB image (RGB, or RGBA when it has transparency), metadata gone.

    `largest` is the widest rendition wanted: a JPEG is decoded at the smallest scale (1/2, 1/4, 1/8)
    still wider than that, which makes a camera original several times cheaper to read.
    """
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError):
        raise ImageRefused("not an image (or a kind that cannot be read)") from None
    if img.format not in _FORMATS:
        raise ImageRefused(f"a {img.format or 'unknown'} file; photos must be JPEG, PNG, GIF, WebP or TIFF")
    if img.width * img.height > max_pixels:
        raise ImageRefused(f"{img.width} × {img.height} pixels is more than a photo may have ({max_pixels:,})")
    if img.format in ("JPEG", "MPO"):
        # The side that will be the width once the photo is upright (orientations 5-8 turn it a quarter).
        turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        img.draft(img.mode, (1, largest) if turned else (largest, 1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRefused(f"damaged or truncated ({exc})") from None
    icc = img.info.get("icc_profile")
    upright: Image.Image = ImageOps.exif_transpose(img) if img.getexif().get(0x0112, 1) != 1 else img
    return _to_srgb(upright, icc if isinstance(icc, bytes) else None)


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB or RGBA in sRGB, whatever the mode and profile the original came in."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit (or float) grey: scale to 8 bits before anything else, or it would clip to white.
        transparent = img.info.get("transparency")
        grey = img.convert("I").point(lambda v: v / 257).convert("L")
        if isinstance(transparent, int):
            alpha = img.convert("I").point(lambda v: 0 if v == transparent else 255).convert("L")
            grey = Image.merge("LA", (grey, alpha))
        img = grey
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if img.mode == "CMYK" or (icc and img.mode in ("RGB", "RGBA", "L", "LA")):
        img = _with_profile(img, icc)
    img = img.convert("RGBA" if has_alpha else "RGB")
    if img.mode == "RGBA" and img.getchannel("A").getextrema()[0] == 255:
        img = img.convert("RGB")  # an alpha channel nothing uses: a JPEG is far smaller than a PNG
    img.info = {}  # nothing of the original's metadata may be written back out
    return img


def _with_profile(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Pixels converted from the original's ICC profile to sRGB; a CMYK photo without one, naively."""
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if img.mode == "CMYK" or "srgb" not in ImageCms.getProfileDescription(source).lower():
                alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else None
                base = img.convert("RGB" if img.mode in ("RGBA", "LA") else img.mode) if alpha else img
                out = ImageCms.profileToProfile(base, source, _SRGB, outputMode="RGB")
                if out is not None:
                    if alpha is not None:
                        out.putalpha(alpha)
                    return out
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: the pixels as they are beat no photo at all
    return img.convert("RGB") if img.mode == "CMYK" else img


def encode(
    img: Image.Image, widths: tuple[int, ...], webp_widths: tuple[int, ...], quality: int, *, avif: bool = False
) -> list[Encoded]:
    """One rendition per width (never wider than the photo itself): JPEG/PNG at `widths`, WebP (and
    AVIF with `avif`) at `webp_widths`. Each is resized from the next larger one, which keeps the total
    work near one resize."""
    wanted = sorted({min(w, img.width) for w in widths} | {min(w, img.width) for w in webp_widths}, reverse=True)
    fallback = {min(w, img.width) for w in widths}
    modern = {min(w, img.width) for w in webp_widths}
    out: list[Encoded] = []
    current = img
    for width in wanted:
        height = max(1, round(img.height * width / img.width))
        if current.width != width:
            current = current.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        if width in fallback:
            out.append(_save(current, "png" if current.mode == "RGBA" else "jpeg", quality))
        if width in modern:
            out.append(_save(current, "webp", quality))
            if avif:
                out.append(_save(current, "avif", quality))
    return out


def _save(img: Image.Image, fmt: str, quality: int) -> Encoded:
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
    elif fmt == "png":
        img.save(buf, "PNG", optimize=True)
    elif fmt == "avif":
        # speed 8: a tenth of the default's time for a few per cent more bytes; quality a notch under
        # the JPEG's looks the same (AVIF's scale is not JPEG's).
        img.save(buf, "AVIF", quality=max(30, quality - 20), speed=8)
    else:
        # method 1: a few per cent larger than the default 4, at a third of the time (a cold build's
        # cost is mostly these encodes).
        img.save(buf, "WEBP", quality=quality, method=1)
    return Encoded(img.width, img.height, fmt, buf.getvalue())
