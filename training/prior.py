"""DPCD stage 1: the caption-conditioned UNet prior (``sdgic train prior``).

Trains ``UNet2DConditionModel`` on endless procedural scenes (data set seed 3003, never used
for evaluation) with v-prediction, Min-SNR-5 loss weighting (floored at the plain v-loss), caption dropout (the null caption
teaches the unconditional model that classifier-free guidance and lost-caption decoding need)
and an EMA of the weights.

Resumable: ``RUN/checkpoint/`` holds the UNet, its EMA, the optimizer and the step;
``--init DIR`` starts from shipped weights (e.g. an in-progress preset) when no checkpoint
exists, so a run continues on a fresh machine. Sample grids go to ``RUN/samples/``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from diffusers.training_utils import EMAModel
from tqdm import tqdm

from benchmark import seeds
from benchmark.scenes import generate
from codec.dpcd.configs import unet_config
from codec.dpcd.decoder import DPCDSampler, to_model_space, training_scheduler
from codec.provenance import git_commit, write_model_card
from codec.text_encoder import TextEncoder
from training.dpcd_data import StopFlag, replace_checkpoint, save_grid, scene_batch, v_loss

TRAIN_SEED = seeds.PRIOR_TRAIN
SAMPLE_SEED = seeds.PRIOR_SAMPLES  # fixed scenes whose captions drive the sample grids


def train_prior(run: str | Path, steps: int = 20000, batch_size: int = 16, lr: float = 2e-4,
                config: str = "scenes-64", caption_dropout: float = 0.15,
                ema_decay: float = 0.999, save_every: int = 250, sample_every: int = 1000,
                init: str | Path | None = None, threads: int | None = None,
                max_minutes: float | None = None, export: str | Path | None = None) -> Path:
    """Train (or resume) the prior in ``run``; returns the checkpoint folder.

    ``export``: a preset folder that receives the EMA UNet (fp16 safetensors) and an
    in-progress model card at every checkpoint, ready to commit.
    """
    if threads:
        torch.set_num_threads(threads)
    run = Path(run)
    ckpt = run / "checkpoint"
    (run / "samples").mkdir(parents=True, exist_ok=True)
    text = TextEncoder()
    if (ckpt / "unet" / "config.json").is_file():
        unet = UNet2DConditionModel.from_pretrained(ckpt / "unet")
        state = json.loads((ckpt / "state.json").read_text())
        start = state["step"]
        src = f"resumed from {ckpt} at step {start}"
    elif init is not None:
        unet = UNet2DConditionModel.from_pretrained(Path(init), torch_dtype=torch.float32)
        card = Path(init).parent / "model_card.json"
        start = json.loads(card.read_text()).get("stages", {}).get("prior", {}).get("steps", 0) \
            if card.is_file() else 0
        src = f"initialised from {init} (step {start})"
    else:
        unet = UNet2DConditionModel(**unet_config(config, cross_attention_dim=text.dim))
        start = 0
        src = "fresh"
    size = unet.config.sample_size * 2
    ema = EMAModel(unet.parameters(), decay=ema_decay, use_ema_warmup=True,
                   model_cls=UNet2DConditionModel, model_config=unet.config)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-2)
    if (ckpt / "optimizer.pt").is_file():
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        ema_unet = UNet2DConditionModel.from_pretrained(ckpt / "unet_ema")
        ema.load_state_dict({**torch.load(ckpt / "ema_state.pt", weights_only=True),
                             "shadow_params": [p.detach().clone() for p in ema_unet.parameters()]})
    elif start > 0:  # shipped weights are the EMA: keep them as the EMA's start too
        ema.optimization_step = start
    sched = training_scheduler()
    log = open(run / "train.log", "a")
    print(f"prior: {src}; {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M params, "
          f"{size}×{size}, batch {batch_size}", file=log, flush=True)
    sample_scenes = [generate(i, seed=SAMPLE_SEED, size=size) for i in range(16)]
    sample_captions = [s[1].caption for s in sample_scenes]
    g = torch.Generator().manual_seed(start)
    stop = StopFlag()
    t_start = time.time()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="prior", unit="step")
    unet.train()
    losses = []
    for step in bar:
        warm = min(1.0, (step + 1) / 500)
        for group in opt.param_groups:
            group["lr"] = lr * warm
        x, captions = scene_batch(step, batch_size, size, TRAIN_SEED)
        drop = torch.rand(batch_size, generator=g) < caption_dropout
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        cond, mask = text.tokens(captions)
        x0 = to_model_space(x)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,), generator=g)
        xt = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t)
        pred = unet(xt, t, encoder_hidden_states=cond, encoder_attention_mask=mask).sample
        loss = v_loss(sched, pred, target, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.step(unet.parameters())
        losses.append(loss.item())
        done = step + 1
        if done % 25 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-25:]):.4f}")
            print(f"step {done} loss {np.mean(losses[-25:]):.5f} "
                  f"{(time.time() - t_start) / len(losses):.2f}s/step", file=log, flush=True)
        out_of_time = (max_minutes is not None and time.time() - t_start > 60 * max_minutes) \
            or stop.requested
        if done % save_every == 0 or done == steps or out_of_time:
            _save(unet, ema, opt, ckpt, done, np.mean(losses[-100:]))
            if export is not None:
                export_prior(run, export, batch_size=batch_size, lr=lr,
                             complete=done >= steps)
        if done % sample_every == 0 or done == steps or out_of_time:
            ema_unet = ema_copy(unet, ema)
            imgs = DPCDSampler(ema_unet.eval(), text).sample(
                sample_captions, steps=20, generator=torch.Generator().manual_seed(0))
            ref = torch.from_numpy(np.stack([s[0] for s in sample_scenes])).permute(0, 3, 1, 2) / 255.0
            save_grid(torch.cat([ref[:8], imgs[:8], ref[8:], imgs[8:]]), run / "samples" / f"step{done:06d}.png")
        if out_of_time:
            why = "SIGTERM/SIGINT" if stop.requested else "--max-minutes reached"
            print(f"stopping at step {done}: {why}; checkpoint saved", file=log, flush=True)
            break
    stop.restore()
    log.close()
    return ckpt


def export_prior(run: str | Path, out: str | Path, batch_size: int = 16, lr: float = 2e-4,
                 complete: bool = False) -> Path:
    """Write ``run``'s EMA UNet to ``out/unet`` as fp16 safetensors with ``out/model_card.json``.

    fp16 halves the file (a 10 M-parameter UNet is 20 MB instead of 41 MB, under the 40 MB
    preset limit); weights are cast back to fp32 on load.
    """
    run, out = Path(run), Path(out)
    ckpt = run / "checkpoint"
    state = json.loads((ckpt / "state.json").read_text())
    unet = UNet2DConditionModel.from_pretrained(ckpt / "unet_ema")
    unet.to(torch.float16).save_pretrained(out / "unet")
    card_path = out / "model_card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    log = (run / "train.log").read_text().splitlines() if (run / "train.log").is_file() else []
    secs = [float(l.split()[-1].rstrip("s/step")) for l in log if l.startswith("step ")]
    card.update({
        "preset": out.name,
        "status": "complete" if complete else "in-progress",
        "resolution": unet.config.sample_size * 2,
    })
    card.setdefault("stages", {})["prior"] = {
        "what": "caption-conditioned UNet2DConditionModel prior (EMA weights, fp16)",
        "training_command": f"sdgic train prior --run {run} --init {out / 'unet'} "
                            f"--export {out}",
        "commit": git_commit(),
        "data": f"endless procedural scenes, data set seed {TRAIN_SEED}, "
                f"{unet.config.sample_size * 2} px, caption dropout 0.15",
        "steps": state["step"], "batch_size": batch_size, "lr": lr,
        "images_seen": state["step"] * batch_size,
        "loss_last_100_steps": round(state["loss"], 5),
        "parameters": sum(p.numel() for p in unet.parameters()),
        "seconds_per_step_logged": round(secs[-1], 2) if secs else None,
        "samples": "runs/<run>/samples/stepNNNNNN.png (rows: source scene, prior sample "
                   "from its caption)",
    }
    write_model_card(out, card)
    return out


def ema_copy(unet: UNet2DConditionModel, ema: EMAModel) -> UNet2DConditionModel:
    """A new UNet holding the EMA weights."""
    m = UNet2DConditionModel.from_config(unet.config)
    ema.copy_to(m.parameters())
    return m


def _save(unet, ema, opt, ckpt: Path, step: int, loss: float) -> None:
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(tmp / "unet")
    ema_copy(unet, ema).save_pretrained(tmp / "unet_ema")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    st = ema.state_dict()
    st.pop("shadow_params", None)
    torch.save(st, tmp / "ema_state.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "loss": float(loss)}) + "\n")
    replace_checkpoint(tmp, ckpt)
