"""Images the tests serve in place of the photo host, which they cannot reach."""

from __future__ import annotations

import struct
import zlib


def placeholder_png(width: int, height: int) -> bytes:
    """A flat grey PNG of the given size."""
    raw = b"".join(b"\x00" + bytes((150, 160, 175)) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
