"""Classical codecs at a bit budget and the HCI alone: budgets hold, the downscale path
reaches small budgets, lost or damaged files decode as grey or fail loudly."""

import numpy as np
import pytest

from codec.classical import CLASSICAL_FORMATS, GREY, ClassicalCodec, code_image
from codec.errors import CorruptStreamError, PresetMismatchError
from image_support import photo


def _photo(h=53, w=71, seed=0):
    return photo(h, w, seed)


@pytest.mark.parametrize("name", list(CLASSICAL_FORMATS))
@pytest.mark.parametrize("budget", [0, 300, 900, 2000, 6000, 20000])
def test_a_classical_image_never_exceeds_its_bit_budget(name, budget):
    codec = ClassicalCodec(name)
    enc = codec.encode(_photo(), budget_bits=budget)
    assert enc.total_bits() <= budget
    assert enc.caption is None and enc.rsrt_tokens is None
    rec = codec.decode(enc)
    assert rec.shape == (53, 71, 3) and rec.dtype == np.uint8


@pytest.mark.parametrize("name", list(CLASSICAL_FORMATS))
def test_the_downscale_path_reaches_budgets_below_the_lowest_quality(name):
    img = _photo(96, 128)
    lowest = CLASSICAL_FORMATS[name][1]
    native_min = len(code_image(img, name, lowest)[0]) * 8
    codec = ClassicalCodec(name)
    enc = codec.encode(img, budget_bits=native_min - 8)     # below the native size's floor
    assert enc.has("hci"), "a downscaled file should fit"
    assert 0 < enc.total_bits() <= native_min - 8
    assert 0 < codec.encoding_info(enc)["classical_scale"] < 1
    # and it is still a picture of the source, not grey
    rec = codec.decode(enc).astype(float)
    assert np.mean((rec - img) ** 2) < np.mean((GREY - img.astype(float)) ** 2)
    # native-only coding cannot reach that budget
    assert not ClassicalCodec(name, downscale=False).encode(img, budget_bits=native_min - 8
                                                            ).has("hci")


def test_more_bits_give_a_better_picture_and_native_size_when_affordable():
    img = _photo(96, 128)
    codec = ClassicalCodec("webp")
    errs = []
    for b in (600, 2000, 8000, 40000):
        rec = codec.decode(codec.encode(img, budget_bits=b)).astype(float)
        errs.append(np.mean((rec - img) ** 2))
    assert errs == sorted(errs, reverse=True)
    assert codec.encoding_info(codec.encode(img, budget_bits=40000))["classical_scale"] == 1.0


def test_nothing_fits_means_nothing_sent_and_grey_shown():
    codec = ClassicalCodec("jpeg")
    enc = codec.encode(_photo(), budget_bits=100)   # no JPEG file is 12 bytes
    assert not enc.has("hci") and enc.total_bits() == 0
    assert codec.encoding_info(enc)["classical_scale"] == 0.0
    assert (codec.decode(enc) == GREY).all()


def test_damaged_files_and_wrong_images_fail_loudly():
    codec = ClassicalCodec("webp")
    enc = codec.encode(_photo(), budget_bits=4000)
    import dataclasses

    bad = dataclasses.replace(enc, hci=enc.hci[: len(enc.hci) // 3])
    with pytest.raises(CorruptStreamError):
        codec.decode(bad)
    with pytest.raises(CorruptStreamError):
        codec.streams_of(dataclasses.replace(enc, hci=b"\x00garbage"))
    with pytest.raises(PresetMismatchError):
        ClassicalCodec("avif").decode(enc)
    with pytest.raises(ValueError, match="caption"):
        codec.encode(_photo(), caption="a cat", budget_bits=4000)
    with pytest.raises(ValueError, match="budget_bits"):
        codec.encode(_photo(), budget_bits=-5)
    with pytest.raises(ValueError, match="allowed: jpeg, webp, avif"):
        ClassicalCodec("bpg")


def test_odd_modes_and_sizes_code_at_their_size():
    from PIL import Image

    im = Image.fromarray(_photo(37, 23)).convert("RGBA")
    codec = ClassicalCodec("avif")
    enc = codec.encode(im, budget_bits=5000)
    assert (enc.height, enc.width) == (37, 23)
    assert codec.decode(enc).shape == (37, 23, 3)


def test_hci_alone_sends_sdgic_bytes_at_the_best_rate_within_budget():
    from codec.hci_alone import HCIAlone
    from codec.sdgic import preset_folder, preset_hci

    codec = HCIAlone("scenes-64")
    img = _photo(64, 64)
    hci = preset_hci(preset_folder("scenes-64"))
    sizes = {r: 8 * len(c.encode(img)) for r, c in hci.items()}
    for budget in sorted(set(sizes.values())) + [max(sizes.values()) + 50]:
        enc = codec.encode(img, budget_bits=budget)
        rate = codec.encoding_info(enc)["hci_rate"]
        assert enc.total_bits() <= budget
        assert enc.hci == hci[rate].encode(img)
        assert sizes[rate] == max(v for v in sizes.values() if v <= budget)
    enc = codec.encode(img, budget_bits=min(sizes.values()) - 1)
    assert not enc.has("hci") and (codec.decode(enc) == GREY).all()
    assert codec.decode(codec.encode(img)).shape == (64, 64, 3)


def test_hci_alone_from_a_folder_of_rate_points_codes_photos_at_their_size():
    from pathlib import Path

    from codec.hci_alone import HCIAlone

    folder = Path(__file__).resolve().parents[3] / "codec" / "weights" / "hci-photos"
    codec = HCIAlone(str(folder))
    assert list(codec.hci) == ["low", "mid", "high", "top"]
    img = _photo(97, 131)
    enc = codec.encode(img, budget_bits=int(0.1 * 97 * 131))
    assert 0 < enc.total_bits() <= int(0.1 * 97 * 131)
    assert codec.decode(enc).shape == (97, 131, 3)
