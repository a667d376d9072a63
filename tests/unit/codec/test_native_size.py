"""SDGIC at an image's own size (``"size": "native"``): the photo HCI at native size, RSRT
tokens per tile, the tiled decoder; odd and portrait sizes round-trip at their size."""

import dataclasses

import numpy as np
import pytest
import torch
from image_support import photo

from codec.container import EncodedImage
from codec.errors import PresetMismatchError
from codec.sdgic import SDGIC

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def native(tiny_native_preset):
    return SDGIC.from_pretrained(tiny_native_preset)


@pytest.mark.parametrize("h, w", [(45, 67), (71, 30), (9, 13)])      # landscape, portrait, tiny
def test_odd_sizes_round_trip_at_their_size(native, h, w):
    img = photo(h, w, seed=h)
    enc = native.encode(img)
    n = len(native.tile_grid(h, w))
    assert len(enc.rsrt_tokens) == 2 * n                      # 2 tokens per tile
    back = EncodedImage.from_bytes(enc.to_bytes())
    out = native.decode(back, seed=3)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, native.decode(back, seed=3))


def test_large_odd_image_encodes_whole_and_decodes_at_size(native):
    img = photo(383, 517, seed=1)
    enc = native.encode(img, num_tokens=0)
    assert (enc.height, enc.width) == (383, 517)
    hci = native.streams_of(enc)["hci"]
    assert hci.shape == (383, 517, 3)                          # the HCI at native size
    assert native.decode(enc, steps=1).shape == (383, 517, 3)


def test_each_tile_has_its_own_tokens_and_a_lost_one_is_local(native):
    img = photo(48, 96, seed=5)
    enc = native.encode(img)
    n = len(native.tile_grid(48, 96))
    per_tile = np.array(enc.rsrt_tokens).reshape(n, 2)
    assert len({tuple(t) for t in per_tile}) > 1, "every tile got the same tokens"
    full = native.decode(enc, seed=0).astype(int)
    lost = native.decode(enc.with_lost_tokens([0, 1]), seed=0).astype(int)   # tile 0's both
    diff = np.abs(full - lost).sum(-1)
    assert diff.any()
    far = diff[:, 64:]                                         # beyond tile 0's neighbours
    near = diff[:, :16]
    assert far.mean() < 0.5 * near.mean()


def test_token_counts_are_checked_per_tile(native):
    enc = native.encode(photo(45, 67, seed=2))
    with pytest.raises(PresetMismatchError, match="each tile"):
        native.decode(dataclasses.replace(enc, rsrt_tokens=enc.rsrt_tokens[:-1]))


def test_native_settings_are_validated(native):
    with pytest.raises(ValueError, match="tile_overlap"):
        SDGIC(**{**_fields(native), "tile_overlap": 3})
    with pytest.raises(ValueError, match="size"):
        SDGIC(**{**_fields(native), "size": "huge"})
    with pytest.raises(ValueError, match="resolution must be 16"):
        SDGIC(**{**_fields(native), "resolution": 32})


def _fields(codec):
    return {f.name: getattr(codec, f.name) for f in dataclasses.fields(codec)}


def _spy_on_tiled_sampling(codec, monkeypatch, key: str) -> list:
    """The values of the argument ``key`` of every ``sample_tiled`` call ``codec`` makes."""
    seen, real = [], codec.sampler.sample_tiled

    def spy(*a, **kw):
        seen.append(kw[key])
        return real(*a, **kw)

    monkeypatch.setattr(codec.sampler, "sample_tiled", spy)
    return seen


def test_sliced_hci_a_lost_slice_leaves_its_tiles_without_hci(native, monkeypatch):
    sliced = dataclasses.replace(native, hci_slice_rows=2)     # 2 latent rows: 64 pixel rows
    img = photo(200, 96, seed=4)
    enc = sliced.encode(img)
    assert enc.hci is None and len(enc.hci_slices) == 4 and enc.has("hci")
    back = EncodedImage.from_bytes(enc.to_bytes())
    np.testing.assert_array_equal(sliced.decode(back, seed=2), sliced.decode(enc, seed=2))
    seen = _spy_on_tiled_sampling(sliced, monkeypatch, "hci_present")
    lost = dataclasses.replace(enc, hci_slices=(None,) + enc.hci_slices[1:])
    rows = sliced.streams_of(lost)["hci_lost_rows"]
    assert rows[:64].all() and not rows[130:].any()           # the band and its margin only
    assert sliced.decode(lost, seed=2).shape == (200, 96, 3)
    grid, f = sliced.tile_grid(200, 96), sliced.space.factor
    expect = [not rows[y * f:(y + grid.tile) * f].any() for y, _ in grid.corners]
    assert seen[-1].tolist() == expect and not all(expect) and any(expect)
    sliced.decode(enc, seed=2)                                 # nothing lost: HCI everywhere
    assert seen[-1] is True
    with pytest.raises(PresetMismatchError, match="sliced HCI"):
        native.decode(enc)


def test_strength_starts_from_the_hci_and_falls_back_where_it_is_missing(native, monkeypatch):
    img = photo(48, 80, seed=6)
    enc = native.encode(img)
    hci = native.streams_of(enc)["hci"].astype(float)
    full = native.decode(enc, seed=1, steps=2).astype(float)
    weak = native.decode(enc, seed=1, steps=2, strength=0.2).astype(float)
    # started close to the end of the schedule, the image stays near its HCI
    assert np.abs(weak - hci).mean() < np.abs(full - hci).mean()
    np.testing.assert_array_equal(native.decode(enc, seed=1, steps=2, strength=1.0), full)
    real = native.sampler.sample_tiled
    seen = _spy_on_tiled_sampling(native, monkeypatch, "strength")
    no_hci = dataclasses.replace(enc, hci=None)
    np.testing.assert_array_equal(native.decode(no_hci, seed=1, steps=2, strength=0.2),
                                  native.decode(no_hci, seed=1, steps=2))
    assert seen == [1.0, 1.0]
    with pytest.raises(ValueError, match="every tile"):
        real("", 48, 80, overlap=native.tile_overlap, steps=2, strength=0.5)
    with pytest.raises(ValueError, match="strength"):
        native.decode(enc, strength=0)
