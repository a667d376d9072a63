"""Tiled DPCD decoding (MultiDiffusion): the tile grid, the blend that removes seams, and the
tiled sampler on a tiny random model at odd sizes."""

import pytest
import torch

from codec.dpcd.tiles import TileGrid

torch.set_num_threads(1)


@pytest.mark.parametrize("h, w, tile, overlap", [(48, 80, 16, 4), (37, 53, 16, 8), (16, 16, 16, 0),
                                                  (10, 70, 16, 6), (200, 130, 32, 8)])
def test_tiles_cover_the_canvas_and_overlap_enough(h, w, tile, overlap):
    g = TileGrid(h, w, tile, overlap)
    ph, pw = g.padded_size
    assert (ph, pw) == (max(h, tile), max(w, tile))
    cover = torch.zeros(ph, pw)
    for y, x in g.corners:
        assert 0 <= y <= ph - tile and 0 <= x <= pw - tile
        cover[y:y + tile, x:x + tile] += 1
    assert cover.min() >= 1
    assert g.coverage().min() > 0
    ys = sorted({y for y, _ in g.corners})
    xs = sorted({x for _, x in g.corners})
    for starts in (ys, xs):                       # neighbours overlap by >= overlap
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    assert ys[-1] == ph - tile and xs[-1] == pw - tile     # the last tile is flush


def test_grid_refuses_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        TileGrid(64, 64, 16, 16)
    with pytest.raises(ValueError, match="empty"):
        TileGrid(0, 64, 16, 4)
    with pytest.raises(TypeError, match="tile"):
        TileGrid(64, 64, 16.0, 4)


def _max_jump(canvas):
    return float(max((canvas[..., 1:, :] - canvas[..., :-1, :]).abs().max(),
                     (canvas[..., :, 1:] - canvas[..., :, :-1]).abs().max()))


def test_blend_joins_disagreeing_tiles_without_seams():
    # The seam check: tiles predict 0 and 1 in a checkerboard, as far apart as tiles can
    # disagree. Unblended (overlap 0) the canvas jumps by the full difference at tile edges;
    # blended, no step between neighbouring pixels exceeds 2/(overlap+1) of it (each of the
    # at most two tiles meeting along an axis changes its weight by 1/(overlap+1) per pixel).
    for overlap in (0, 4, 8):
        g = TileGrid(64, 96, 16, overlap)
        ys = sorted({y for y, _ in g.corners})
        xs = sorted({x for _, x in g.corners})
        parity = torch.tensor([float((ys.index(y) + xs.index(x)) % 2) for y, x in g.corners])
        canvas = g.blend(parity.view(-1, 1, 1, 1).expand(-1, 3, 16, 16).clone())
        if overlap == 0:
            assert _max_jump(canvas) == 1.0                # a hard seam: the check can fail
        else:
            assert _max_jump(canvas) <= 2 / (overlap + 1) + 1e-6, overlap
    g = TileGrid(60, 90, 16, 8)
    same = torch.full((len(g), 3, 16, 16), 0.3)
    torch.testing.assert_close(g.blend(same), torch.full((1, 3, 60, 90), 0.3))   # a partition


def test_crop_then_blend_is_the_identity():
    g = TileGrid(37, 53, 16, 6)
    x = torch.randn(1, 4, 37, 53)
    torch.testing.assert_close(g.blend(g.crop(x)), x)


@pytest.fixture(scope="module")
def tiny_sampler():
    from dpcd_support import tiny_dpcd_modules

    from codec.dpcd.decoder import DPCDSampler
    from codec.dpcd.rsrt import RSRTEmbedding
    from codec.text_encoder import TextEncoder

    unet, cn = tiny_dpcd_modules()
    return DPCDSampler(unet, TextEncoder(), cn, RSRTEmbedding(num_tokens=2, dim=384))


def _hci(h, w):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, 0.5 * (xx + yy)])[None]


def test_tiled_sampler_draws_any_size(tiny_sampler):
    for h, w in ((48, 80), (22, 36), (80, 14)):             # landscape, below a tile, portrait
        kw = dict(overlap=4, steps=3, hci=_hci(h, w), guidance_scale=2.0)
        a = tiny_sampler.sample_tiled("a boat", h, w, generator=torch.Generator().manual_seed(1),
                                      **kw)
        b = tiny_sampler.sample_tiled("a boat", h, w, generator=torch.Generator().manual_seed(1),
                                      **kw)
        assert a.shape == (1, 3, h, w) and 0 <= a.min() and a.max() <= 1
        torch.testing.assert_close(a, b)


def test_one_tile_is_the_plain_sampler(tiny_sampler):
    size = tiny_sampler.unet.config.sample_size * tiny_sampler.space.factor
    noise = torch.randn(1, tiny_sampler.unet.config.in_channels, size // 2, size // 2,
                        generator=torch.Generator().manual_seed(3))
    hci = _hci(size, size)
    codes = torch.tensor([[5, 9]])
    plain = tiny_sampler.sample(["a cat"], steps=4, hci=hci, noise=noise, rsrt_codes=codes,
                                guidance_scale=3.0)
    tiled = tiny_sampler.sample_tiled("a cat", size, size, overlap=4, steps=4, hci=hci,
                                      noise=noise, rsrt_codes=codes, guidance_scale=3.0)
    torch.testing.assert_close(tiled, plain, atol=1e-5, rtol=0)


def test_per_tile_tokens_and_bad_shapes(tiny_sampler):
    h, w = 32, 48
    g = TileGrid(h // 2, w // 2, tiny_sampler.unet.config.sample_size, 2)
    codes = torch.arange(2 * len(g)).reshape(len(g), 2) % 1000
    out = tiny_sampler.sample_tiled(None, h, w, overlap=4, steps=2, rsrt_codes=codes,
                                    generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, h, w)
    with pytest.raises(ValueError, match="one per tile"):
        tiny_sampler.sample_tiled(None, h, w, overlap=4, steps=2, rsrt_codes=codes[:2])
    with pytest.raises(ValueError, match="multiples"):
        tiny_sampler.sample_tiled(None, 33, 48, overlap=4, steps=2)
    with pytest.raises(ValueError, match="hci must be"):
        tiny_sampler.sample_tiled(None, h, w, overlap=4, steps=2, hci=_hci(h, w + 2))
