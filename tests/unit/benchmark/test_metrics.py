import math

import numpy as np
import pytest
import torch

from benchmark.metrics import (PSNR_CAP, bpp, fid_from_features, inception_features, ms_ssim, psnr,
                               psnr_of_mse)
from benchmark.scene_dataset import render_scenes


@pytest.fixture(scope="module")
def scenes():
    return render_scenes(6, seed=21, size=128)[0]


def test_bpp_from_bytes():
    assert bpp(100, 128, 128) == pytest.approx(800 / 16384)
    with pytest.raises(ValueError):
        bpp(1, 0, 10)


def test_identical_images_psnr_cap_and_ms_ssim_one(scenes):
    assert np.all(psnr(scenes, scenes) == PSNR_CAP)
    np.testing.assert_allclose(ms_ssim(scenes, scenes), 1.0, atol=1e-5)


def test_known_perturbation_gives_known_psnr():
    x = torch.full((2, 3, 64, 64), 0.5)
    y = x + 0.1                      # MSE 0.01 → 20 dB
    np.testing.assert_allclose(psnr(x, y), 20.0, atol=1e-4)
    assert psnr_of_mse(0.01) == pytest.approx(20.0)
    g = torch.Generator().manual_seed(0)
    n = torch.randn(x.shape, generator=g) * 0.05
    expected = 10 * math.log10(1 / (n ** 2).mean().item())
    np.testing.assert_allclose(psnr(x, x + n).mean(), expected, atol=0.3)


@pytest.mark.parametrize("size", [16, 64, 96])
def test_ms_ssim_small_images(size):
    x = torch.from_numpy(render_scenes(2, seed=23, size=size)[0]).permute(0, 3, 1, 2) / 255.0
    np.testing.assert_allclose(ms_ssim(x, x), 1.0, atol=1e-4)  # float32 rounding on flat areas
    v = ms_ssim(x, (x + 0.2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1))
    assert np.all(v < 0.99) and np.all(v > 0.1)


def test_ms_ssim_falls_with_noise(scenes):
    noisy = np.clip(scenes + np.random.default_rng(0).normal(0, 25, scenes.shape), 0, 255).astype(np.uint8)
    v = ms_ssim(scenes, noisy)
    assert np.all(v < 0.95) and np.all(v > 0.2)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 9, 3), np.uint8))


def test_inception_similarity_and_fid(scenes):
    feats = inception_features()
    f = feats(scenes)
    assert f.shape == (6, 2048)
    np.testing.assert_allclose(feats.similarity(scenes, scenes), 1.0, atol=1e-5)
    assert abs(fid_from_features(f, f)) < 1e-3
    other = render_scenes(6, seed=22, size=128)[0]
    assert fid_from_features(f, feats(other)) > 1.0
    blurred = (scenes.astype(float) * 0 + scenes.mean()).astype(np.uint8)
    assert np.all(feats.similarity(scenes, blurred) < 0.9)


def test_caption_similarity():
    from codec.text_encoder import default_text_encoder

    te = default_text_encoder()
    s = te.similarity(["a large red star at the top left on a plain background"] * 2,
                      ["a large red star at the top left on a plain background",
                       "a small blue ring at the bottom on a grassy background"])
    assert s[0].item() == pytest.approx(1.0, abs=1e-5)
    assert s[1].item() < 0.9
    h, m = te.tokens(["a red star", ""])
    assert h.shape[0] == 2 and h.shape[2] == te.dim == 384 and m.dtype == torch.bool


def test_optional_iqa_says_why_when_absent():
    from benchmark.metrics import OptionalIQA

    iqa = OptionalIQA()
    assert iqa.available or iqa.reason


def test_fid_fast_path_equals_sqrtm():
    import scipy.linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 40))
    b = rng.normal(size=(25, 40)) * 1.5 + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(
        scipy.linalg.sqrtm(s1 @ s2)))
    assert fid_from_features(a, b) == pytest.approx(ref, rel=1e-6)
    big = rng.normal(size=(60, 40))                       # N > D: the sqrtm path
    assert fid_from_features(big, big) == pytest.approx(0.0, abs=1e-6)
