"""The ``.sdg`` container: one encoded image's streams in a versioned binary format.

Layout (integers big-endian; ``varint`` is unsigned LEB128, at most 5 bytes, value < 2**32)::

    magic        4 bytes   b"SDGI"
    version      u8        FORMAT_VERSION
    preset       u8 length n (1..255), then n bytes of UTF-8
    height       varint    original image height in pixels (>= 1)
    width        varint    original image width in pixels (>= 1)
    streams      u8        bit 0 caption, bit 1 hci, bit 2 rsrt, bit 3 hci slices present
                           (bits 1 and 3 exclusive; bit 3 only in version 2); others zero
    header_crc   u32       CRC32 of every header byte before it
    caption      if present: length varint, payload, crc32 u32
    hci          if present: length varint, payload, crc32 u32
    rsrt         if present: token count K varint, bits per token B u8 (1..32),
                 presence bitmap ceil(K/8) bytes (bit i, MSB first: token i arrived),
                 fields ceil(K*B/8) bytes (token i in bits [i*B, (i+1)*B), MSB first;
                 a missing token's field is zero), crc32 u32
    hci slices   if present (after hci, before rsrt): slice count n varint (1..4096),
                 presence bitmap ceil(n/8) bytes (MSB first), crc32 u32 of both; then per
                 present slice: length varint, payload, crc32 u32
    (nothing after the last stream)

Version 1 is written whenever there are no HCI slices (so files of earlier releases and of
the scene presets keep their bytes); version 2 adds the slices. A slice whose CRC32 fails is
read as lost (its region decodes as lost), every other malformation raises.

Each CRC32 covers every byte of its section before it (lengths included), so any single
bit flip anywhere in a container is detected. Streams are
independent: the simulator sends ``stream_bytes(name)`` of each on its own, and a receiver
rebuilds an :class:`EncodedImage` from what arrived (``without(...)``, ``with_lost_tokens(...)``),
which serializes and parses like any other. RSRT tokens sit at fixed bit offsets, so any
subset of tokens can be lost.

Parsing never trusts a length before checking it against the bytes left, so memory stays
bounded by the input size; every malformation raises :class:`ContainerError`.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from pathlib import Path
from typing import Iterable, Sequence

from codec.errors import ContainerError, PresetMismatchError

__all__ = ["ContainerError", "EncodedImage", "MAGIC", "FORMAT_VERSION", "STREAMS"]

MAGIC = b"SDGI"
FORMAT_VERSION = 2
STREAMS = ("caption", "hci", "rsrt")
_MAX_SLICES = 4096
_MAX_VARINT = (1 << 32) - 1
_MAX_SIDE = 1 << 20  # pixels: absurd sizes are rejected, not allocated
_MAX_TOKEN_BITS = 32




# ---------------------------------------------------------------------------------------------
# Bit packing
# ---------------------------------------------------------------------------------------------


def pack_tokens(tokens: Sequence[int | None], bits: int) -> tuple[bytes, bytes]:
    """Tokens (``None`` = missing) → (presence bitmap ceil(K/8) bytes, fields ceil(K*bits/8)
    bytes), both MSB first; a missing token's field is zero."""
    fields = "".join(format(0 if t is None else t, f"0{bits}b") for t in tokens)
    bitmap = "".join("0" if t is None else "1" for t in tokens)
    return _bits_to_bytes(bitmap), _bits_to_bytes(fields)


def unpack_tokens(bitmap: bytes, fields: bytes, k: int, bits: int) -> list[int | None]:
    """Inverse of :func:`pack_tokens` (the caller has checked both lengths)."""
    f = _bytes_to_bits(fields)
    p = _bytes_to_bits(bitmap)
    return [int(f[i * bits:(i + 1) * bits], 2) if p[i] == "1" else None for i in range(k)]


def _bits_to_bytes(s: str) -> bytes:
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


