import json

import torch
from diffusers import UNet2DConditionModel

from codec.dpcd.decoder import DPCDSampler, from_model_space, to_model_space
from codec.text_encoder import default_text_encoder
from training.prior import export_prior, train_prior


def test_model_space_round_trip():
    x = torch.rand(2, 3, 16, 16)
    z = to_model_space(x)
    assert z.shape == (2, 12, 8, 8) and z.min() >= -1 and z.max() <= 1
    torch.testing.assert_close(from_model_space(z), x)


def test_prior_trains_resumes_and_exports(tmp_path):
    run = tmp_path / "run"
    train_prior(run, steps=4, batch_size=2, config="tiny", save_every=2, sample_every=4, threads=1)
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 4
    train_prior(run, steps=6, batch_size=2, config="tiny", save_every=2, sample_every=6, threads=1)
    log = (run / "train.log").read_text()
    assert "resumed from" in log and "at step 4" in log
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 6
    assert (run / "samples" / "step000006.png").is_file()

    preset = export_prior(run, tmp_path / "preset")
    card = json.loads((preset / "model_card.json").read_text())
    assert card["status"] == "in-progress" and card["stages"]["prior"]["steps"] == 6
    from safetensors import safe_open

    with safe_open(str(next((preset / "unet").glob("*.safetensors"))), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16   # stored half
    unet = UNet2DConditionModel.from_pretrained(preset / "unet")
    assert next(unet.parameters()).dtype == torch.float32                   # computed float
    # a fresh run initialised from the exported preset starts at its step count
    run2 = tmp_path / "run2"
    train_prior(run2, steps=7, batch_size=2, config="tiny", save_every=1, sample_every=100,
                init=preset / "unet", threads=1)
    assert "initialised from" in (run2 / "train.log").read_text()
    assert json.loads((run2 / "checkpoint" / "state.json").read_text())["step"] == 7


def test_sampler_is_seeded_and_bounded(tmp_path):
    te = default_text_encoder()
    from codec.dpcd.configs import unet_config

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_config("tiny", cross_attention_dim=te.dim)).eval()
    s = DPCDSampler(unet, te)
    a = s.sample(["a red star", None], steps=3, generator=torch.Generator().manual_seed(1))
    b = s.sample(["a red star", None], steps=3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 3, 16, 16) and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    g = s.sample(["a red star"], steps=2, guidance_scale=3.0, generator=torch.Generator().manual_seed(1))
    assert g.shape == (1, 3, 16, 16)
