import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from benchmark.scenes import generate
from codec.dpcd.configs import controlnet_kwargs, unet_config
from codec.dpcd.decoder import denoise, to_model_space, training_scheduler
from codec.sdgic import SDGIC
from codec.text_encoder import default_text_encoder
from training.dpcd import load_hci_codecs, random_hci, token_dropout, train_dpcd
from training.dpcd_data import scene_batch, v_loss


def log_text(run):
    return (run / "train.log").read_text()


def test_control_then_rsrt_stage_train_resume_export_and_load(tmp_path):
    preset = tmp_path / "preset"
    kw = dict(batch_size=2, save_every=2, threads=1, export=preset)
    train_dpcd(tmp_path / "c", stage="control", steps=2, config="tiny", sample_every=2, **kw)
    train_dpcd(tmp_path / "c", stage="control", steps=3, config="tiny", sample_every=100, **kw)
    log = (tmp_path / "c" / "train.log").read_text()
    assert "resumed from" in log and "at step 2" in log
    card = json.loads((preset / "model_card.json").read_text())
    assert card["stages"]["control"]["steps"] == 3
    assert (tmp_path / "c" / "samples" / "control-step000002.png").is_file()
    codec = SDGIC.from_pretrained(preset)            # export is a loadable preset
    assert codec.controlnet is not None and codec.rsrt_encoder is None

    from training.captioner import train_captioner

    train_captioner(tmp_path / "cap", steps=2, train_scenes=16, eval_scenes=4, threads=1)
    train_dpcd(tmp_path / "r", stage="rsrt", steps=25, init=preset, unquantized_steps=10,
               sample_every=100, save_every=25, batch_size=2, threads=1, export=preset,
               num_tokens=4, captioner=tmp_path / "cap")
    log = (tmp_path / "r" / "train.log").read_text()
    assert "tokens distinct" in log and "entropy" in log      # code health is logged
    assert "captions from scene captioner (detail full)" in log
    codec = SDGIC.from_pretrained(preset)
    enc = codec.encode(generate(0, seed=1, size=16)[0], caption="a red star")
    assert len(enc.rsrt_tokens) == 4
    assert codec.decode(enc, steps=2).shape == (16, 16, 3)
    assert codec.caption_detail == "full"
    train_dpcd(tmp_path / "rl", stage="rsrt", steps=26, save_every=1, sample_every=0, init=preset,
               batch_size=2, threads=1, export=preset, num_tokens=4, caption_detail="layout")
    assert "captions from ground truth (detail layout)" in log_text(tmp_path / "rl")
    assert SDGIC.from_pretrained(preset).caption_detail == "layout"    # senders follow
    assert (preset / "caption_model.json").is_file()          # with a model fitted to them
    card = json.loads((preset / "model_card.json").read_text())["stages"]["rsrt"]
    assert card["training_command"].endswith("--caption-detail layout")
    with pytest.raises(ValueError, match="trained on caption detail 'layout', not 'full'"):
        train_dpcd(tmp_path / "rl", stage="rsrt", steps=27, batch_size=2, threads=1)
    with pytest.raises(ValueError, match="holds stage 'rsrt', not 'control'"):
        train_dpcd(tmp_path / "r", stage="control", steps=30, batch_size=2, threads=1)


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    te = default_text_encoder()
    unet = UNet2DConditionModel(**unet_config("tiny", cross_attention_dim=te.dim))
    cn = ControlNetModel.from_unet(unet, **controlnet_kwargs())
    x, caps = scene_batch(0, 4, 16, seed=3)
    hci = random_hci(load_hci_codecs("codec/weights/hci-64"), x, torch.Generator().manual_seed(0))
    cond, mask = te.tokens(caps)
    sched = training_scheduler()
    x0 = to_model_space(x)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([100, 300, 500, 700])
    xt, target = sched.add_noise(x0, noise, t), sched.get_velocity(x0, noise, t)
    opt = torch.optim.Adam(list(unet.parameters()) + list(cn.parameters()), lr=2e-3)
    losses = []
    for _ in range(30):
        loss = v_loss(sched, denoise(unet, xt, t, cond, mask, cn, to_model_space(hci)), target, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])