def _bytes_to_bits(b: bytes) -> str:
    return "".join(format(x, "08b") for x in b)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    """Bounds-checked cursor over the input; every failure is a ContainerError."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        left = len(self.data) - self.pos
        if n > left:
            raise ContainerError(f"truncated container: {what} needs {n} bytes at offset "
                                 f"{self.pos}, only {left} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u32(self, what: str) -> int:
        return struct.unpack(">I", self.take(4, what))[0]

    def varint(self, what: str) -> int:
        start, value = self.pos, 0
        for i in range(5):
            b = self.u8(what)
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if (i and b == 0) or value > _MAX_VARINT:
                    raise ContainerError(f"{what} at offset {start} is not a canonical "
                                         f"varint below 2**32")
                return value
        raise ContainerError(f"{what} at offset {start} is a varint longer than 5 bytes")


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _mark_lost(items: tuple, indices: Iterable[int], what: str) -> tuple:
    """``items`` with the entries at ``indices`` set to None (lost)."""
    out = list(items)
    for i in indices:
        if not isinstance(i, int) or not 0 <= i < len(out):
            raise ValueError(f"{what} index {i!r} is out of range [0, {len(out)})")
        out[i] = None
    return tuple(out)


def _read_slices(r: _Reader, data: bytes) -> tuple[bytes | None, ...]:
    """The HCI slices section; a slice whose CRC32 fails is returned as lost (None)."""
    start = r.pos
    n = r.varint("hci slice count")
    if not 1 <= n <= _MAX_SLICES:
        raise ContainerError(f"hci slice count {n} is out of range [1, {_MAX_SLICES}]")
    bitmap = _bytes_to_bits(r.take(-(-n // 8), "hci slice bitmap"))
    _check_crc(r, data[start:r.pos], "hci slices header")
    out = []
    for i in range(n):
        if bitmap[i] == "0":
            out.append(None)
            continue
        s0 = r.pos
        length = r.varint(f"hci slice {i} length")
        payload = r.take(length, f"hci slice {i} payload")
        crc = r.u32(f"hci slice {i} CRC32")
        out.append(payload if crc == _crc(data[s0:r.pos - 4]) else None)
    if any(c == "1" for c in bitmap[n:]):
        raise ContainerError("hci slice bitmap sets bits past the slice count")
    return tuple(out)


def _check_crc(r: _Reader, section: bytes, name: str) -> None:
    crc = r.u32(f"{name} CRC32")
    if crc != _crc(section):
        raise ContainerError(f"{name} stream CRC32 mismatch: stored {crc:08x}, computed "
                             f"{_crc(section):08x} (corrupt {name} stream)")


# ---------------------------------------------------------------------------------------------
# The encoded image
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """One encoded image: the three streams and what decoding needs to know.

    Parameters
    ----------
    preset : str
        Preset id the streams were made with (1–255 bytes of UTF-8).
    height, width : int
        Original image size in pixels (before any internal padding).
    caption : bytes or None
        Caption stream (``CaptionCoder.encode``); ``None``: not sent or lost.
    hci : bytes or None
        Highly compressed image bitstream; ``None``: not sent or lost.
    rsrt_tokens : list of (int or None), or None
        K residual token indices, each in ``[0, 2**rsrt_bits)``; an entry ``None`` is a lost
        token; ``None`` for the whole list: no RSRT stream.
    rsrt_bits : int
        Bits per RSRT token (1–32) when ``rsrt_tokens`` is given; set to 0 without it.
    hci_slices : tuple of (bytes or None), or None
        The HCI as independently decodable slices (``hci_sliced.SlicedHCI``), ``None`` where
        a slice was lost; exclusive with ``hci``. The ``hci`` stream counts these bits.
    """

    preset: str
    height: int
    width: int
    caption: bytes | None = None
    hci: bytes | None = None
    rsrt_tokens: tuple[int | None, ...] | None = None
    rsrt_bits: int = 0
    hci_slices: tuple[bytes | None, ...] | None = None

    def __post_init__(self):
        try:
            n = len(self.preset.encode("utf-8"))
        except (AttributeError, UnicodeEncodeError):
            n = 0
        if not isinstance(self.preset, str) or not 1 <= n <= 255:
            raise ValueError(f"preset={self.preset!r} must be a str of 1 to 255 UTF-8 bytes")
        for name in ("height", "width"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= _MAX_SIDE:
                raise ValueError(f"{name}={v!r} must be an int in [1, {_MAX_SIDE}] (pixels)")
        for name in ("caption", "hci"):
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, (bytes, bytearray, memoryview)):
                raise TypeError(f"{name} must be bytes or None, got {type(v).__name__}")
            if len(v) > _MAX_VARINT:
                raise ValueError(f"{name} is {len(v)} bytes; the container holds < 2**32")
            object.__setattr__(self, name, bytes(v))
        if self.hci_slices is not None:
            if self.hci is not None:
                raise ValueError("give hci or hci_slices, not both")
            sl = tuple(self.hci_slices)
            if not 1 <= len(sl) <= _MAX_SLICES:
                raise ValueError(f"hci_slices has {len(sl)} slices; expected 1 to {_MAX_SLICES}")
            for i, v in enumerate(sl):
                if v is not None and not isinstance(v, (bytes, bytearray, memoryview)):
                    raise TypeError(f"hci_slices[{i}] must be bytes or None, got "
                                    f"{type(v).__name__}")
            object.__setattr__(self, "hci_slices",
                               tuple(None if v is None else bytes(v) for v in sl))
        if self.rsrt_tokens is not None:
            b = self.rsrt_bits
            if not isinstance(b, int) or not 1 <= b <= _MAX_TOKEN_BITS:
                raise ValueError(f"rsrt_bits={b!r} must be in [1, {_MAX_TOKEN_BITS}] when "
                                 "rsrt_tokens is given (bits per token: log2 of the codebook)")
            tokens = tuple(self.rsrt_tokens)
            for i, t in enumerate(tokens):
                if t is None:
                    continue
                if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < (1 << b):
                    raise ValueError(f"rsrt_tokens[{i}]={t!r} must be an int in "
                                     f"[0, {1 << b}) for rsrt_bits={b}, or None if lost")
            object.__setattr__(self, "rsrt_tokens", tokens)
        else:
            object.__setattr__(self, "rsrt_bits", 0)  # not carried without the stream

    # -- streams --------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        """Whether stream ``name`` (``caption``, ``hci`` or ``rsrt``) is present."""
        return self._get(name) is not None

    def _get(self, name: str):
        if name not in STREAMS:
            raise ValueError(f"stream name={name!r} is unknown; expected one of {STREAMS}")
        if name == "hci" and self.hci_slices is not None:
            present = [v for v in self.hci_slices if v is not None]
            return b"".join(present) if present else None
        return self.rsrt_tokens if name == "rsrt" else getattr(self, name)

    def stream_bytes(self, name: str) -> bytes:
        """The exact payload of stream ``name`` as sent on the air: caption/hci bytes (sliced:
        the present slices one after another), or the RSRT fields (K tokens × ``rsrt_bits``, zero-padded to whole bytes). ``b""`` if absent."""
        v = self._get(name)
        if v is None:
            return b""
        if name == "rsrt":
            return pack_tokens(v, self.rsrt_bits)[1]
        return v

    def stream_bits(self, name: str) -> int:
        """Payload bits of stream ``name``: 8 × bytes, or K × ``rsrt_bits`` for RSRT (every
        token slot, lost ones included: what the encoder sent)."""
        v = self._get(name)
        if v is None:
            return 0
        return len(v) * self.rsrt_bits if name == "rsrt" else 8 * len(v)

    def total_bits(self) -> int:
        """Payload bits of all present streams (container header not included)."""
        return sum(self.stream_bits(n) for n in STREAMS)

    def bpp(self) -> float:
        """Payload bits per pixel of the original image."""
        return self.total_bits() / (self.height * self.width)

    def without(self, *streams: str) -> "EncodedImage":
        """A copy with the named streams removed (as if lost or never sent)."""
        for s in streams:
            self._get(s)
        changes = {("rsrt_tokens" if s == "rsrt" else s): None for s in streams}
        if "hci" in streams:
            changes["hci_slices"] = None
        return dataclasses.replace(self, **changes)

    def with_lost_slices(self, indices: Iterable[int]) -> "EncodedImage":
        """A copy with HCI slices at ``indices`` marked lost (``None``)."""
        if self.hci_slices is None:
            raise ValueError("with_lost_slices() needs a sliced HCI; this image has none")
        return dataclasses.replace(self, hci_slices=_mark_lost(self.hci_slices, indices,
                                                               "slice"))

    def lost_slices(self) -> list[int]:
        """Indices of lost HCI slices (empty if the HCI is not sliced)."""
        return [i for i, v in enumerate(self.hci_slices or ()) if v is None]

    def with_lost_tokens(self, indices: Iterable[int]) -> "EncodedImage":
        """A copy with RSRT tokens at ``indices`` marked lost (``None``)."""
        if self.rsrt_tokens is None:
            raise ValueError("with_lost_tokens() needs an RSRT stream; this image has none")
        return dataclasses.replace(self, rsrt_tokens=_mark_lost(self.rsrt_tokens, indices,
                                                                "token"))

    def lost_tokens(self) -> list[int]:
        """Indices of lost RSRT tokens (empty if there is no RSRT stream)."""
        return [i for i, t in enumerate(self.rsrt_tokens or ()) if t is None]

    def check_preset(self, expected: str) -> None:
        """Raise :class:`ContainerError` unless the image was encoded with preset ``expected``."""
        if self.preset != expected:
            raise PresetMismatchError(f"the image was encoded with preset {self.preset!r} but the "
                                 f"decoder loaded {expected!r}; load preset {self.preset!r} to "
                                 "decode it")

    # -- serialization --------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialize to the container format (see the module docstring)."""
        preset = self.preset.encode("utf-8")
        flags = sum(1 << i for i, s in enumerate(STREAMS) if self.has(s))
        if self.hci_slices is not None:
            flags = (flags & ~2) | 8  # slices, even when every one was lost
        version = 2 if self.hci_slices is not None else 1
        head = (MAGIC + bytes([version, len(preset)]) + preset + _varint(self.height)
                + _varint(self.width) + bytes([flags]))
        out = [head, struct.pack(">I", _crc(head))]
        for name in ("caption", "hci"):
            v = getattr(self, name)
            if v is not None:
                section = _varint(len(v)) + v
                out += [section, struct.pack(">I", _crc(section))]
        if self.hci_slices is not None:
            section = _varint(len(self.hci_slices)) + _bits_to_bytes(
                "".join("0" if v is None else "1" for v in self.hci_slices))
            out += [section, struct.pack(">I", _crc(section))]
            for v in self.hci_slices:
                if v is not None:
                    part = _varint(len(v)) + v
                    out += [part, struct.pack(">I", _crc(part))]
        if self.rsrt_tokens is not None:
            bitmap, fields = pack_tokens(self.rsrt_tokens, self.rsrt_bits)
            section = _varint(len(self.rsrt_tokens)) + bytes([self.rsrt_bits]) + bitmap + fields
            out += [section, struct.pack(">I", _crc(section))]
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> "EncodedImage":
        """Parse a container; any malformation raises :class:`ContainerError`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise ContainerError("empty input: expected an SDGIC container starting with "
                                 f"{MAGIC!r}")
        r = _Reader(data)
        magic = r.take(len(MAGIC), "magic")
        if magic != MAGIC:
            raise ContainerError(f"not an SDGIC container: magic bytes are {magic!r}, expected "
                                 f"{MAGIC!r}")
        version = r.u8("format version")
        if version > FORMAT_VERSION:
            raise ContainerError(f"file format version {version} is newer than this reader "
                                 f"({FORMAT_VERSION}); upgrade sdgic")
        if version < 1:
            raise ContainerError(f"file format version {version} is invalid; expected 1 to "
                                 f"{FORMAT_VERSION}")
        n = r.u8("preset length")
        if n == 0:
            raise ContainerError("preset length is 0; expected a preset id of 1 to 255 bytes")
        raw_preset = r.take(n, "preset id")
        height = r.varint("image height")
        width = r.varint("image width")
        flags = r.u8("stream flags")
        head_end = r.pos
        crc = r.u32("header CRC32")
        if crc != _crc(data[:head_end]):
            raise ContainerError(f"header CRC32 mismatch: stored {crc:08x}, computed "
                                 f"{_crc(data[:head_end]):08x} (corrupt header)")
        try:
            preset = raw_preset.decode("utf-8")
        except UnicodeDecodeError:
            raise ContainerError(f"preset id {raw_preset!r} is not UTF-8") from None
        for name, v in (("height", height), ("width", width)):
            if not 1 <= v <= _MAX_SIDE:
                raise ContainerError(f"image {name} {v} is out of range [1, {_MAX_SIDE}]")
        known = 4 if version >= 2 else 3
        if flags >> known:
            raise ContainerError(f"stream flags {flags:#04x} set unknown bits; expected only "
                                 f"the low {known} bits (caption, hci, rsrt"
                                 + (", hci slices)" if known == 4 else ")"))
        if flags & 2 and flags & 8:
            raise ContainerError(f"stream flags {flags:#04x} set both hci and hci slices")
        streams: dict = {}
        for i, name in enumerate(("caption", "hci")):
            if flags >> i & 1:
                start = r.pos
                length = r.varint(f"{name} length")
                payload = r.take(length, f"{name} payload")
                _check_crc(r, data[start:r.pos], name)
                streams[name] = payload
        if flags & 8:
            streams["hci_slices"] = _read_slices(r, data)
        bits = 0
        if flags >> 2 & 1:
            start = r.pos
            k = r.varint("rsrt token count")
            bits = r.u8("rsrt bits per token")
            if not 1 <= bits <= _MAX_TOKEN_BITS:
                raise ContainerError(f"rsrt bits per token is {bits}; expected 1 to "
                                     f"{_MAX_TOKEN_BITS}")
            # both lengths are checked against the bytes left before anything is built
            nb = -(-k // 8)
            body = r.take(nb + -(-k * bits // 8), f"rsrt bitmap and {k} tokens")
            _check_crc(r, data[start:r.pos], "rsrt")
            streams["rsrt_tokens"] = unpack_tokens(body[:nb], body[nb:], k, bits)
        if r.pos != len(data):
            raise ContainerError(f"{len(data) - r.pos} unexpected bytes after the last stream "
                                 f"at offset {r.pos}; expected the container to end there")
        try:
            return cls(preset=preset, height=height, width=width, rsrt_bits=bits, **streams)
        except ValueError as e:  # defensive: every field was checked above
            raise ContainerError(f"container fields are inconsistent: {e}") from None

    def save(self, path: str | Path) -> Path:
        """Write the container to ``path`` (``.sdg``)."""
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EncodedImage":
        """Read a container file; a malformed one raises :class:`ContainerError`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path={str(path)!r} is not a file")
        try:
            return cls.from_bytes(path.read_bytes())
        except ContainerError as e:
            raise ContainerError(f"{path}: {e}") from None
