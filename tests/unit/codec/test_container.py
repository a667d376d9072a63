"""Container: serialize/parse identity, stripped streams, lost tokens, clear errors, fuzzing."""

import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from codec.container import (FORMAT_VERSION, MAGIC, ContainerError, EncodedImage, pack_tokens,
                             unpack_tokens)


def _full(k=24, bits=10, seed=0):
    rng = np.random.default_rng(seed)
    return EncodedImage(
        preset="sdgic-scenes-64", height=384, width=512,
        caption=b"\x12\x34\x56\x78", hci=rng.integers(0, 256, 60).astype(np.uint8).tobytes(),
        rsrt_tokens=[int(t) for t in rng.integers(0, 1 << bits, k)], rsrt_bits=bits)


CASES = [
    _full(),
    _full(k=1, bits=1),
    _full(k=9, bits=32),
    _full(k=0, bits=4),
    _full().without("caption"),
    _full().without("hci", "rsrt"),
    _full().without("caption", "hci", "rsrt"),
    _full().with_lost_tokens([0, 5, 23]),
    _full().with_lost_tokens(range(24)),
    EncodedImage("ü-preset ✓", 1, 1, caption=b"", hci=b""),
    EncodedImage("p" * 255, 1 << 20, 3, hci=bytes(1000)),
]


@pytest.mark.parametrize("enc", CASES, ids=range(len(CASES)))
def test_serialize_parse_identity(enc):
    data = enc.to_bytes()
    assert data[:4] == MAGIC and data[4] == 1  # version 2 only when the HCI is sliced
    back = EncodedImage.from_bytes(data)
    assert back == enc
    assert back.to_bytes() == data


def test_stripped_streams_parse_and_keep_the_rest():
    enc = _full()
    for name in ("caption", "hci", "rsrt"):
        back = EncodedImage.from_bytes(enc.without(name).to_bytes())
        assert not back.has(name) and back.stream_bytes(name) == b"" and back.stream_bits(name) == 0
        for other in {"caption", "hci", "rsrt"} - {name}:
            assert back.stream_bytes(other) == enc.stream_bytes(other)
    assert enc.without("rsrt").rsrt_bits == 0


def test_lost_tokens_survive_round_trip():
    enc = _full()
    lost = enc.with_lost_tokens([1, 2, 3, 17])
    back = EncodedImage.from_bytes(lost.to_bytes())
    assert back.lost_tokens() == [1, 2, 3, 17]
    kept = [i for i in range(24) if i not in (1, 2, 3, 17)]
    assert [back.rsrt_tokens[i] for i in kept] == [enc.rsrt_tokens[i] for i in kept]
    # every slot stays in the layout, so the sent size does not change
    assert back.stream_bits("rsrt") == enc.stream_bits("rsrt") == 24 * 10


def test_stream_bytes_and_bits():
    enc = _full(k=24, bits=10)
    assert enc.stream_bytes("caption") == enc.caption and enc.stream_bits("caption") == 32
    assert enc.stream_bytes("hci") == enc.hci and enc.stream_bits("hci") == 480
    assert len(enc.stream_bytes("rsrt")) == 30  # 240 bits
    assert enc.total_bits() == 32 + 480 + 240
    assert enc.bpp() == pytest.approx(752 / (384 * 512))
    with pytest.raises(ValueError, match="expected one of"):
        enc.stream_bytes("audio")


def test_token_packing_is_msb_first():
    bitmap, fields = pack_tokens([1, None, 3], 2)
    assert bitmap == bytes([0b10100000]) and fields == bytes([0b01001100])
    assert unpack_tokens(bitmap, fields, 3, 2) == [1, None, 3]