def test_random_hci_matches_the_bitstream_and_token_dropout():
    codecs = load_hci_codecs("codec/weights/hci-64", points=("mid",))
    img = generate(2, seed=5, size=64)[0]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    fast = random_hci(codecs, x, torch.Generator().manual_seed(0))[0]
    slow = codecs[0].decode(codecs[0].encode(img))
    assert (fast.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy().tolist() == slow.tolist()
    present = token_dropout(4000, 8, torch.Generator().manual_seed(0))
    assert present.shape == (4000, 8) and 0.4 < present.float().mean() < 0.6
    assert (~present).all(1).any() and present.all(1).any()   # whole-stream loss and no loss
    with pytest.raises(FileNotFoundError, match="rate points"):
        load_hci_codecs("codec/weights/hci-64", points=("ultra",))


def test_scene_batches_from_workers_match_the_serial_batches():
    from training.dpcd_data import scene_batches

    serial = list(scene_batches(5, 8, 3, 16, seed=3))
    parallel = list(scene_batches(5, 8, 3, 16, seed=3, workers=2))
    assert len(parallel) == 3
    for (xs, cs), (xp, cp) in zip(serial, parallel):
        assert torch.equal(xs, xp) and cs == cp
    layout = list(scene_batches(5, 8, 3, 16, seed=3, workers=2, detail="layout"))
    scenes = [generate(5 * 3 + i, seed=3, size=16)[1] for i in range(3)]
    assert torch.equal(layout[0][0], serial[0][0])       # same images, vaguer captions
    assert layout[0][1] == [s.describe("layout") for s in scenes]


def test_data_workers_do_not_change_training_and_bf16_trains(tmp_path):
    kw = dict(stage="control", steps=2, config="tiny", batch_size=2, save_every=2, threads=1,
              sample_every=0)
    losses = []
    for name, extra in (("serial", {}), ("workers", dict(workers=1)), ("bf16", dict(bf16=True))):
        train_dpcd(tmp_path / name, **kw, **extra)
        losses.append(json.loads((tmp_path / name / "checkpoint" / "state.json").read_text())["loss"])
        assert not any((tmp_path / name / "samples").iterdir())     # sample_every=0: no grids
    assert losses[0] == losses[1]
    assert np.isfinite(losses[2]) and losses[2] != losses[0]


def test_token_attribute_loss_trains_a_head_that_is_checkpointed_but_never_exported(tmp_path):
    from training.captioner import train_captioner

    train_captioner(tmp_path / "cap", steps=2, train_scenes=16, eval_scenes=4, threads=1)
    preset, run = tmp_path / "preset", tmp_path / "r"
    kw = dict(stage="rsrt", config="tiny", batch_size=2, threads=1, sample_every=0,
              save_every=25, num_tokens=4, unquantized_steps=0, export=preset,
              captioner=tmp_path / "cap", token_attribute_loss=0.1)
    train_dpcd(run, steps=25, **kw)
    line = [l for l in log_text(run).splitlines() if l.startswith("step 25 ")][0]
    assert "attributes loss" in line and "shape acc" in line
    assert (run / "checkpoint" / "rsrt_attribute_head" / "config.json").is_file()
    assert (run / "checkpoint" / "ema" / "rsrt_attribute_head" / "config.json").is_file()
    assert not (preset / "rsrt_attribute_head").exists()
    card = json.loads((preset / "model_card.json").read_text())["stages"]["rsrt"]
    assert card["token_attribute_loss"] == 0.1
    assert card["training_command"].endswith("--token-attribute-loss 0.1")
    train_dpcd(run, steps=26, **{**kw, "save_every": 1})          # resumes with its head
    assert "resumed from" in log_text(run)
    assert SDGIC.from_pretrained(preset).rsrt_encoder is not None
    plain = {**kw, "token_attribute_loss": 0.0, "save_every": 1}
    train_dpcd(tmp_path / "plain", steps=1, **plain)
    card = json.loads((preset / "model_card.json").read_text())["stages"]["rsrt"]
    assert card["token_attribute_loss"] == 0.0                     # no stale weight left
    with pytest.raises(ValueError, match="trained without the token attribute loss"):
        train_dpcd(tmp_path / "plain", steps=2, **kw)
    with pytest.raises(ValueError, match="needs stage='rsrt' and a captioner"):
        train_dpcd(tmp_path / "bad", **{**kw, "captioner": None})
    with pytest.raises(ValueError, match="token_attribute_loss=-1"):
        train_dpcd(tmp_path / "bad", **{**kw, "token_attribute_loss": -1})


def test_attribute_loss_reaches_the_token_encoder_and_counts_shapes():
    from benchmark.captioner import SceneCaptioner
    from codec.dpcd.rsrt import RSRTEncoder
    from training.dpcd import attribute_loss, build_modules, param_groups
    from training.token_head import TokenAttributeHead

    torch.manual_seed(0)
    x, _ = scene_batch(0, 4, 32, seed=3)
    enc = RSRTEncoder(num_tokens=4, width=16, text_dim=8)
    head = TokenAttributeHead(num_tokens=4, token_dim=4, text_dim=8, num_words=9)
    captioner = SceneCaptioner().model
    q = enc.quantize(enc(x, x, torch.zeros(4, 8)))[0]
    loss, right, seen = attribute_loss(head, captioner, x, q, torch.zeros(4, 8))
    loss.backward()
    assert enc.out[1].weight.grad.abs().sum() > 0          # straight through FSQ to the encoder
    assert all(p.grad is None for p in captioner.parameters())
    with torch.no_grad():
        objects = (captioner(x)["present"] > 0).sum()
    assert seen == objects > 0 and 0 <= right <= seen       # shapes scored where objects are
    mods, _ = build_modules("rsrt", None, 384, "tiny", num_tokens=4, attribute_head_words=9)
    groups = param_groups(mods, 1e-4, rsrt_lr_scale=2)
    assert [g["lr"] for g in groups] == [1e-4, 2e-4, 2e-4]
    assert groups[2]["params"] == list(mods["rsrt_attribute_head"].parameters())


def test_rsrt_modules_get_their_own_learning_rate_and_old_checkpoints_resume(tmp_path):
    from training.dpcd import build_modules, param_groups, regroup_optimizer_state

    mods, _ = build_modules("rsrt", None, 384, "tiny", num_tokens=4)
    groups = param_groups(mods, 1e-4, rsrt_lr_scale=5)
    assert [g["lr"] for g in groups] == [1e-4, 5e-4]
    flat = [p for g in groups for p in g["params"]]
    assert [id(p) for p in flat] == [id(p) for p in mods.parameters()]   # EMA order kept
    # A checkpoint from before the split: one group over every parameter, with Adam moments.
    old = torch.optim.AdamW(list(mods.parameters()), lr=1e-4)
    for p in mods.parameters():
        p.grad = torch.ones_like(p)
    old.step()
    state = regroup_optimizer_state(old.state_dict(), [len(g["params"]) for g in groups])
    new = torch.optim.AdamW(groups, lr=1e-4)
    new.load_state_dict(state)
    last = flat[-1]
    assert torch.equal(new.state[last]["exp_avg"], old.state[last]["exp_avg"])
    with pytest.raises(ValueError, match="belongs to another model"):
        regroup_optimizer_state(old.state_dict(), [3, 4])

    # Resuming a one-group checkpoint with a scaled RSRT learning rate trains on.
    run = tmp_path / "r"
    kw = dict(stage="rsrt", config="tiny", batch_size=2, threads=1, sample_every=0,
              save_every=1, num_tokens=4, unquantized_steps=0)
    train_dpcd(run, steps=1, **kw)
    opt = torch.load(run / "checkpoint" / "optimizer.pt", weights_only=True)
    merged = {"state": opt["state"], "param_groups": [{
        **opt["param_groups"][0], "params": [i for g in opt["param_groups"] for i in g["params"]]}]}
    torch.save(merged, run / "checkpoint" / "optimizer.pt")
    train_dpcd(run, steps=2, rsrt_lr_scale=5, **kw)
    assert "(RSRT modules ×5)" in (run / "train.log").read_text()
    with pytest.raises(ValueError, match="rsrt_lr_scale"):
        train_dpcd(tmp_path / "bad", rsrt_lr_scale=0, **kw)
    with pytest.raises(ValueError, match="caption detail 'short'"):
        train_dpcd(tmp_path / "bad", caption_detail="short", **kw)


def test_photo_training_sends_no_captions_and_does_not_mix_with_scenes(tmp_path, tiny_preset,
                                                                       tiny_photo_set):
    from training.dpcd import conditioned_batch

    photos = tiny_photo_set(tmp_path / "photos")
    run, export = tmp_path / "ph", tmp_path / "photos-16"
    kw = dict(stage="rsrt", init=tiny_preset, photos=photos, batch_size=2, threads=1,
              num_tokens=4, save_every=2, sample_every=2, export=export, ema_decay=0.99)
    train_dpcd(run, steps=2, **kw)
    assert "captions from none (photos" in log_text(run)
    assert json.loads((run / "checkpoint" / "state.json").read_text())["data"] == "photos"
    assert (run / "samples" / "rsrt-step000002.png").is_file()
    card = json.loads((export / "model_card.json").read_text())["stages"]["rsrt"]
    assert f"--photos {photos}" in card["training_command"] and "photo set" in card["data"]
    assert card["ema_decay"] == 0.99 and card["init"] == str(tiny_preset)
    loaded = SDGIC.from_pretrained(export)                          # a loadable preset
    assert loaded.rsrt_encoder is not None and not loaded.caption_stream
    # resumes on photos with its own EMA decay; the card keeps where the run started
    train_dpcd(run, steps=4, **{**kw, "ema_decay": 0.9, "init": export})
    assert "resumed from" in log_text(run)
    assert torch.load(run / "checkpoint" / "ema_state.pt", weights_only=True)["decay"] == 0.9
    card = json.loads((export / "model_card.json").read_text())["stages"]["rsrt"]
    assert card["init"] == str(tiny_preset) and card["ema_decay"] == 0.9
    with pytest.raises(ValueError, match="trained on photos, not scenes: resume it with --photos"):
        train_dpcd(run, steps=5, **{**kw, "photos": None})
    scenes_run = tmp_path / "sc"
    train_dpcd(scenes_run, steps=1, **{**kw, "photos": None, "export": None})
    state = scenes_run / "checkpoint" / "state.json"
    old = {k: v for k, v in json.loads(state.read_text()).items() if k not in ("data", "init")}
    state.write_text(json.dumps(old))                # a checkpoint from before photos: scenes
    with pytest.raises(ValueError, match="trained on scenes, not photos: resume it without"):
        train_dpcd(scenes_run, steps=2, **kw)
    with pytest.raises(ValueError, match="drop --workers"):
        train_dpcd(tmp_path / "bad", steps=1, **{**kw, "workers": 1})
    with pytest.raises(ValueError, match="photos have no captions"):
        train_dpcd(tmp_path / "bad", steps=1, **{**kw, "captioner": "benchmark/weights/captioner"})
    with pytest.raises(ValueError, match="ema_decay"):
        train_dpcd(tmp_path / "bad", steps=1, **{**kw, "ema_decay": 1.0})
    # a None caption is a dropped caption: null tokens and a zero pooled embedding
    text = default_text_encoder()
    x = torch.rand(2, 3, 16, 16)
    b = conditioned_batch(0, 2, 16, text, load_hci_codecs("codec/weights/hci-64", ("mid",)),
                          torch.Generator().manual_seed(0), caption_dropout=0.0,
                          hci_dropout=0.0, scenes=(x, [None, "a red circle"]))
    assert b["drop"].tolist() == [True, False]
    assert (b["pooled"][0] == 0).all() and (b["pooled"][1] != 0).any()
    null, _ = text.tokens([""])
    assert torch.allclose(b["cond"][0, :null.shape[1]], null[0], atol=1e-4)


def test_a_fresh_scene_backbone_token_encoder_on_a_trained_decoder(tmp_path, tiny_preset):
    from benchmark.captioner import CaptionerNet
    from codec.dpcd.rsrt import RSRTEncoder
    from training.captioner import train_captioner

    train_captioner(tmp_path / "cap", steps=1, train_scenes=8, eval_scenes=4, threads=1)
    preset, run = tmp_path / "preset", tmp_path / "r"
    kw = dict(stage="rsrt", init=tiny_preset, batch_size=2, threads=1, sample_every=0,
              save_every=1, unquantized_steps=0, export=preset, captioner=tmp_path / "cap",
              fresh_rsrt=True, rsrt_backbone="scene", token_cells=2, num_tokens=4,
              levels=(4, 4))
    train_dpcd(run, steps=1, **kw)
    log = log_text(run)
    assert "fresh rsrt_encoder (scene backbone from the captioner)" in log
    assert "fresh rsrt_embedding" in log and "within image" in log
    from codec.preset import Preset

    made, parent = Preset.load(preset), Preset.load(tiny_preset)
    assert made.decode == parent.decode and made.resolution == parent.resolution
    assert not Path(made.hci_root).is_absolute()        # the folder can move (and be committed)
    assert (preset / made.hci_root).resolve() == (tiny_preset / parent.hci_root).resolve()
    codec = SDGIC.from_pretrained(preset)
    assert codec.rsrt_encoder.config.backbone == "scene" and codec.rsrt_encoder.config.cells == 2
    assert codec.rsrt_encoder.fsq.bits == 4                 # 4 tokens x 4 bits
    cap = CaptionerNet.from_pretrained(tmp_path / "cap")
    # the checkpoint's encoder started from the captioner's features (one step of lr 1e-4 at
    # warm-up moves them by far less than their size)
    ckpt = RSRTEncoder.from_pretrained(run / "checkpoint" / "rsrt_encoder")
    w0, w1 = cap.features[0][0].weight, ckpt.scene[0][0].weight
    assert (w1 - w0).abs().max() < 1e-2 * w0.abs().max()
    enc = codec.encode(generate(0, seed=1, size=16)[0], caption="a red star")
    assert len(enc.rsrt_tokens) == 4
    train_dpcd(run, steps=2, **kw)                          # resumes: --init is ignored
    assert "resumed from" in log_text(run)
    with pytest.raises(ValueError, match="resume with the flags it started with"):
        train_dpcd(run, steps=3, **{**kw, "freeze_scene_backbone": True})
