#!/usr/bin/env python3
"""Draw the demo stories' illustrations into stories/images/ (the output is committed).

The demo ships pictures the project made itself, so every image of the demo email and archive
resolves, and nothing is borrowed: plain shapes drawn with Pillow, the same bytes on every run.

    python scripts/demo_images.py
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parent.parent / "stories" / "images"
SIZE = (1200, 800)
Colour = tuple[int, int, int]


def _sky(draw: ImageDraw.ImageDraw, top: Colour, bottom: Colour, height: int) -> None:
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line([(0, y), (SIZE[0], y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))


def parliament(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    """A domed parliament building with columns under a morning sky."""
    _sky(draw, (120, 170, 220), (238, 214, 180), 620)
    draw.rectangle([0, 620, SIZE[0], SIZE[1]], fill=(196, 184, 160))
    draw.rectangle([250, 380, 950, 640], fill=(232, 224, 206))
    draw.polygon([(220, 380), (600, 250), (980, 380)], fill=(220, 210, 190))
    draw.pieslice([470, 110, 730, 370], 180, 360, fill=(205, 190, 150))
    draw.rectangle([585, 60, 592, 130], fill=(80, 80, 80))
    draw.rectangle([592, 62, 650, 96], fill=(190, 40, 40))
    for x in range(290, 930, 80):
        draw.rectangle([x, 400, x + 26, 620], fill=(250, 246, 236))
    draw.rectangle([230, 620, 970, 650], fill=(210, 200, 180))
    for i in range(6):
        draw.ellipse(
            [60 + i * 190, 80 + rng.randint(0, 40), 200 + i * 190, 120 + rng.randint(0, 40)], fill=(246, 240, 232)
        )


def warehouse(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    """Shelves of boxed blankets and heaters in a warehouse; two aid workers with a delivery list."""
    draw.rectangle([0, 0, SIZE[0], SIZE[1]], fill=(74, 82, 96))
    draw.rectangle([0, 600, SIZE[0], SIZE[1]], fill=(120, 116, 108))
    for shelf in range(3):
        x0 = 60 + shelf * 380
        for level in range(4):
            y = 140 + level * 120
            draw.rectangle([x0, y + 96, x0 + 320, y + 106], fill=(60, 60, 64))
            for box in range(4):
                w = rng.randint(56, 72)
                shade = rng.choice([(196, 152, 98), (182, 140, 90), (210, 170, 112)])
                draw.rectangle([x0 + 8 + box * 78, y + 96 - w, x0 + 8 + box * 78 + 70, y + 96], fill=shade)
                draw.line(
                    [x0 + 8 + box * 78, y + 96 - w // 2, x0 + 78 + box * 78, y + 96 - w // 2],
                    fill=(150, 112, 70),
                    width=3,
                )
    for x, coat in ((470, (30, 120, 200)), (640, (220, 120, 40))):
        draw.ellipse([x, 430, x + 60, 490], fill=(222, 184, 150))
        draw.rounded_rectangle([x - 15, 490, x + 75, 680], 24, fill=coat)
        draw.rectangle([x + 60, 540, x + 110, 600], fill=(245, 245, 240))


def museum(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    """A stone archway at a museum entrance in the evening, strings of lights, a queue in winter coats."""
    _sky(draw, (24, 34, 78), (112, 82, 130), 560)
    draw.rectangle([0, 560, SIZE[0], SIZE[1]], fill=(70, 66, 72))
    draw.rectangle([300, 200, 900, 600], fill=(168, 156, 136))
    draw.pieslice([440, 260, 760, 580], 180, 360, fill=(255, 214, 140))
    draw.rectangle([440, 420, 760, 600], fill=(255, 214, 140))
    for i in range(30):
        x = 300 + i * 20
        y = 200 + round(30 * abs((i % 10) - 5) / 5)
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(255, 236, 160))
    for i in range(7):
        x = 140 + i * 90
        coat = rng.choice([(40, 60, 110), (120, 30, 40), (50, 90, 60), (90, 80, 70)])
        draw.ellipse([x, 470, x + 40, 510], fill=(210, 170, 140))
        draw.rounded_rectangle([x - 12, 510, x + 52, 660], 18, fill=coat)


def harbour(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    """Fireworks over a harbour at night, above the lit windows of the skyline."""
    _sky(draw, (8, 12, 40), (30, 40, 90), 520)
    draw.rectangle([0, 520, SIZE[0], SIZE[1]], fill=(10, 20, 50))
    x = 0
    while x < SIZE[0]:
        w, h = rng.randint(50, 110), rng.randint(80, 260)
        draw.rectangle([x, 520 - h, x + w, 520], fill=(20, 22, 36))
        for wy in range(520 - h + 12, 510, 26):
            for wx in range(x + 8, x + w - 8, 18):
                if rng.random() < 0.4:
                    draw.rectangle([wx, wy, wx + 6, wy + 10], fill=(250, 210, 120))
        x += w + rng.randint(4, 20)
    for cx, cy, colour in ((300, 180, (255, 90, 90)), (650, 120, (120, 220, 255)), (950, 200, (255, 220, 90))):
        for k in range(24):
            r = rng.randint(60, 110)
            angle = k * 15
            dx, dy = math.cos(math.radians(angle)) * r, math.sin(math.radians(angle)) * r
            draw.line([cx, cy, cx + dx, cy + dy], fill=colour, width=3)


PICTURES: dict[str, Callable[[ImageDraw.ImageDraw, random.Random], None]] = {
    "parliament": parliament,
    "aid-warehouse": warehouse,
    "museum-evening": museum,
    "harbour-fireworks": harbour,
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, paint in PICTURES.items():
        img = Image.new("RGB", SIZE)
        paint(ImageDraw.Draw(img), random.Random(name))
        img = img.filter(ImageFilter.SMOOTH)
        path = OUT / f"{name}.jpg"
        img.save(path, "JPEG", quality=78, optimize=True, progressive=True)
        print(f"{path.relative_to(OUT.parent.parent)}: {path.stat().st_size / 1000:.0f} KB")


if __name__ == "__main__":
    main()