def test_clear_errors():
    data = _full().to_bytes()
    with pytest.raises(ContainerError, match=r"magic bytes are b'PNG\\r', expected b'SDGI'"):
        EncodedImage.from_bytes(b"PNG\r" + data[4:])
    with pytest.raises(ContainerError, match=r"file format version 3 is newer than this reader "
                                             r"\(2\); upgrade sdgic"):
        EncodedImage.from_bytes(data[:4] + b"\x03" + data[5:])
    with pytest.raises(ContainerError, match="truncated container"):
        EncodedImage.from_bytes(data[:-1])
    with pytest.raises(ContainerError, match="unexpected bytes after the last stream"):
        EncodedImage.from_bytes(data + b"\x00")
    with pytest.raises(ContainerError, match="encoded with preset 'sdgic-scenes-64' but the "
                                             "decoder loaded 'other'"):
        _full().check_preset("other")
    _full().check_preset("sdgic-scenes-64")
    for name in ("caption", "hci", "rsrt"):  # corrupt the last payload byte of each stream
        only = _full().without(*({"caption", "hci", "rsrt"} - {name})).to_bytes()
        bad = bytearray(only)
        bad[-5] ^= 0x01
        with pytest.raises(ContainerError, match=f"{name} stream CRC32 mismatch"):
            EncodedImage.from_bytes(bytes(bad))
    with pytest.raises(ContainerError, match="empty input"):
        EncodedImage.from_bytes(b"")
    with pytest.raises(TypeError, match="data must be bytes"):
        EncodedImage.from_bytes("SDGI")


def test_argument_validation():
    with pytest.raises(ValueError, match="preset=''"):
        EncodedImage("", 8, 8)
    with pytest.raises(ValueError, match="height=0"):
        EncodedImage("p", 0, 8)
    with pytest.raises(ValueError, match="rsrt_bits=0"):
        EncodedImage("p", 8, 8, rsrt_tokens=[1])
    with pytest.raises(ValueError, match=r"rsrt_tokens\[1\]=16"):
        EncodedImage("p", 8, 8, rsrt_tokens=[1, 16], rsrt_bits=4)
    with pytest.raises(TypeError, match="caption must be bytes"):
        EncodedImage("p", 8, 8, caption="text")
    with pytest.raises(ValueError, match="out of range"):
        _full().with_lost_tokens([24])
    with pytest.raises(ValueError, match="needs an RSRT stream"):
        _full().without("rsrt").with_lost_tokens([0])


def _header(flags, preset=b"p"):
    head = MAGIC + bytes([FORMAT_VERSION, len(preset)]) + preset + b"\x08\x08" + bytes([flags])
    return head + struct.pack(">I", zlib.crc32(head))


@pytest.mark.timeout(10)
def test_absurd_lengths_are_rejected_without_allocating():
    huge = b"\xff\xff\xff\xff\x0f"  # varint 2**32 - 1
    cases = [_header(0b001) + huge + b"\x00" * 8,           # caption of 4 GiB
             _header(0b100) + huge + b"\x20" + b"\x00" * 8,  # 4 G tokens of 32 bits
             _header(0b010) + b"\xff" * 6]                  # varint too long
    for data in cases:
        tracemalloc.start()
        with pytest.raises(ContainerError):
            EncodedImage.from_bytes(data)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 100_000, peak


def _parses_or_container_error(data) -> bool:
    """True if ``data`` parsed; False if it raised ContainerError; anything else fails."""
    try:
        EncodedImage.from_bytes(data)
        return True
    except ContainerError:
        return False


