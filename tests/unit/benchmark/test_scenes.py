import re

import numpy as np
import pytest

from benchmark.scenes import (BACKGROUNDS, COLOUR_NAMES, POSITIONS, SHAPES, SIZES, TEXTURES, Scene,
                              generate, render, sample_scene)


def test_same_seed_same_scene_and_pixels():
    a_img, a = generate(17, seed=3)
    b_img, b = generate(17, seed=3)
    assert a == b
    np.testing.assert_array_equal(a_img, b_img)


def test_other_seed_or_index_differs():
    img, sc = generate(17, seed=3)
    img2, sc2 = generate(17, seed=4)
    img3, _ = generate(18, seed=3)
    assert not np.array_equal(img, img2)
    assert not np.array_equal(img, img3)


@pytest.mark.parametrize("size", [16, 64, 128, 200])
def test_any_size_uint8_rgb(size):
    img, _ = generate(0, seed=0, size=size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8


def test_too_small_size_is_refused():
    with pytest.raises(ValueError, match="size"):
        render(sample_scene(np.random.default_rng(0)), size=8)


_PHRASE = re.compile(
    r"a (small|large) (\w+)(?: (striped|dotted|checkered))? (\w+) "
    r"(at the top left|at the top right|at the bottom left|at the bottom right|at the top|"
    r"at the bottom|on the left|on the right|in the centre)")
_POS = {"at the top left": 0, "at the top": 1, "at the top right": 2, "on the left": 3,
        "in the centre": 4, "on the right": 5, "at the bottom left": 6, "at the bottom": 7,
        "at the bottom right": 8}


def test_captions_state_every_attribute():
    for i in range(300):
        _, sc = generate(i, seed=11)
        found = _PHRASE.findall(sc.caption)
        assert len(found) == len(sc.objects), sc.caption
        for (size, colour, texture, shape, pos), o in zip(found, sc.objects):
            assert (size, colour, texture or "solid", shape, _POS[pos]) == \
                (o.size, o.colour, o.texture, o.shape, o.cell), sc.caption
        assert sc.caption.endswith(f"{sc.background_word} background")


_LAYOUT = re.compile(r"an? (\w+) object (at the top left|at the top right|at the bottom left|"
                     r"at the bottom right|at the top|at the bottom|on the left|on the right|"
                     r"in the centre)")


def test_layout_captions_state_colour_and_position_only():
    for i in range(300):
        _, sc = generate(i, seed=11)
        text = sc.describe("layout")
        found = _LAYOUT.findall(text)
        assert [(c, _POS[p]) for c, p in found] == [(o.colour, o.cell) for o in sc.objects], text
        assert text.endswith(f"{sc.background_word} background")
        words = set(re.findall(r"\w+", text))
        assert not words & set(SHAPES + SIZES + TEXTURES), text
    assert sc.describe("full") == sc.caption
    with pytest.raises(ValueError, match="caption detail 'terse'"):
        sc.describe("terse")


def test_concise_captions_never_name_position_size_or_texture():
    pattern = re.compile(r"an? (\w+) (\w+)")
    for i in range(300):
        _, sc = generate(i, seed=12)
        text = sc.describe("concise")
        assert text.endswith(f" on {'an' if sc.background_word[0] in 'aeiou' else 'a'} "
                             f"{sc.background_word} background"), text
        body = text[:text.rindex(" on ")]
        assert pattern.findall(body) == [(o.colour, o.shape) for o in sc.objects], text
        words = set(re.findall(r"\w+", body))
        said = words & set(SIZES + TEXTURES + ("top", "bottom", "left", "right", "centre"))
        assert not said, (text, said)


def test_attribute_coverage_and_distinct_cells():
    seen = {k: set() for k in ("shape", "colour", "size", "texture", "cell", "bg", "n")}
    for i in range(600):
        _, sc = generate(i, seed=5, size=32)
        cells = [o.cell for o in sc.objects]
        assert len(set(cells)) == len(cells)
        seen["n"].add(len(sc.objects))
        seen["bg"].add(sc.background)
        for o in sc.objects:
            for k in ("shape", "colour", "size", "texture", "cell"):
                seen[k].add(getattr(o, k))
    assert seen["shape"] == set(SHAPES) and len(SHAPES) >= 6
    assert seen["colour"] == set(COLOUR_NAMES) and len(COLOUR_NAMES) >= 8
    assert seen["size"] == set(SIZES) and seen["texture"] == set(TEXTURES)
    assert seen["cell"] == set(range(len(POSITIONS))) and seen["bg"] == set(BACKGROUNDS)
    assert seen["n"] == {1, 2, 3}


def test_scene_dict_round_trip():
    _, sc = generate(4, seed=2)
    assert Scene.from_dict(sc.to_dict()) == sc


def test_objects_are_drawn_where_they_are_said_to_be():
    # a plain background with one large object: its cell differs most from the background
    for i in range(40):
        img, sc = generate(i, seed=9, size=96)
        if sc.background != "plain" or len(sc.objects) != 1:
            continue
        a = img.astype(float)
        bg = np.median(a.reshape(-1, 3), axis=0)
        diff = np.abs(a - bg).sum(-1).reshape(3, 32, 3, 32).mean(axis=(1, 3)).ravel()
        assert int(diff.argmax()) == sc.objects[0].cell
