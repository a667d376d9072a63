"""Read files out of a compiled Qt resource bundle (``.rcc``), as GCompris ships its photos.

Hand-written because no library on PyPI extracts ``.rcc`` files (Qt's own ``rcc`` tool only
builds them). Format (Qt's ``rcc.cpp``, big-endian): ``b"qres"``, version, then offsets of the
tree, the data and the names. Tree entries are 14 bytes (version 1) or 22 (version ≥ 2): name
offset (i32), flags (u16: 1 zlib-compressed, 2 directory, 4 zstd), then for a directory the
child count and first child index (i32, i32), for a file country/language (u16, u16) and the
data offset (i32). Names are a u16 length, a u32 hash and UTF-16BE text; data is a u32 length
and the bytes (zlib ones start with their u32 uncompressed size).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


class RccError(ValueError):
    """A file that is not a readable Qt resource bundle, or lacks the requested member."""


def rcc_members(path: str | Path) -> dict[str, bytes]:
    """Every file of the bundle at ``path``: {"dir/sub/name.ext": bytes}. zstd members (not
    used by GCompris) raise ``RccError``."""
    b = Path(path).read_bytes()
    if b[:4] != b"qres" or len(b) < 20:
        raise RccError(f"{path} is not a Qt resource bundle (no 'qres' magic)")
    version, tree, data, names = struct.unpack(">iiii", b[4:20])
    size = 14 if version == 1 else 22
    out: dict[str, bytes] = {}

    def name(off: int) -> str:
        o = names + off
        (n,) = struct.unpack(">H", b[o:o + 2])
        return b[o + 6:o + 6 + 2 * n].decode("utf-16-be")

    def walk(index: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise RccError(f"{path}: resource tree deeper than 64 levels")
        o = tree + index * size
        noff, flags = struct.unpack(">iH", b[o:o + 6])
        p = prefix + ("" if index == 0 else name(noff))
        if flags & 2:
            count, first = struct.unpack(">ii", b[o + 6:o + 14])
            for child in range(first, first + count):
                walk(child, p + ("/" if p else ""), depth + 1)
            return
        (doff,) = struct.unpack(">i", b[o + 10:o + 14])
        d = data + doff
        (n,) = struct.unpack(">I", b[d:d + 4])
        raw = b[d + 4:d + 4 + n]
        if flags & 4:
            raise RccError(f"{path}: member {p} is zstd-compressed, which is not supported")
        out[p] = zlib.decompress(raw[4:]) if flags & 1 else raw

    try:
        walk(0, "", 0)
    except (struct.error, zlib.error, UnicodeDecodeError) as e:
        raise RccError(f"{path} is a damaged Qt resource bundle ({e})") from None
    return out
