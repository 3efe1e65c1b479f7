"""Quoted-printable stretches that can be joined in any order: each ends a line, none starts with a dot.

The personalizer (personalize.py) encodes an edition's static pieces once and a reader's values per
message, and joins them; these keep every line of the result within 76 octets and free of a leading
dot, whatever is spliced in.
"""

from __future__ import annotations

_SOFT_BREAK = b"=\r\n"


def end_soft(data: bytes) -> bytes:
    """End encoded `data` with a soft line break, keeping its last line within 76 octets with the `=`."""
    start = data.rfind(b"\n") + 1
    if len(data) - start >= 76:
        cut = start + 75
        if data[cut - 1 : cut] == b"=":  # never split an =XX escape
            cut -= 1
        elif data[cut - 2 : cut - 1] == b"=":
            cut -= 2
        data = data[:cut] + _SOFT_BREAK + data[cut:]
    return data + _SOFT_BREAK


def dot_safe(data: bytes) -> bytes:
    """Encoded lines with no line starting with a dot: a leading `.` becomes `=2E`.

    SMTP ends DATA at a line holding a lone dot and makes the client double every leading dot (RFC 5321
    4.5.2) — a copy of the whole message per recipient. A message none of whose lines starts with a
    dot needs no such copy, and reads the same once decoded. `data` starts at a line start; a line the
    escape makes longer than 76 octets is split with a soft break.
    """
    if not data.startswith(b".") and b"\n." not in data:
        return data
    out: list[bytes] = []
    for line in data.split(b"\r\n"):
        while line.startswith(b"."):
            line = b"=2E" + line[1:]
            if len(line) <= 76:
                break
            cut = 75
            if line[cut - 1 : cut] == b"=":  # never split an =XX escape
                cut -= 1
            elif line[cut - 2 : cut - 1] == b"=":
                cut -= 2
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return b"\r\n".join(out)
