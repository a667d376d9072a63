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

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark import seeds
from codec.provenance import run_record, write_model_card
from codec.streams.hci import HCICodec, build_model
from training.stage_cli import stage_main

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


def train(out: str | Path, lmbda: float, steps: int, arch: str = "factorized", N: int = 48,
          M: int = 16, depth: int = 4, size: int = 64, batch_size: int = 16, lr: float = 1e-3,
          n_train: int = 16000, n_eval: int = 500, run_dir: str | Path | None = None,
          threads: int = 1, seed: int = 0, checkpoint_every: int = 250,
          init_from: str | Path | None = None, photos: str | Path | None = None,
          photo_fraction: float = 0.25) -> dict:
    if photos is None:
        photo_fraction = 0.0
    if not 0.0 <= photo_fraction <= 1.0:
        raise ValueError(f"photo_fraction must be in [0, 1]; got {photo_fraction}")
    n_photo = round(photo_fraction * batch_size)
    torch.set_num_threads(threads)
    out = Path(out)
    run_dir = Path(run_dir) if run_dir else ROOT / "runs" / "hci" / out.name
    run_dir.mkdir(parents=True, exist_ok=True)
    cache = ROOT / "runs" / "hci-data"
    train_images = torch.from_numpy(scene_array(n_train, TRAIN_SEED, size, cache))
    train_images = train_images.permute(0, 3, 1, 2).contiguous()  # uint8 (n, 3, H, W)
    if n_photo:
        from benchmark.photos import train_tiles

        photo_images = torch.from_numpy(train_tiles(photos, size)).permute(0, 3, 1, 2).contiguous()

    model_cfg = {"arch": arch, "N": N, "M": M, "depth": depth}
    torch.manual_seed(seed)
    model = build_model(model_cfg)
    aux_params = {n for n, _ in model.named_parameters() if n.endswith(".quantiles")}
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if n not in aux_params], lr=lr)
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

    def save_ckpt():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                    "aux_opt": aux_opt.state_dict(), "step": step, "rng": torch.get_rng_state(),
                    "model_config": model_cfg, "lmbda": lmbda, "init_from": init_from,
                    "init_step": init_step, "n_photo": n_photo}, ckpt_path)

    num_pixels = size * size
    model.train()
    t0 = time.time()
    log = open(run_dir / "train.log", "a")
    while step < steps:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, len(train_images), (batch_size - n_photo,), generator=g)
        x = train_images[idx]
        if n_photo:
            pidx = torch.randint(0, len(photo_images), (n_photo,), generator=g)
            x = torch.cat([x, photo_images[pidx]])
        x = x.float() / 255.0
        flip = torch.rand(batch_size, generator=g) < 0.5
        x[flip] = x[flip].flip(-1)
        for group in opt.param_groups:  # step decay: ×0.1 for the last 15 %
            group["lr"] = lr * (0.1 if step >= 0.85 * steps else 1.0)
        out_ = model(x)
        mse = F.mse_loss(out_["x_hat"], x)
        bits = sum(-torch.log2(v).sum() for v in out_["likelihoods"].values()) / batch_size
        loss = lmbda * 255 ** 2 * mse + bits / num_pixels
        aux = optimizer_step(model, loss, opt, aux_opt)
        step += 1
        if step % 50 == 0 or step == steps:
            msg = (f"step {step} loss {loss.item():.4f} bits/img {bits.item():.1f} "
                   f"psnr {10 * math.log10(1 / max(mse.item(), 1e-10)):.2f} aux {aux.item():.1f} "
                   f"{(time.time() - t0):.0f}s")
            print(msg, flush=True)
            log.write(msg + "\n")
            log.flush()
        if step % checkpoint_every == 0 or step == steps:
            save_ckpt()

    model.eval()
    model.update(force=True)
    codec = HCICodec(model, working_size=size, fit="resize", check_bits=0)
    eval_images = scene_array(n_eval, EVAL_SEED, size, cache)
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
        **run_record("training.hci"),
        "model": model_cfg,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "lmbda": lmbda, "steps": steps,
        "initialized_from": None if not init_from else
        f"{init_from} at step {init_step} (steps count from it)",
        "batch_size": batch_size, "lr": lr,
        "train_data": f"procedural scenes 0..{n_train - 1} of seed {TRAIN_SEED} at {size}x{size}"
                      + (f" ({batch_size - n_photo} per batch) and the train tiles of the photo "
                         f"set {photos} resized to {size}x{size} ({n_photo} per batch)"
                         if n_photo else "") + ", random horizontal flips",
        "eval_data": f"procedural scenes 0..{n_eval - 1} of seed {EVAL_SEED} at {size}x{size}",
        "eval": metrics,
        **({"eval_photos_data": photo_desc, "eval_photos": photo_metrics} if photos else {}),
        "entropy_coder": codec.config()["entropy_coder"],
        "note": "bits are real HCI bytes ×8 (1-bit size flag included); trained on CPU",
    }
    write_model_card(out, card)
    print(json.dumps(card["eval"]), flush=True)
    return card


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This trainer's flags (``python -m training.hci`` and ``sdgic train hci``)."""
    p.add_argument("--out", required=True, help="folder for config.json/model.safetensors/card")
    p.add_argument("--lmbda", type=float, required=True, help="rate–distortion trade-off")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--arch", choices=["factorized", "hyperprior"], default="factorized")
    p.add_argument("--N", type=int, default=48)
    p.add_argument("--M", type=int, default=16)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-train", type=int, default=16000)
    p.add_argument("--n-eval", type=int, default=500)
    p.add_argument("--run-dir", default=None, help="checkpoint folder (default runs/hci/<name>)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--photos", default=None,
                   help="photo set (sdgic data photos) to mix into training and evaluation")
    p.add_argument("--photo-fraction", type=float, default=0.25,
                   help="share of each batch taken from the photo train tiles")
    p.add_argument("--init-from", default=None,
                   help="checkpoint.pt of another run to start from (model, optimizers, step)")


def run(a: argparse.Namespace) -> None:
    """Train one fixed-rate HCI point with parsed flags (see :func:`add_arguments`)."""
    train(a.out, a.lmbda, a.steps, arch=a.arch, N=a.N, M=a.M, depth=a.depth, size=a.size,
          batch_size=a.batch_size, lr=a.lr, n_train=a.n_train, n_eval=a.n_eval,
          run_dir=a.run_dir, threads=a.threads, seed=a.seed, init_from=a.init_from,
          photos=a.photos, photo_fraction=a.photo_fraction)


def main(argv=None, prog: str | None = None):
    stage_main(__doc__, add_arguments, run, argv, prog)


if __name__ == "__main__":
    main()
