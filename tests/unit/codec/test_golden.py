"""Golden vectors: the shipped HCI points, the caption coder and the container give these exact
bytes for fixed inputs (as CompressAI keeps expected bitstream hashes). A change of format,
entropy coding or numerics fails here; if intended, bump the format and update the hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from benchmark.scenes import generate
from codec.container import EncodedImage
from codec.streams.caption_coder import CaptionCoder
from codec.streams.hci import HCICodec

WEIGHTS = Path(__file__).resolve().parents[3] / "codec" / "weights" / "hci-64"
HCI = {"low": (4, "d8fc8c6ab0fe7190"), "mid": (7, "3916b66488f8ec10"),
       "high": (10, "ac0857d1fda8896d"), "top": (12, "ea2f436a1c61d0e3")}


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


@pytest.fixture(scope="module")
def scene():
    return generate(3, seed=9009, size=64)


@pytest.mark.parametrize("rate", sorted(HCI))
def test_hci_bytes(scene, rate):
    data = HCICodec.from_pretrained(WEIGHTS / rate).encode(scene[0])
    assert (len(data), _sha(data)) == HCI[rate]


def test_caption_and_container_bytes(scene):
    caption = scene[1].describe("full")
    assert caption.startswith("a small red striped triangle at the top left")
    cap = CaptionCoder.load().encode(caption)
    assert (len(cap), _sha(cap)) == (5, "d83fe6b9515d27f5")
    hci = HCICodec.from_pretrained(WEIGHTS / "mid").encode(scene[0])
    enc = EncodedImage("scenes-64:mid", 64, 64, caption=cap, hci=hci,
                       rsrt_tokens=(1, None, 255, 7), rsrt_bits=8)
    assert _sha(enc.to_bytes()) == "8cabe6aa00cb9eec"
