"""Variable-rate mean-scale HCI (gain units): tiny random models, odd and portrait sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.streams.hci import HCICodec, build_model


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(n_rates=3):
    torch.manual_seed(0)
    model = build_model({"arch": "gained-meanscale", "N": 8, "M": 6, "depth": 3, "Nz": 4,
                         "n_rates": n_rates})
    with torch.no_grad():  # distinct gains per rate point, as training makes them
        model.log_gain.copy_(torch.linspace(0.0, 4.0, n_rates)[:, None].expand(-1, 6))
        model.log_igain.copy_(-model.log_gain)
    model.update(force=True)
    return model.eval()


def photo_like(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([128 + 100 * np.sin(xx / 7 + c) * np.cos(yy / 11) for c in range(3)], -1)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("h,w", [(383, 517), (517, 383), (9, 200)])
def test_odd_and_portrait_sizes_round_trip_at_their_size(h, w):
    codec = HCICodec(tiny(), fit="pad", rate=1.0)
    img = photo_like(h, w)
    data = codec.encode(img)
    rec = codec.decode(data)
    assert rec.shape == (h, w, 3) and rec.dtype == np.uint8
    # the bitstream decodes to exactly what the quantized forward pass gives
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    d = codec.model.downsampling
    x = torch.nn.functional.pad(x, (0, -w % d, 0, -h % d), mode="replicate")
    ref = codec.reconstruct_batch(x)[0, :, :h, :w].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(rec, (ref * 255).round().astype(np.uint8))


def test_higher_rate_spends_more_bits_and_fractional_rates_interpolate():
    model = tiny()
    img = photo_like(96, 128)
    bits = [8 * len(HCICodec(model, fit="pad", rate=r).encode(img)) for r in (0.0, 1.0, 2.0)]
    assert bits[0] < bits[1] < bits[2]
    g_half, _ = model._gains(0.5)
    g0, _ = model._gains(0.0)
    g1, _ = model._gains(1.0)
    torch.testing.assert_close(g_half, (g0 * g1).sqrt())


def test_rate_is_validated_and_saved(tmp_path):
    model = tiny()
    with pytest.raises(ValueError, match="rate=3.5 must be in"):
        HCICodec(model, fit="pad", rate=3.5)
    with pytest.raises(ValueError, match="variable-rate model needs a rate"):
        HCICodec(model, fit="pad")
    codec = HCICodec(model, fit="pad", rate=2.0)
    codec.save_pretrained(tmp_path / "top")
    back = HCICodec.from_pretrained(tmp_path / "top")
    assert back.rate == 2.0
    img = photo_like(40, 72)
    assert back.encode(img) == codec.encode(img)


def test_rate_points_can_share_one_weights_file(tmp_path):
    import json

    model = tiny()
    HCICodec(model, fit="pad", rate=0.0).save_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    for name, rate in (("low", 0.0), ("top", 2.0)):
        (tmp_path / name).mkdir()
        cfg = {**HCICodec(model, fit="pad", rate=rate).config(),
               "weights": "../model.safetensors"}
        (tmp_path / name / "config.json").write_text(json.dumps(cfg))
    img = photo_like(64, 64)
    for name, rate in (("low", 0.0), ("top", 2.0)):
        back = HCICodec.from_pretrained(tmp_path / name)
        assert back.encode(img) == HCICodec(model, fit="pad", rate=rate).encode(img)
        assert "weights" not in back.config()
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        HCICodec.from_pretrained(tmp_path / "low")


def test_shipped_photo_hci_points_share_weights_and_spend_more_bits_as_rate_rises():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "codec" / "weights" / "hci-photos"
    card = json.loads((root / "model_card.json").read_text())
    assert {"command", "commit", "steps", "status", "rate_points"} <= set(card)
    assert (root / "model.safetensors").stat().st_size < 40e6
    assert not list(root.glob("*/*.safetensors")) and not list(root.rglob("*.pt"))
    img = photo_like(100, 150)  # odd size, landscape
    bits = []
    for name in ("low", "mid", "high", "top"):
        codec = HCICodec.from_pretrained(root / name)
        assert codec.fit == "pad"
        data = codec.encode(img)
        assert codec.decode(data).shape == (100, 150, 3)
        bits.append(len(data))
    assert bits == sorted(bits) and bits[0] < bits[-1]
