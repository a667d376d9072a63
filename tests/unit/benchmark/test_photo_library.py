"""The whole-photo lists: splits by photo, no train/test leakage, every kind in the test set."""

from __future__ import annotations

from benchmark.photo_library import EXTRA_PHOTOS, TEST_PHOTOS, VAL_PHOTOS, package_photos, split_of
from benchmark.photos import PHOTOS, photo_name, val_photos


def _names():
    return ([photo_name(r) for rels in PHOTOS.values() for r in rels] + [e[0] for e in EXTRA_PHOTOS]
            + [e["name"] for e in package_photos()])


def test_names_are_unique_and_every_listed_split_photo_exists():
    names = _names()
    assert len(names) == len(set(names))
    assert set(TEST_PHOTOS) <= set(names) and set(VAL_PHOTOS) <= set(names)


def test_no_photo_is_in_two_splits():
    assert not set(TEST_PHOTOS) & set(VAL_PHOTOS)
    train = {n for n in _names() if split_of(n) == "train"}
    assert not train & set(TEST_PHOTOS) and not train & set(VAL_PHOTOS)
    assert len(TEST_PHOTOS) >= 10


def test_tile_set_val_photos_are_test_photos():
    # the shipped 64² models never trained on these, so they stay unseen by every model
    assert val_photos() <= set(TEST_PHOTOS)


def test_test_set_covers_nature_people_or_animals_and_man_made():
    cats = {e[0]: e[3] for e in EXTRA_PHOTOS} | {e["name"]: e["category"] for e in package_photos()}
    kinds = {cats.get(n, "nature") for n in TEST_PHOTOS}
    assert "nature" in kinds and "man-made" in kinds and kinds & {"people", "animals"}


def test_package_photo_entries_are_complete():
    for e in package_photos():
        assert e["category"] in {"nature", "people", "animals", "man-made"}, e
        assert e["package"] and e["path"] and min(e["size"]) >= 256, e
