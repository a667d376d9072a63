"""Sliced HCI: slices decode independently; a lost or corrupt slice changes only its region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.streams.hci import HCICodec
from codec.streams.hci_sliced import SlicedHCI
from tests.unit.codec.test_hci_gained import photo_like, tiny


pytestmark = pytest.mark.usefixtures("one_thread")


def sliced(check_bits=8):
    return SlicedHCI(HCICodec(tiny(), fit="pad", rate=2.0), slice_rows=2, check_bits=check_bits)


H, W = 83, 61  # odd, portrait: 11 latent rows at depth 3 → 6 slices, the last one row high


def test_slices_round_trip_at_the_image_size():
    s = sliced()
    img = photo_like(H, W)
    slices = s.encode(img)
    assert len(slices) == s.num_slices(H, W) == 6
    rec, mask, lost = s.decode(slices, H, W)
    assert rec.shape == (H, W, 3) and not mask.any() and lost == []


@pytest.mark.parametrize("gone", [0, 2, 5])
def test_a_lost_slice_leaves_every_other_row_bit_identical(gone):
    s = sliced()
    img = photo_like(H, W, seed=1)
    slices = s.encode(img)
    full, _, _ = s.decode(slices, H, W)
    part = list(slices)
    part[gone] = None
    rec, mask, lost = s.decode(part, H, W)
    assert lost == [gone]
    a, b = s.slice_rows_px(gone, H)
    assert mask[a:b].all()
    np.testing.assert_array_equal(rec[~mask], full[~mask])
    assert (rec[mask] != full[mask]).any()  # the region really was lost


def test_each_slice_decodes_alone():
    s = sliced()
    img = photo_like(H, W, seed=2)
    slices = s.encode(img)
    full, _, _ = s.decode(slices, H, W)
    for i in range(len(slices)):
        only = [x if j == i else None for j, x in enumerate(slices)]
        rec, mask, lost = s.decode(only, H, W)
        assert lost == [j for j in range(len(slices)) if j != i]
        np.testing.assert_array_equal(rec[~mask], full[~mask])


def test_margin_is_the_synthesis_reach():
    s = sliced()
    model = s.model
    h, w = 12, 4
    y = torch.zeros(1, model.M, h, w)
    with torch.no_grad():
        base = model.synthesize(y)
        y[..., 6, :] = 3.0
        diff = (model.synthesize(y) - base).abs().amax(dim=(0, 1, 3)) > 0
    rows = torch.nonzero(diff).flatten()
    d = model.downsampling
    assert rows.min() >= 6 * d - s.margin_px and rows.max() < 7 * d + s.margin_px


def test_corrupt_or_truncated_slice_is_decoded_as_lost():
    s = sliced(check_bits=16)
    img = photo_like(H, W, seed=3)
    slices = s.encode(img)
    full, _, _ = s.decode(slices, H, W)
    for bad in (slices[1][:-1], bytes([slices[1][0] ^ 0x10]) + slices[1][1:], b"\x00"):
        part = list(slices)
        part[1] = bad
        rec, mask, lost = s.decode(part, H, W)
        assert lost == [1]
        np.testing.assert_array_equal(rec[~mask], full[~mask])


def test_wrong_slice_count_and_bad_settings_are_one_clear_error():
    s = sliced()
    with pytest.raises(ValueError, match="has 6"):
        s.decode([None] * 5, H, W)
    with pytest.raises(ValueError, match="even number"):
        SlicedHCI(s.codec, slice_rows=3)


def test_slicing_cost_is_measured_from_real_bytes():
    cost = sliced(check_bits=0).slicing_cost(photo_like(H, W))
    assert cost["slices"] == 6 and cost["sliced_bits"] > 0 and cost["single_bits"] > 0
