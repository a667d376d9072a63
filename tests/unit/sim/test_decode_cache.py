import numpy as np
import pytest

from benchmark.scenes import generate
from sim.decode_cache import DecodeCache


class CountingCodec:
    """Baseline codec that counts decoder calls and their batch sizes."""

    def __init__(self):
        from sim.baseline_codec import BaselineCodec

        self.inner = BaselineCodec()
        self.preset = self.inner.preset
        self.batches = []

    def encode(self, image, caption=None):
        return self.inner.encode(image, caption)

    def decode(self, encoded, seed=0):
        return self.inner.decode(encoded, seed)

    def decode_batch(self, encoded, seeds):
        self.batches.append(len(encoded))
        return [self.inner.decode(e, s) for e, s in zip(encoded, seeds)]


def test_cache_decodes_each_distinct_input_once_and_returns_the_same_images():
    codec = CountingCodec()
    enc = [codec.encode(generate(i, seed=2, size=64)[0], caption="a red star") for i in range(3)]
    cache = DecodeCache()
    first = cache.decode(codec, "fp", enc + [enc[0].without("hci")], [1, 2, 3, 1])
    assert (cache.misses, cache.hits, len(cache)) == (4, 0, 4)
    assert codec.batches == [1, 1, 1, 1]             # misses decode alone: batch invariant
    again = cache.decode(codec, "fp", [enc[2], enc[0].without("hci"), enc[0]], [3, 1, 1])
    assert (cache.misses, cache.hits) == (4, 3)
    assert all(np.array_equal(a, b) for a, b in zip(again, [first[2], first[3], first[0]]))
    cache.decode(codec, "fp", [enc[0]], [9])           # another seed is another input
    cache.decode(codec, "other-weights", [enc[0]], [1])
    cache.decode(codec, "fp", [enc[0].with_lost_tokens([0])], [1])
    assert cache.misses == 7
    with pytest.raises(ValueError, match="read-only"):
        first[0][0, 0, 0] = 1


def test_cache_stays_within_its_byte_budget():
    codec = CountingCodec()
    enc = [codec.encode(generate(i, seed=2, size=64)[0]) for i in range(4)]
    cache = DecodeCache(max_bytes=2 * 64 * 64 * 3)
    cache.decode(codec, "fp", enc, [0, 0, 0, 0])
    assert len(cache) == 2
    cache.decode(codec, "fp", enc[2:], [0, 0])
    assert cache.hits == 2
    with pytest.raises(ValueError, match="max_bytes"):
        DecodeCache(max_bytes=0)


class GuidedCodec(CountingCodec):
    """Counting codec whose decoder takes a guidance scale (it brightens the image by it)."""

    def decode_batch(self, encoded, seeds, guidance_scale=1.0):
        self.batches.append(guidance_scale)
        return [np.clip(self.inner.decode(e, s).astype(int) + int(guidance_scale), 0, 255)
                .astype(np.uint8) for e, s in zip(encoded, seeds)]


def test_guidance_reaches_the_codec_and_keys_the_cache():
    from sim.codec_api import decode_images

    codec = GuidedCodec()
    enc = [codec.encode(generate(0, seed=2, size=64)[0], caption="a red star")]
    cache = DecodeCache()
    a = cache.decode(codec, "fp", enc, [1], {"guidance_scale": 2.0})[0]
    b = cache.decode(codec, "fp", enc, [1], {"guidance_scale": 5.0})[0]
    assert cache.misses == 2 and codec.batches == [2.0, 5.0]
    assert not np.array_equal(a, b)
    cache.decode(codec, "fp", enc, [1], {"guidance_scale": 5.0})
    assert cache.hits == 1
    cache.decode(codec, "fp", enc, [1], {"guidance_scale": 5.0, "guidance_interval": (0.3, 1)})
    assert cache.misses == 3                         # another interval, another reconstruction
    # None keeps the codec's default; a codec without the keyword is decoded with its own
    decode_images(codec, enc, [1])
    assert codec.batches[-1] == 1.0
    assert decode_images(CountingCodec(), enc, [1], settings={"guidance_scale": 5.0})[0].shape \
        == (64, 64, 3)


def test_a_factory_spec_naming_the_old_module_still_loads():
    from sim.baseline_codec import BaselineCodec
    from sim.codec_api import load_codec

    with pytest.warns(DeprecationWarning, match="sim.baseline_codec"):
        codec = load_codec("experiments.sim_baseline_codec:BaselineCodec")
    assert isinstance(codec, BaselineCodec)
