"""HCI stream: tiny random-initialized models (fast) and the shipped rate points (if present)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.errors import CorruptStreamError
from codec.streams.hci import (HCICodec, HCIFactorized, HCIHyperprior, RansDecoder, RansEncoder,
                               SpreadTable, build_model)

WEIGHTS = Path(__file__).resolve().parents[3] / "codec" / "weights" / "hci-64"


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(arch="factorized", update=True):
    torch.manual_seed(0)
    model = build_model({"arch": arch, "N": 8, "M": 4, "depth": 4})
    if update:
        model.update(force=True)
    return model.eval()


def scene_like(h=64, w=64, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8)
    img[h // 4: h // 2, w // 3: 2 * w // 3] = rng.integers(0, 255, 3)
    return img


@pytest.mark.parametrize("arch", ["factorized", "hyperprior"])
def test_forward_shapes_and_likelihoods(arch):
    model = tiny(arch)
    model.train()
    out = model(torch.rand(2, 3, 64, 64))
    assert out["x_hat"].shape == (2, 3, 64, 64)
    assert out["likelihoods"]["y"].shape == (2, 4, 4, 4)
    if arch == "hyperprior":
        assert out["likelihoods"]["z"].shape == (2, 8, 2, 2)
    for lik in out["likelihoods"].values():
        assert torch.all(lik > 0) and torch.all(lik <= 1)


@pytest.mark.parametrize("arch", ["factorized", "hyperprior"])
def test_compress_decompress_matches_quantized_forward(arch):
    model = tiny(arch)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)["x_hat"].clamp(0, 1)  # eval mode: rounded latents
        enc = model.compress(x)
        dec = model.decompress(enc["strings"], enc["shape"])
    assert enc["shape"] == (4, 4) and len(enc["strings"][0]) == 2
    assert all(isinstance(s, bytes) for s in enc["strings"][0])
    torch.testing.assert_close(dec["x_hat"], ref, rtol=0, atol=1e-6)


def test_real_bits_close_to_likelihood_bits():
    model = tiny()
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        ideal = -torch.log2(model(x)["likelihoods"]["y"]).flatten(1).sum(1)
        strings = model.compress(x)["strings"][0]
    real = torch.tensor([8.0 * len(s) for s in strings])
    assert torch.all(real <= ideal + 10) and torch.all(real >= ideal - 8)


def test_missing_cdfs_say_run_update():
    model = tiny(update=False)
    with pytest.raises(ValueError, match="update\\(\\)"):
        model.compress(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="update\\(\\)"):
        HCICodec(model).encode(scene_like())


def test_rans_roundtrip_and_spread_table():
    rng = np.random.default_rng(1)
    tables = [SpreadTable.from_quantized_cdf(np.array([0, 100, 65000, 65536]), 4),
              SpreadTable(np.array([1, 4094, 1]))]
    seq = [(int(rng.integers(0, 3)), int(rng.integers(0, 2))) for _ in range(300)]
    enc = RansEncoder()
    for s, t in seq:
        enc.symbol(tables[t], s)
    enc.bits(0b1011, 4)
    data = enc.to_bytes()
    dec = RansDecoder(data)
    assert [dec.symbol(tables[t]) for _, t in seq] == [s for s, _ in seq]
    assert dec.bits(4) == 0b1011
    dec.finish()


@pytest.mark.parametrize("arch", ["factorized", "hyperprior"])
def test_decode_is_bit_exact_across_calls(arch):
    codec = HCICodec(tiny(arch))
    img = scene_like()
    data = codec.encode(img)
    assert codec.encode(img) == data
    a, b = codec.decode(data), codec.decode(data)
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("fit", ["resize", "pad"])
@pytest.mark.parametrize("shape", [(2, 2), (5, 3, 3), (37, 70, 4), (64, 64, 3), (384, 512, 3)])
def test_any_size_and_mode_roundtrip(fit, shape):
    codec = HCICodec(tiny(), fit=fit)
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = codec.decode(codec.encode(img))
    assert out.shape == (shape[0], shape[1], 3) and out.dtype == np.uint8


def test_input_types():
    from PIL import Image

    codec = HCICodec(tiny())
    img = scene_like(40, 50)
    ref = codec.encode(img)
    assert codec.encode(Image.fromarray(img)) == ref
    assert codec.encode(img.astype(np.float32) / 255.0) == ref
    assert codec.encode(torch.from_numpy(img).permute(2, 0, 1).float() / 255.0) == ref
    assert codec.decode(codec.encode(Image.fromarray(img).convert("L"))).shape == (40, 50, 3)
    for bad in (np.zeros((1, 1, 3), np.uint8), np.zeros((8, 8, 2), np.uint8),
                np.full((8, 8), np.nan)):
        with pytest.raises(ValueError):
            codec.encode(bad)


def test_working_size_default_costs_one_bit_less_header():
    codec = HCICodec(tiny())
    img = scene_like()
    small = len(codec.encode(img))
    other = len(codec.encode(np.ascontiguousarray(np.repeat(img, 2, axis=0))))  # 128×64
    assert other > small  # explicit size stored


def test_corrupt_and_truncated_streams_raise_value_error():
    codec = HCICodec(tiny(), check_bits=8)
    img = scene_like()
    data = codec.encode(img)
    bad = [b"", data[:-1], data[1:], data + b"\x07", b"\x00" + data]
    bad += [bytes([data[0] ^ (1 << k)]) + data[1:] for k in range(8)]
    for b in bad:
        with pytest.raises(CorruptStreamError):
            codec.decode(b)
    with pytest.raises(ValueError, match="must be bytes"):  # a caller's bug, not corruption
        codec.decode("text")
    # Fuzz: random bytes never raise anything but CorruptStreamError, and never hang.
    rng = np.random.default_rng(0)
    for n in range(300):
        blob = rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
        try:
            out = codec.decode(blob)
        except CorruptStreamError:
            continue
        assert out.dtype == np.uint8 and out.ndim == 3


def test_without_check_bits_a_longer_stream_is_rejected():
    codec = HCICodec(tiny(), check_bits=0)
    data = codec.encode(scene_like())
    with pytest.raises(ValueError):
        codec.decode(data + b"\xff\xff")
    with pytest.raises(ValueError):
        codec.decode(b"\x00")


@pytest.mark.parametrize("arch", ["factorized", "hyperprior"])
def test_save_load_identity(tmp_path, arch):
    codec = HCICodec(tiny(arch), check_bits=4)
    codec.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model"]["arch"] == arch
    assert not any(p.suffix in (".pt", ".pkl", ".bin") for p in tmp_path.iterdir())
    again = HCICodec.from_pretrained(tmp_path)
    img = scene_like(48, 80)
    data = codec.encode(img)
    assert again.encode(img) == data
    assert np.array_equal(again.decode(data), codec.decode(data))
    assert again.check_bits == 4


def test_from_pretrained_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="training.hci"):
        HCICodec.from_pretrained(tmp_path / "nope")


def test_invalid_arguments():
    with pytest.raises(ValueError, match="fit"):
        HCICodec(tiny(), fit="crop")
    with pytest.raises(ValueError, match="working_size"):
        HCICodec(tiny(), working_size=40)
    with pytest.raises(ValueError, match="arch"):
        build_model({"arch": "nope"})
    with pytest.raises(ValueError, match="multiples"):
        tiny().compress(torch.rand(1, 3, 60, 64))
    assert isinstance(tiny(), HCIFactorized) and isinstance(tiny("hyperprior"), HCIHyperprior)


def _shipped():
    if not WEIGHTS.is_dir():
        return []
    return sorted(p for p in WEIGHTS.iterdir() if (p / "model_card.json").is_file())


def test_shipped_rate_points_increase_in_bits_and_psnr():
    folders = _shipped()
    if len(folders) < 3:
        pytest.skip(f"shipped HCI weights absent ({WEIGHTS} has {len(folders)} rate points); "
                    "train them with `python -m training.hci`")
    cards = [json.loads((f / "model_card.json").read_text()) for f in folders]
    cards.sort(key=lambda c: c["eval"]["bits_per_image"])
    bits = [c["eval"]["bits_per_image"] for c in cards]
    psnrs = [c["eval"]["psnr_db"] for c in cards]
    assert all(a < b for a, b in zip(bits, bits[1:])), bits
    assert all(a < b for a, b in zip(psnrs, psnrs[1:])), psnrs
    assert 20 <= bits[0] and bits[-1] <= 204, bits
    for f in folders:  # small models, safetensors only; they load and code a scene
        assert (f / "model.safetensors").stat().st_size < 2 * 1024 * 1024
        codec = HCICodec.from_pretrained(f)
        from benchmark.scenes import generate

        img, _ = generate(0, seed=6007, size=64)
        data = codec.encode(img)
        assert np.array_equal(codec.decode(data), codec.decode(data))


def test_bfloat16_autocast_around_the_codec_changes_nothing():
    """A caller decoding the diffusion model in bf16 autocast must still get the fp32 bitstream
    (the entropy model's scales are computed in full precision on both sides)."""
    codecs = [HCICodec(tiny("hyperprior"))]
    if (WEIGHTS / "mid").is_dir():
        codecs.append(HCICodec.from_pretrained(WEIGHTS / "mid"))
    for codec in codecs:
        for seed in range(3):
            img = scene_like(seed=seed)
            data, ref = codec.roundtrip(img)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert codec.encode(img) == data
                assert np.array_equal(codec.decode(data), ref)
