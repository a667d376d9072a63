"""Train one HCI rate point on procedural scenes and photo crops (resumable).

    python -m training.hci --out codec/weights/hci-64/r40 --lmbda 3e-5 --steps 3000 \
        --photos data/photos --photo-fraction 0.25

Loss = ``lmbda · 255² · MSE + bits/pixel`` (CompressAI's rate–distortion convention) plus the
entropy bottleneck's auxiliary quantile loss on its own optimizer. Training images are scenes
``0 … n_train-1`` of seed 6006 at the working size (rendered once, cached as ``.npy`` under
``runs/hci-data/``) and, with ``--photos``, the train tiles of ``sdgic data photos`` resized to the
working size (``round(photo_fraction · batch)`` of every batch), all with random flips.
Evaluation uses 500 scenes of seed 6007 and, with ``--photos``, 300 photo val tiles (the same
fixed subset as ``experiments/hci_rd.py``).

The run folder (``runs/hci/<name>/``, ignored by git) holds ``checkpoint.pt`` with the model and
both optimizers' state: re-running the same command resumes from it. The shipped folder
(``--out``) receives ``config.json``, ``model.safetensors`` and ``model_card.json`` only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark import seeds
from codec.provenance import run_record, write_model_card
from codec.streams.hci import HCICodec, build_model
from training.harness import TrainLoop, save_atomic
from training.stage_cli import stage_main
from training.stages import HCIConfig

TRAIN_SEED = seeds.HCI_TRAIN
EVAL_SEED = seeds.HCI_EVAL
ROOT = Path(__file__).resolve().parents[2]


def scene_array(n: int, seed: int, size: int, cache: Path | None = None) -> np.ndarray:
    """uint8 (n, size, size, 3) scenes 0…n-1 of ``seed``, cached as .npy."""
    from benchmark.scene_dataset import render_scenes

    if cache is not None:
        path = cache / f"scenes_s{seed}_{size}px_{n}.npy"
        if path.is_file():
            return np.load(path)
    images, _ = render_scenes(n, seed=seed, size=size, workers=1, progress=True)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, images)
    return images


def optimizer_step(model, loss, opt, aux_opt) -> torch.Tensor:
    """One rate–distortion step (gradients clipped to norm 1), then one step of the entropy
    bottleneck's quantile loss on its own optimizer; returns that auxiliary loss."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    aux = model.aux_loss()
    aux_opt.zero_grad()
    aux.backward()
    aux_opt.step()
    return aux


@torch.no_grad()
def evaluate(codec: HCICodec, images: np.ndarray) -> dict:
    """Real bitstreams: mean bits/image, bpp, PSNR (dB) over ``images`` uint8 (B, H, W, 3)."""
    from benchmark.metrics import psnr

    bits, recs = [], []
    for img in images:
        data = codec.encode(img)
        bits.append(8 * len(data))
        recs.append(codec.decode(data))
    recs = np.stack(recs)
    h, w = images.shape[1:3]
    p = psnr(images, recs)
    return {"bits_per_image": float(np.mean(bits)), "bits_median": float(np.median(bits)),
            "bits_max": int(np.max(bits)), "bpp": float(np.mean(bits) / (h * w)),
            "psnr_db": float(np.mean(p)), "n_images": int(len(images))}


def train(out: str | Path, lmbda: float, steps: int, **options) -> dict:
    """Train one rate point into ``out`` with the :class:`~training.stages.HCIConfig` fields
    given as keywords; returns its model card."""
    return run_hci(HCIConfig(out=str(out), lmbda=lmbda, steps=steps, **options))