@pytest.mark.timeout(120)
def test_fuzz_random_truncated_and_flipped():
    rng = np.random.default_rng(1234)
    t0 = time.perf_counter()
    valid = [c.to_bytes() for c in CASES[:9]]
    # random bytes, and random bytes behind a valid magic and version (to get past them)
    for _ in range(3000):
        n = int(rng.integers(0, 120))
        junk = rng.integers(0, 256, n).astype(np.uint8).tobytes()
        _parses_or_container_error(junk)
        _parses_or_container_error(MAGIC + bytes([FORMAT_VERSION]) + junk)
    for data in valid:
        # every truncation fails (the format has no optional tail)
        for cut in range(len(data)):
            assert not _parses_or_container_error(data[:cut])
        # every single bit flip is detected: header and stream CRCs cover every byte
        for i in range(8 * len(data)):
            bad = bytearray(data)
            bad[i // 8] ^= 0x80 >> (i % 8)
            assert not _parses_or_container_error(bytes(bad)), f"flip of bit {i} parsed"
        # random multi-byte corruption: parse or ContainerError
        for _ in range(200):
            bad = bytearray(data)
            for j in rng.integers(0, len(data), int(rng.integers(1, 6))):
                bad[j] = int(rng.integers(0, 256))
            _parses_or_container_error(bytes(bad))
    assert time.perf_counter() - t0 < 60


def test_save_load(tmp_path):
    enc = _full()
    path = enc.save(tmp_path / "x.sdg")
    assert EncodedImage.load(path) == enc
    (tmp_path / "bad.sdg").write_bytes(b"SDG")
    with pytest.raises(ContainerError, match="bad.sdg: truncated container"):
        EncodedImage.load(tmp_path / "bad.sdg")


# ---- sliced HCI ------------------------------------------------------------------------------

def _sliced(lost=()):
    sl = [bytes([0x80 + i]) * (3 + i) for i in range(5)]
    enc = EncodedImage("photos:mid", 383, 517, caption=None, hci_slices=sl,
                       rsrt_tokens=[3, None, 7], rsrt_bits=4)
    return enc.with_lost_slices(lost) if lost else enc


@pytest.mark.parametrize("lost", [(), (0,), (1, 4), (0, 1, 2, 3, 4)])
def test_sliced_hci_round_trips_with_any_subset(lost):
    enc = _sliced(lost)
    data = enc.to_bytes()
    assert data[4] == 2
    back = EncodedImage.from_bytes(data)
    assert back == enc and back.lost_slices() == sorted(lost)
    kept = [v for v in enc.hci_slices if v is not None]
    assert back.stream_bits("hci") == 8 * sum(len(v) for v in kept)
    assert back.has("hci") == bool(kept)
    assert back.without("hci").hci_slices is None


def test_sliced_hci_argument_and_flag_errors():
    with pytest.raises(ValueError, match="not both"):
        EncodedImage("p", 8, 8, hci=b"x", hci_slices=[b"y"])
    with pytest.raises(ValueError, match="out of range"):
        _sliced().with_lost_slices([5])
    with pytest.raises(ValueError, match="needs a sliced HCI"):
        _full().with_lost_slices([0])
    head = MAGIC + bytes([1, 1]) + b"p" + b"\x08\x08" + bytes([0b1000])
    with pytest.raises(ContainerError, match="unknown bits"):  # slices need version 2
        EncodedImage.from_bytes(head + struct.pack(">I", zlib.crc32(head)))
    head = MAGIC + bytes([2, 1]) + b"p" + b"\x08\x08" + bytes([0b1010])
    with pytest.raises(ContainerError, match="both hci and hci slices"):
        EncodedImage.from_bytes(head + struct.pack(">I", zlib.crc32(head)))


@pytest.mark.timeout(120)
def test_fuzz_sliced_a_flip_raises_or_only_loses_slices():
    """Every truncation fails; every single bit flip raises ContainerError or parses to the
    same image with some slices lost (a slice's CRC32 failed): never to different bytes."""
    rng = np.random.default_rng(99)
    for enc in (_sliced(), _sliced((2,))):
        data = enc.to_bytes()
        for cut in range(len(data)):
            assert not _parses_or_container_error(data[:cut])
        for i in range(8 * len(data)):
            bad = bytearray(data)
            bad[i // 8] ^= 0x80 >> (i % 8)
            try:
                back = EncodedImage.from_bytes(bytes(bad))
            except ContainerError:
                continue
            assert back.lost_slices() and set(enc.lost_slices()) < set(back.lost_slices())
            assert back == enc.with_lost_slices(back.lost_slices()), f"flip of bit {i}"
        for _ in range(300):
            bad = bytearray(data)
            for j in rng.integers(0, len(data), int(rng.integers(1, 6))):
                bad[j] = int(rng.integers(0, 256))
            _parses_or_container_error(bytes(bad))


def test_typed_stream_errors():
    from codec.errors import CorruptStreamError, PresetMismatchError, StreamError

    assert issubclass(ContainerError, StreamError) and issubclass(CorruptStreamError, StreamError)
    assert issubclass(StreamError, ValueError)  # callers catching ValueError keep working
    with pytest.raises(PresetMismatchError):
        _full().check_preset("other")
    with pytest.raises(ContainerError) as e:
        EncodedImage.from_bytes(b"SDGX")
    assert not isinstance(e.value, PresetMismatchError)
