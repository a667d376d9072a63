"""Train the variable-rate HCI for photographs at their own size (resumable).

    python -m training.hci_photos --run runs/hci-photos --photos data/photos \\
        --steps 40000 --threads 1
    python -m training.hci_photos --run runs/hci-photos --photos data/photos \\
        --export codec/weights/hci-photos          # write the rate points, measure them

One ``HCIGainedMeanScale`` learns every rate point at once: each crop of a batch draws a rate
index r and is trained with ``lmbdas[r] · 255² · MSE + bits/pixel`` (CompressAI's convention),
plus the entropy bottleneck's quantile loss on its own optimizer. Crops are native-scale: a
random window of a whole train photo (``sdgic data photos``: ``full/train``) rescaled by a
log-uniform factor so that the photo's long side lands in ``[--min-side, --max-side]``
(never enlarged beyond the stored photo), then random horizontal flips and mild colour jitter
(brightness, contrast, saturation ±``--jitter``). Everything random comes from a generator
seeded by (seed, step), so a resumed run sees the same batches.

``--run`` holds ``checkpoint.pt`` (model, both optimizers, step; written atomically every
``--checkpoint-every`` steps and on SIGTERM) and ``train.log``. Re-running the same command
resumes; on a fresh machine, ``--init codec/weights/hci-photos`` starts from the committed
weights. ``--export`` writes ``model.safetensors`` once and one folder per rate point holding
only ``config.json`` (``"weights": "../model.safetensors"``), measures every point on the val
photos at their own size, and writes ``model_card.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from codec.provenance import git_commit, write_model_card
from codec.streams.hci import CONFIG_NAME, WEIGHTS_NAME, HCICodec, build_model
from training.hci import optimizer_step
from training.stage_cli import stage_main

DEFAULT_LMBDAS = (2e-6, 8e-6, 3e-5, 1.2e-4)
RATE_NAMES = ("low", "mid", "high", "top")


def load_photos(paths) -> list[np.ndarray]:
    """uint8 (H, W, 3) arrays of the given photo files."""
    from codec.image_io import load_rgb

    return [load_rgb(p) for p in paths]


def native_crops(photos: list[np.ndarray], n: int, crop: int, g: torch.Generator,
                 min_side: int, max_side: int, jitter: float) -> torch.Tensor:
    """``n`` random native-scale crops (module docstring): float (n, 3, crop, crop) in [0, 1]."""
    out = []
    for _ in range(n):
        a = photos[int(torch.randint(len(photos), (1,), generator=g))]
        h, w = a.shape[:2]
        long_side = max(h, w)
        hi = min(max_side, long_side)
        lo = min(min_side, hi)
        # the scaled photo must still hold a crop × crop window
        lo = max(lo, math.ceil(crop * long_side / min(h, w)))
        hi = max(hi, lo)
        u = float(torch.rand((), generator=g))
        side = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        f = side / long_side  # scale factor applied to the photo
        win = min(min(h, w), max(crop, round(crop / f)))  # source window side
        y = int(torch.randint(h - win + 1, (1,), generator=g))
        x = int(torch.randint(w - win + 1, (1,), generator=g))
        patch = Image.fromarray(a[y:y + win, x:x + win])
        if win != crop:
            patch = patch.resize((crop, crop), Image.BICUBIC, reducing_gap=None)
        out.append(torch.from_numpy(np.asarray(patch).copy()))
    x = torch.stack(out).permute(0, 3, 1, 2).float() / 255.0
    flip = torch.rand(n, generator=g) < 0.5
    x[flip] = x[flip].flip(-1)
    if jitter > 0:
        b = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=g) - 1)
        c = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=g) - 1)
        s = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=g) - 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean
        grey = x.mean(dim=1, keepdim=True)
        x = ((x - grey) * s + grey) * b
    return x.clamp_(0, 1)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(a) -> None:
    from benchmark.photo_library import full_photos

    torch.set_num_threads(a.threads)
    run = Path(a.run)
    run.mkdir(parents=True, exist_ok=True)
    lmbdas = torch.tensor(a.lmbdas, dtype=torch.float32)
    model_cfg = {"arch": "gained-meanscale", "N": a.N, "M": a.M, "depth": a.depth, "Nz": a.Nz,
                 "n_rates": len(a.lmbdas)}
    hparams = {k: getattr(a, k) for k in ("crop", "batch_size", "lr", "lmbdas", "min_side",
                                          "max_side", "jitter", "seed")}
    torch.manual_seed(a.seed)
    model = build_model(model_cfg)
    dev = torch.device(a.device)
    model.to(dev)  # before the optimizers, so their state follows the parameters
    aux_names = {n for n, _ in model.named_parameters() if n.endswith(".quantiles")}
    gain_names = {"log_gain", "log_igain"}  # few parameters that must move far: 10× the lr
    opt = torch.optim.Adam([
        {"params": [p for n, p in model.named_parameters()
                    if n not in aux_names | gain_names], "lr_scale": 1.0},
        {"params": [p for n, p in model.named_parameters() if n in gain_names],
         "lr_scale": 10.0}], lr=a.lr)
    aux_opt = torch.optim.Adam([p for n, p in model.named_parameters() if n in aux_names],
                               lr=1e-3)
    ckpt_path = run / "checkpoint.pt"
    step = warm_from = 0  # warm_from: the step the optimizers started fresh
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, weights_only=True)
        if ckpt["model_config"] != model_cfg:
            raise SystemExit(f"{ckpt_path} holds {ckpt['model_config']}, not {model_cfg}; "
                             "pass the same model flags or another --run")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        aux_opt.load_state_dict(ckpt["aux_opt"])
        step = ckpt["step"]
        warm_from = ckpt.get("warm_from", 0)
        print(f"resumed {ckpt_path} at step {step}", flush=True)
    elif a.init:  # a fresh machine: start from committed weights (fresh optimizers)
        from safetensors.torch import load_file

        card = json.loads((Path(a.init) / "model_card.json").read_text())
        if card["model"] != model_cfg:
            raise SystemExit(f"{a.init} holds {card['model']}, not {model_cfg}; pass the same "
                             "model flags")
        model.load_state_dict(load_file(str(Path(a.init) / WEIGHTS_NAME)))
        step = warm_from = int(card["steps"])  # fresh Adam moments: warm up again
        print(f"initialized from {a.init} at step {step}", flush=True)
    photos = load_photos(full_photos(a.photos, "train"))
    print(f"{len(photos)} train photos, model {model_cfg}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)

    def save():
        _save_atomic({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "opt": opt.state_dict(),
                      "aux_opt": aux_opt.state_dict(), "step": step, "warm_from": warm_from,
                      "model_config": model_cfg, "hparams": hparams,
                      "command": "python -m training.hci_photos "
                                 + " ".join(sys.argv[1:])}, ckpt_path)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    log = open(run / "train.log", "a")
    model.train()
    t0, acc = time.time(), []
    n_rates = len(a.lmbdas)
    deadline = time.time() + 60 * a.max_minutes if a.max_minutes else float("inf")
    while step < a.steps and not stop["now"] and time.time() < deadline:
        g = torch.Generator().manual_seed(a.seed * 1_000_003 + step)
        x = native_crops(photos, a.batch_size, a.crop, g, a.min_side, a.max_side, a.jitter)
        r = torch.randint(n_rates, (a.batch_size,), generator=g)
        x, r = x.to(dev), r.to(dev)
        # linear warm-up of fresh optimizers, then ×0.1 for the last 10 % of --steps
        warm = min(1.0, (step - warm_from + 1) / 200)
        for group in opt.param_groups:
            group["lr"] = (a.lr * group["lr_scale"] * warm
                           * (0.1 if step >= 0.9 * a.steps else 1.0))
        out = model(x, rate=r.float())
        mse = (out["x_hat"] - x).pow(2).mean(dim=(1, 2, 3))
        bits = sum(-torch.log2(v).sum(dim=(1, 2, 3)) for v in out["likelihoods"].values())
        bpp = bits / (a.crop * a.crop)
        loss = (lmbdas.to(dev)[r] * 255 ** 2 * mse + bpp).mean()
        aux = optimizer_step(model, loss, opt, aux_opt)
        step += 1
        acc.append((r, mse.detach(), bpp.detach()))
        if step % 50 == 0 or step == a.steps:
            rr = torch.cat([t[0] for t in acc])
            mm = torch.cat([t[1] for t in acc])
            bb = torch.cat([t[2] for t in acc])
            per = " ".join(
                f"r{k}:{bb[rr == k].mean():.4f}bpp/{-10 * torch.log10(mm[rr == k].mean()):.2f}dB"
                for k in range(n_rates) if (rr == k).any())
            msg = (f"step {step} loss {loss.item():.4f} {per} aux {aux.item():.1f} "
                   f"{(time.time() - t0) / len(acc):.2f}s/step")
            print(msg, flush=True)
            log.write(msg + "\n")
            log.flush()
            acc, t0 = [], time.time()
        if step % a.checkpoint_every == 0:
            save()
    save()
    print(f"saved {ckpt_path} at step {step}", flush=True)


@torch.no_grad()
def measure(codec: HCICodec, images: list[np.ndarray]) -> dict:
    """Real bitstreams at each image's own size: mean bpp and PSNR (dB) over ``images``."""
    from benchmark.metrics import psnr

    bpp, p = [], []
    for img in images:
        data = codec.encode(img)
        rec = codec.decode(data)
        bpp.append(8 * len(data) / (img.shape[0] * img.shape[1]))
        p.append(float(psnr(img[None], rec[None])[0]))
    return {"bpp": float(np.mean(bpp)), "psnr_db": float(np.mean(p)), "n_images": len(images)}


