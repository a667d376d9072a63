import re

import numpy as np
import pytest
from PIL import Image

from benchmark.photos import PHOTOS, build_photo_set, photo_name, tiles_of, val_photos


def test_photo_list_matches_design():
    names = [photo_name(r) for rels in PHOTOS.values() for r in rels]
    assert len(names) == len(set(names)) == 37


def test_split_is_by_photo_and_both_sides_nonempty():
    names = {photo_name(r) for rels in PHOTOS.values() for r in rels}
    val = val_photos()
    assert val and val < names and len(val) <= len(names) // 4


def test_tiles_skip_flat_regions():
    a = np.zeros((600, 800, 3), np.uint8)
    a[:, 400:] = np.random.default_rng(0).integers(0, 255, (600, 400, 3))
    tiles = list(tiles_of(Image.fromarray(a), scales=(512,)))
    assert tiles and all(t.shape == (128, 128, 3) and t.std() >= 6 for *_, t in tiles)
    # the flat left half gives nothing: every kept tile lies right of it
    assert all(x + 128 > 512 * 800 / 600 / 2 for _, _, x, _ in tiles)


@pytest.mark.slow
def test_build_from_debian_packages_no_leakage(tmp_path):
    m = build_photo_set(tmp_path / "photos", workdir=tmp_path / "work", progress=False)
    def sources(split):
        return {re.sub(r"_s\d+_\d+_\d+$", "", p.stem)
                for p in (tmp_path / "photos" / split).glob("*.png")}

    train, val = sources("train"), sources("val")
    assert train and val and not (train & val)
    assert m["tiles"]["train"] + m["tiles"]["val"] > 8000


def test_train_and_val_tiles_resize_and_split(tmp_path, tiny_photo_set):
    from benchmark.photos import resize_tiles, train_tiles, val_tiles

    root = tiny_photo_set(tmp_path / "photos")
    tr = train_tiles(root, 16)
    assert tr.shape == (5, 16, 16, 3) and tr.dtype == np.uint8
    va, names, desc = val_tiles(root, 2, 16, seed=0)
    assert va.shape == (2, 16, 16, 3) and all(n.startswith("va_") for n in names)
    assert "2 of 3 val tiles" in desc
    assert val_tiles(root, 0, 16, seed=0)[0].shape[0] == 3
    # resizing keeps a flat tile flat and leaves a tile at the target size untouched
    flat = np.full((1, 32, 32, 3), 77, np.uint8)
    assert (resize_tiles(flat, 8) == 77).all()
    assert resize_tiles(tr, 16) is tr


def test_missing_photo_set_names_the_build_command(tmp_path):
    from benchmark.photos import train_tiles, val_tiles

    with pytest.raises(FileNotFoundError, match="sdgic data photos"):
        train_tiles(tmp_path, 16)
    with pytest.raises(FileNotFoundError, match="sdgic data photos"):
        val_tiles(tmp_path, 4, 16, seed=0)


def test_photo_batches_are_seeded_crops_of_train_tiles_without_captions(tmp_path, tiny_photo_set):
    import torch

    from benchmark.photos import train_tiles
    from training.dpcd_data import PhotoBatches

    root = tiny_photo_set(tmp_path / "photos")
    tiles = torch.from_numpy(train_tiles(root, None)).permute(0, 3, 1, 2).float() / 255
    assert tiles.shape == (5, 3, 32, 32)                      # None: as stored
    pb = PhotoBatches(root, batch_size=4, size=16, seed=1)
    x, captions = pb.batch(7)
    assert x.shape == (4, 3, 16, 16) and captions == [None] * 4
    assert 0 <= x.min() and x.max() <= 1
    assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4)      # 8-bit, as sent
    assert torch.equal(PhotoBatches(root, 4, 16, seed=1).batch(7)[0], x)   # (seed, step)
    assert not torch.equal(pb.batch(8)[0], x)
    assert not torch.equal(PhotoBatches(root, 4, 16, seed=2).batch(7)[0], x)
    assert [torch.equal(a, pb.batch(s)[0]) for s, (a, _) in zip((3, 4), pb.batches(3, 5))] \
        == [True, True]
    # at the tile size every crop is a whole tile, flipped or not
    full = PhotoBatches(root, 16, 32, seed=0).batch(0)[0]
    for img in full:
        assert any(torch.allclose(img, t, atol=1e-6) or torch.allclose(img, t.flip(-1), atol=1e-6)
                   for t in tiles)
    assert any(not any(torch.allclose(img, t, atol=1e-6) for t in tiles) for img in full)
    with pytest.raises(ValueError, match="32²"):
        PhotoBatches(root, 2, 64, seed=0)
