"""Qt resource bundles: a bundle built here by the format's rules reads back; damage is named."""

from __future__ import annotations

import struct
import zlib

import pytest

from benchmark.qt_rcc import RccError, rcc_members


def build_rcc(files: dict[str, tuple[bytes, bool]], version: int = 2) -> bytes:
    """A bundle with one folder ``res`` holding ``files`` {name: (bytes, zlib?)}."""
    names, data = b"", b""
    name_off = {}
    for n in ["res", *files]:
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    size = 14 if version == 1 else 22
    entries = [struct.pack(">iHii", 0, 2, 1, 1),                    # root: 1 child at 1
               struct.pack(">iHii", name_off["res"], 2, len(files), 2)]
    for n, (raw, packed) in files.items():
        payload = struct.pack(">I", len(raw)) + zlib.compress(raw) if packed else raw
        entries.append(struct.pack(">iHHHi", name_off[n], 1 if packed else 0, 0, 0, len(data)))
        data += struct.pack(">I", len(payload)) + payload
    tree = b"".join(e.ljust(size, b"\0") for e in entries)
    head = 20
    return (b"qres" + struct.pack(">iiii", version, head, head + len(tree),
                                  head + len(tree) + len(data)) + tree + data + names)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_members_read_back(tmp_path, version):
    p = tmp_path / "b.rcc"
    p.write_bytes(build_rcc({"a.webp": (b"plain bytes", False), "b.jpg": (b"x" * 500, True)},
                            version))
    assert rcc_members(p) == {"res/a.webp": b"plain bytes", "res/b.jpg": b"x" * 500}


def test_damage_is_one_clear_error(tmp_path):
    p = tmp_path / "b.rcc"
    p.write_bytes(b"PNG not a bundle" * 3)
    with pytest.raises(RccError, match="not a Qt resource bundle"):
        rcc_members(p)
    good = build_rcc({"b.jpg": (b"x" * 500, True)})
    p.write_bytes(good[:-40])
    with pytest.raises(RccError, match="damaged"):
        rcc_members(p)