def settle_quantiles(model, steps: int = 3000, lr: float = 1e-2) -> tuple[float, float]:
    """Fit the entropy bottleneck's quantiles to its density (its auxiliary loss alone, the
    rest frozen): during training they trail a moving density, and ``update()`` takes the
    coder's range from them. Returns the auxiliary loss before and after."""
    names = {n for n, _ in model.named_parameters() if n.endswith(".quantiles")}
    frozen = [(p, p.requires_grad) for n, p in model.named_parameters() if n not in names]
    for p, _ in frozen:
        p.requires_grad_(False)
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if n in names], lr=lr)
    before = model.aux_loss().item()
    for _ in range(steps):
        loss = model.aux_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p, flag in frozen:
        p.requires_grad_(flag)
    return before, model.aux_loss().item()


def export(a) -> dict:
    """Write the rate points of ``--run``'s checkpoint to ``--export`` and measure them."""
    from safetensors.torch import save_file

    from benchmark.photo_library import full_photos

    ckpt_path = Path(a.run) / "checkpoint.pt"
    if not ckpt_path.is_file():
        raise SystemExit(f"no checkpoint at {ckpt_path}; train first")
    ckpt = torch.load(ckpt_path, weights_only=True)
    model = build_model(ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    aux = settle_quantiles(model)
    print(f"entropy-bottleneck quantiles settled: auxiliary loss {aux[0]:.1f} -> {aux[1]:.2f}",
          flush=True)
    model.eval()
    model.update(force=True)
    out = Path(a.export)
    out.mkdir(parents=True, exist_ok=True)
    model._coder()
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(out / WEIGHTS_NAME))
    val = [np.asarray(Image.open(p).convert("RGB")) for p in full_photos(a.photos, "val")]
    rates = [float(r) for r in (a.export_rates or range(model.n_rates))]
    names = list(a.export_names or RATE_NAMES[:len(rates)])
    if len(names) != len(rates):
        raise SystemExit(f"--export-names {names} and --export-rates {rates} differ in length")
    points = {}
    for name, rate in zip(names, rates):
        codec = HCICodec(model, fit="pad", rate=rate)
        d = out / name
        d.mkdir(exist_ok=True)
        cfg = {**codec.config(), "weights": f"../{WEIGHTS_NAME}"}
        (d / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
        points[name] = {"rate": rate, **measure(HCICodec.from_pretrained(d), val)}
        print(name, points[name], flush=True)
    card = {
        "name": out.name,
        "stream": "HCI (highly compressed image) of SDGIC, photographs at their own size",
        "command": ckpt.get("command"),
        "export_command": "python -m training.hci_photos " + " ".join(sys.argv[1:]),
        "commit": git_commit(),
        "model": ckpt["model_config"],
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "steps": ckpt["step"], "hparams": ckpt.get("hparams"),
        "train_data": "random native-scale crops of the whole train photos of `sdgic data "
                      "photos` (full/train; benchmark.photo_library), flips, colour jitter",
        "eval_data": f"the {len(val)} val photos (full/val) at their stored size",
        "rate_points": points,
        "entropy_coder": f"{HCICodec(model, fit='pad', rate=0.0).config()['entropy_coder']}",
        "status": "in-progress",
        "aux_loss_before_after_settling": [round(aux[0], 2), round(aux[1], 3)],
        "note": "bits are real HCI bytes ×8; trained on CPU",
    }
    write_model_card(out, card)
    return card


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This trainer's flags (``python -m training.hci_photos`` and ``sdgic train hci-photos``)."""
    p.add_argument("--run", required=True, help="checkpoint folder (resumes when it has one)")
    p.add_argument("--photos", required=True, help="a `sdgic data photos` folder")
    p.add_argument("--steps", type=int, default=40000)
    p.add_argument("--N", type=int, default=96)
    p.add_argument("--M", type=int, default=96)
    p.add_argument("--Nz", type=int, default=32)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--lmbdas", type=float, nargs="+", default=list(DEFAULT_LMBDAS),
                   help="one rate–distortion trade-off per rate point, increasing")
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--min-side", type=int, default=512, help="long side of the scaled photo")
    p.add_argument("--max-side", type=int, default=1536)
    p.add_argument("--jitter", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--device", default="cpu", help="torch device (cuda on a lent GPU)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (and save) after this many minutes")
    p.add_argument("--init", metavar="FOLDER",
                   help="an exported HCI folder to start from when --run has no checkpoint "
                        "(its step count carries on; optimizers start fresh)")
    p.add_argument("--export", metavar="FOLDER", help="write the rate points instead of training")
    p.add_argument("--export-rates", type=float, nargs="+",
                   help="rate values to export (default: each trained point)")
    p.add_argument("--export-names", nargs="+", help="their folder names")


def run(a: argparse.Namespace) -> None:
    """Train (or with ``--export``, export) with parsed flags (see :func:`add_arguments`)."""
    if sorted(a.lmbdas) != list(a.lmbdas) or min(a.lmbdas) <= 0:
        raise SystemExit(f"--lmbdas {a.lmbdas} must be positive and increasing")
    export(a) if a.export else train(a)


def main(argv=None, prog: str | None = None):
    stage_main(__doc__, add_arguments, run, argv, prog)


if __name__ == "__main__":
    main()