def run_hci(cfg: HCIConfig) -> dict:
    """Train (or resume) the rate point ``cfg`` describes, evaluate it, write it to ``cfg.out``
    with its model card; returns the card."""
    cfg.check()
    out, lmbda, steps, size, batch_size = Path(cfg.out), cfg.lmbda, cfg.steps, cfg.size, \
        cfg.batch_size
    photos, seed, init_from = cfg.photos, cfg.seed, cfg.init_from
    photo_fraction = cfg.photo_fraction if photos is not None else 0.0
    n_photo = round(photo_fraction * batch_size)
    torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else ROOT / "runs" / "hci" / out.name
    run_dir.mkdir(parents=True, exist_ok=True)
    cache = ROOT / "runs" / "hci-data"
    train_images = torch.from_numpy(scene_array(cfg.n_train, TRAIN_SEED, size, cache))
    train_images = train_images.permute(0, 3, 1, 2).contiguous()  # uint8 (n, 3, H, W)
    if n_photo:
        from benchmark.photos import train_tiles

        photo_images = torch.from_numpy(train_tiles(photos, size)).permute(0, 3, 1, 2).contiguous()

    model_cfg = {"arch": cfg.arch, "N": cfg.N, "M": cfg.M, "depth": cfg.depth}
    torch.manual_seed(seed)
    model = build_model(model_cfg)
    aux_params = {n for n, _ in model.named_parameters() if n.endswith(".quantiles")}
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if n not in aux_params],
                           lr=cfg.lr)
    aux_opt = torch.optim.Adam([p for n, p in model.named_parameters() if n in aux_params], lr=1e-3)
    step = 0
    ckpt_path = run_dir / "checkpoint.pt"
    start = ckpt_path if ckpt_path.is_file() else (Path(init_from) if init_from else None)
    if start is not None:
        ckpt = torch.load(start, weights_only=True)
        if ckpt["model_config"] != model_cfg:
            raise ValueError(f"{ckpt_path} was trained with {ckpt['model_config']}, not "
                             f"{model_cfg}; use another --run-dir")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        aux_opt.load_state_dict(ckpt["aux_opt"])
        step = ckpt["step"]
        torch.set_rng_state(ckpt["rng"])
        if start == ckpt_path:  # own run: keep where it was first initialized from
            init_from, init_step = ckpt.get("init_from"), ckpt.get("init_step", 0)
        else:
            init_from, init_step = str(start), step
        print(f"resumed from {start} at step {step}", flush=True)
    else:
        init_step = 0
    for group in opt.param_groups:   # this run's rate (a checkpoint holds the last one used)
        group["lr"] = cfg.lr

    def save(done: int, loss: float) -> None:
        save_atomic({"model": model.state_dict(), "opt": opt.state_dict(),
                     "aux_opt": aux_opt.state_dict(), "step": done, "rng": torch.get_rng_state(),
                     "model_config": model_cfg, "lmbda": lmbda, "init_from": init_from,
                     "init_step": init_step, "n_photo": n_photo}, ckpt_path)

    num_pixels = size * size

    def step_fn(step: int) -> dict:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, len(train_images), (batch_size - n_photo,), generator=g)
        x = train_images[idx]
        if n_photo:
            pidx = torch.randint(0, len(photo_images), (n_photo,), generator=g)
            x = torch.cat([x, photo_images[pidx]])
        x = x.float() / 255.0
        flip = torch.rand(batch_size, generator=g) < 0.5
        x[flip] = x[flip].flip(-1)
        out_ = model(x)
        mse = F.mse_loss(out_["x_hat"], x)
        bits = sum(-torch.log2(v).sum() for v in out_["likelihoods"].values()) / batch_size
        loss = lmbda * 255 ** 2 * mse + bits / num_pixels
        aux = optimizer_step(model, loss, opt, aux_opt)
        return {"loss": loss.detach(), "bits": bits.detach(), "mse": mse.detach(),
                "aux": aux.detach()}

    def log_line(done: int, window: list[dict], sec_per_step: float) -> str:
        last = window[-1]
        return (f"step {done} loss {float(last['loss']):.4f} bits/img {float(last['bits']):.1f} "
                f"psnr {10 * math.log10(1 / max(float(last['mse']), 1e-10)):.2f} "
                f"aux {float(last['aux']):.1f} {sec_per_step:.2f}s/step")

    model.train()
    # step decay: ×0.1 for the last 15 %
    TrainLoop(f"hci {out.name}", step, steps, run_dir / "train.log", [opt],
              lambda s: 0.1 if s >= 0.85 * steps else 1.0, log_every=50,
              save_every=cfg.checkpoint_every, log_line=log_line, echo=True,
              progress=False).run(step_fn, save)

    model.eval()
    model.update(force=True)
    codec = HCICodec(model, working_size=size, fit="resize", check_bits=0)
    eval_images = scene_array(cfg.n_eval, EVAL_SEED, size, cache)
    metrics = evaluate(codec, eval_images)
    photo_metrics, photo_desc = None, None
    if photos is not None:
        from benchmark.photos import val_tiles

        val_images, _, photo_desc = val_tiles(photos, 300, size, seed=EVAL_SEED)
        photo_metrics = evaluate(codec, val_images)
    codec.save_pretrained(out)
    card = {
        "name": out.name,
        "stream": "HCI (highly compressed image) of SDGIC",
        **run_record("training.hci"), "config": cfg.record(),
        "model": model_cfg,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "lmbda": lmbda, "steps": steps,
        "initialized_from": None if not init_from else
        f"{init_from} at step {init_step} (steps count from it)",
        "batch_size": batch_size, "lr": cfg.lr,
        "train_data": f"procedural scenes 0..{cfg.n_train - 1} of seed {TRAIN_SEED} at {size}x{size}"
                      + (f" ({batch_size - n_photo} per batch) and the train tiles of the photo "
                         f"set {photos} resized to {size}x{size} ({n_photo} per batch)"
                         if n_photo else "") + ", random horizontal flips",
        "eval_data": f"procedural scenes 0..{cfg.n_eval - 1} of seed {EVAL_SEED} at {size}x{size}",
        "eval": metrics,
        **({"eval_photos_data": photo_desc, "eval_photos": photo_metrics} if photos else {}),
        "entropy_coder": codec.config()["entropy_coder"],
        "note": "bits are real HCI bytes ×8 (1-bit size flag included); trained on CPU",
    }
    write_model_card(out, card)
    print(json.dumps(card["eval"]), flush=True)
    return card


def main(argv=None, prog: str | None = None):
    stage_main("hci", argv, prog)


if __name__ == "__main__":
    main()
