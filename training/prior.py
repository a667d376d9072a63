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
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from diffusers.training_utils import EMAModel

from benchmark import seeds
from benchmark.scenes import generate
from codec.dpcd.configs import unet_config
from codec.dpcd.decoder import DPCDSampler, to_model_space, training_scheduler
from codec.provenance import git_commit, write_model_card
from codec.text_encoder import TextEncoder
from training.dpcd_data import save_grid, scene_batch, v_loss
from training.harness import TrainLoop, atomic_folder, load_ema_state, save_ema_state, warmup
from training.stages import PriorConfig

TRAIN_SEED = seeds.PRIOR_TRAIN
SAMPLE_SEED = seeds.PRIOR_SAMPLES  # fixed scenes whose captions drive the sample grids


def train_prior(run: str | Path, **options) -> Path:
    """Train (or resume) the prior in ``run`` with the :class:`~training.stages.PriorConfig`
    fields given as keywords; returns the checkpoint folder."""
    return run_prior(PriorConfig(run=str(run), **options))


def run_prior(cfg: PriorConfig) -> Path:
    """Train (or resume) the prior ``cfg`` describes; returns the checkpoint folder.

    ``export``: a preset folder that receives the EMA UNet (fp16 safetensors) and an
    in-progress model card at every checkpoint, ready to commit.
    """
    run, steps, batch_size, lr = Path(cfg.run), cfg.steps, cfg.batch_size, cfg.lr
    init, export, caption_dropout = cfg.init, cfg.export, cfg.caption_dropout
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
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
        unet = UNet2DConditionModel(**unet_config(cfg.config, cross_attention_dim=text.dim))
        start = 0
        src = "fresh"
    size = unet.config.sample_size * 2
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=True,
                   model_cls=UNet2DConditionModel, model_config=unet.config)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-2)
    if (ckpt / "optimizer.pt").is_file():
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        ema_unet = UNet2DConditionModel.from_pretrained(ckpt / "unet_ema")
        load_ema_state(ema, ckpt / "ema_state.pt", list(ema_unet.parameters()))
    elif start > 0:  # shipped weights are the EMA: keep them as the EMA's start too
        ema.optimization_step = start
    sched = training_scheduler()
    loop = TrainLoop("prior", start, steps, run / "train.log", [opt], warmup(500),
                     save_every=cfg.save_every, sample_every=cfg.sample_every,
                     max_minutes=cfg.max_minutes)
    loop.print(f"prior: {src}; {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M params, "
               f"{size}×{size}, batch {batch_size}")
    sample_scenes = [generate(i, seed=SAMPLE_SEED, size=size) for i in range(16)]
    sample_captions = [s[1].caption for s in sample_scenes]
    g = torch.Generator().manual_seed(start)
    unet.train()

    def step_fn(step: int) -> dict:
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
        return {"loss": loss.detach()}

    def save(done: int, loss: float) -> None:
        _save(unet, ema, opt, ckpt, done, loss)
        if export is not None:
            export_prior(run, export, cfg, complete=done >= steps)

    def sample(done: int) -> None:
        imgs = DPCDSampler(ema_copy(unet, ema).eval(), text).sample(
            sample_captions, steps=20, generator=torch.Generator().manual_seed(0))
        ref = torch.from_numpy(np.stack([s[0] for s in sample_scenes])).permute(0, 3, 1, 2) / 255.0
        save_grid(torch.cat([ref[:8], imgs[:8], ref[8:], imgs[8:]]),
                  run / "samples" / f"step{done:06d}.png")

    loop.run(step_fn, save, sample)
    return ckpt


def export_prior(run: str | Path, out: str | Path, cfg: PriorConfig | None = None,
                 complete: bool = False) -> Path:
    """Write ``run``'s EMA UNet to ``out/unet`` as fp16 safetensors with ``out/model_card.json``.

    fp16 halves the file (a 10 M-parameter UNet is 20 MB instead of 41 MB, under the 40 MB
    preset limit); weights are cast back to fp32 on load.
    """
    run, out = Path(run), Path(out)
    cfg = cfg or PriorConfig(run=str(run))
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
                f"{unet.config.sample_size * 2} px, caption dropout {cfg.caption_dropout}",
        "steps": state["step"], "batch_size": cfg.batch_size, "lr": cfg.lr,
        "config": cfg.record(),
        "images_seen": state["step"] * cfg.batch_size,
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
    with atomic_folder(ckpt) as tmp:
        unet.save_pretrained(tmp / "unet")
        ema_copy(unet, ema).save_pretrained(tmp / "unet_ema")
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        save_ema_state(ema, tmp / "ema_state.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "loss": float(loss)}) + "\n")
