import itertools

import numpy as np
import pytest

from codec.container import ContainerError, EncodedImage
from codec.data.scenes import generate
from codec.sdgic import SDGIC


@pytest.fixture(scope="module")
def codec(tiny_preset):
    return SDGIC.from_pretrained(tiny_preset)


@pytest.fixture(scope="module")
def scene():
    img, sc = generate(3, seed=11, size=64)
    return img, sc.caption


def test_encode_streams_and_container_round_trip(codec, scene):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    assert enc.preset == "tiny-16:mid" and (enc.height, enc.width) == (64, 64)
    assert enc.has("caption") and enc.has("hci") and len(enc.rsrt_tokens) == 4
    assert enc.rsrt_bits == 10 and all(0 <= t < 1000 for t in enc.rsrt_tokens)
    assert codec.streams_of(enc)["caption"] == caption
    assert EncodedImage.from_bytes(enc.to_bytes()) == enc
    # the encoder is deterministic: same bytes twice
    assert codec.encode(img, caption=caption) == enc
    fewer = codec.encode(img, caption=caption, num_tokens=2, rate="low")
    assert fewer.rsrt_tokens == enc.rsrt_tokens[:2] and fewer.preset == "tiny-16:low"
    assert codec.encode(img, num_tokens=0).rsrt_tokens is None


def test_every_stream_subset_and_lost_tokens_decode(codec, scene):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    outs = {}
    for r in range(4):
        for drop in itertools.combinations(("caption", "hci", "rsrt"), r):
            rec = codec.decode(enc.without(*drop), steps=2)
            assert rec.shape == (64, 64, 3) and rec.dtype == np.uint8
            outs[drop] = rec
    rec = codec.decode(enc.with_lost_tokens([0, 2]), steps=2)
    assert rec.shape == (64, 64, 3)
    # each stream changes the result (the paths are wired)
    full = outs[()]
    for s in ("caption", "hci", "rsrt"):
        assert np.abs(full.astype(int) - outs[(s,)].astype(int)).max() > 0, s


def test_seeded_and_independent_of_batch(codec, scene):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    other = codec.encode(generate(5, seed=11, size=64)[0], caption="a large blue star")
    a = codec.decode(enc, seed=7, steps=3)
    b = codec.decode_batch([other.without("hci"), enc], seeds=[1, 7], steps=3)[1]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert (codec.decode(enc, seed=7, steps=3) == a).all()
    assert not (codec.decode(enc, seed=8, steps=3) == a).all()


def test_any_size_and_mode(codec):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (30, 47), dtype=np.uint8)
    enc = codec.encode(grey)
    assert (enc.height, enc.width) == (30, 47) and not enc.has("caption")
    assert codec.decode(enc, steps=1).shape == (30, 47, 3)
    with pytest.raises(ValueError, match="2×2"):
        codec.encode(np.zeros((1, 1, 3), np.uint8))


def test_reload_gives_the_same_decoder(tiny_preset, codec, scene):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    again = SDGIC.from_pretrained(tiny_preset)
    assert (again.decode(enc, steps=2) == codec.decode(enc, steps=2)).all()


def test_wrong_preset_bad_rate_and_missing_folder(codec, scene, tmp_path):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    import dataclasses

    with pytest.raises(ContainerError, match="preset 'scenes-64'.*decoder is preset 'tiny-16'"):
        codec.decode(dataclasses.replace(enc, preset="scenes-64:mid"))
    with pytest.raises(ContainerError, match="rate point 'ultra'"):
        codec.decode(dataclasses.replace(enc, preset="tiny-16:ultra"))
    with pytest.raises(ContainerError, match="tokens"):
        codec.decode(dataclasses.replace(enc, rsrt_tokens=(1,) * 9))
    with pytest.raises(ValueError, match="rate='huge'"):
        codec.encode(img, rate="huge")
    with pytest.raises(FileNotFoundError, match="preset 'nope' not found"):
        SDGIC.from_pretrained("nope")
    (tmp_path / "preset.json").write_text('{"preset": "x", "resolution": 16, "hci": {}}')
    with pytest.raises(FileNotFoundError, match="no unet/"):
        SDGIC.from_pretrained(tmp_path)
