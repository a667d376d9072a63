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

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from codec.provenance import git_commit, write_model_card
from codec.streams.hci import CONFIG_NAME, WEIGHTS_NAME, HCICodec, build_model
from training.harness import TrainLoop, save_atomic, warmup_then_decay
from training.hci import optimizer_step
from training.stage_cli import stage_main
from training.stages import HCIPhotosConfig

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


def train(a: HCIPhotosConfig) -> None:
    """Train (or resume) the variable-rate photo HCI ``a`` describes (module docstring)."""
    from benchmark.photo_library import full_photos

    torch.set_num_threads(a.threads)
    run = Path(a.run)
    run.mkdir(parents=True, exist_ok=True)
    lmbdas = torch.tensor(a.lmbdas, dtype=torch.float32)
    model_cfg = {"arch": "gained-meanscale", "N": a.N, "M": a.M, "depth": a.depth, "Nz": a.Nz,
                 "n_rates": len(a.lmbdas)}
    hparams = {k: getattr(a, k) for k in ("crop", "batch_size", "lr", "min_side", "max_side",
                                          "jitter", "seed")}
    hparams["lmbdas"] = list(a.lmbdas)
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
            raise ValueError(f"{ckpt_path} holds {ckpt['model_config']}, not {model_cfg}; "
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
            raise ValueError(f"{a.init} holds {card['model']}, not {model_cfg}; pass the same "
                             "model flags")
        model.load_state_dict(load_file(str(Path(a.init) / WEIGHTS_NAME)))
        step = warm_from = int(card["steps"])  # fresh Adam moments: warm up again
        print(f"initialized from {a.init} at step {step}", flush=True)
    for group in opt.param_groups:   # this run's rates, times each group's scale
        group["lr"] = a.lr * group["lr_scale"]
    photos = load_photos(full_photos(a.photos, "train"))
    print(f"{len(photos)} train photos, model {model_cfg}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    command = a.command or a.command_line("python -m training.hci_photos")

    def save(done: int, loss: float) -> None:
        save_atomic({"model": {k: v.cpu() for k, v in model.state_dict().items()},
                     "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(), "step": done,
                     "warm_from": warm_from, "model_config": model_cfg, "hparams": hparams,
                     "config": a.record(), "command": command}, ckpt_path)

    n_rates = len(a.lmbdas)
    lmbdas = lmbdas.to(dev)

    def step_fn(step: int) -> dict:
        g = torch.Generator().manual_seed(a.seed * 1_000_003 + step)
        x = native_crops(photos, a.batch_size, a.crop, g, a.min_side, a.max_side, a.jitter)
        r = torch.randint(n_rates, (a.batch_size,), generator=g)
        x, r = x.to(dev), r.to(dev)
        out = model(x, rate=r.float())
        mse = (out["x_hat"] - x).pow(2).mean(dim=(1, 2, 3))
        bits = sum(-torch.log2(v).sum(dim=(1, 2, 3)) for v in out["likelihoods"].values())
        bpp = bits / (a.crop * a.crop)
        loss = (lmbdas[r] * 255 ** 2 * mse + bpp).mean()
        aux = optimizer_step(model, loss, opt, aux_opt)
        return {"loss": loss.detach(), "r": r, "mse": mse.detach(), "bpp": bpp.detach(),
                "aux": aux.detach()}

    def log_line(done: int, window: list[dict], sec_per_step: float) -> str:
        rr, mm, bb = (torch.cat([w[k] for w in window]) for k in ("r", "mse", "bpp"))
        per = " ".join(
            f"r{k}:{bb[rr == k].mean():.4f}bpp/{-10 * torch.log10(mm[rr == k].mean()):.2f}dB"
            for k in range(n_rates) if (rr == k).any())
        return (f"step {done} loss {float(window[-1]['loss']):.4f} {per} "
                f"aux {float(window[-1]['aux']):.1f} {sec_per_step:.2f}s/step")

    model.train()
    # linear warm-up of fresh optimizers, then ×0.1 for the last 10 % of --steps
    loop = TrainLoop("hci-photos", step, a.steps, run / "train.log", [opt],
                     warmup_then_decay(200, warm_from, a.steps, 0.9), log_every=50,
                     save_every=a.checkpoint_every, max_minutes=a.max_minutes,
                     log_line=log_line, echo=True, progress=False)
    loop.run(step_fn, save)
    print(f"saved {ckpt_path} at step {loop.done}", flush=True)


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

    def step_fn(step: int) -> dict:
        loss = model.aux_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    TrainLoop("settle quantiles", 0, steps, progress=False).run(step_fn)
    for p, flag in frozen:
        p.requires_grad_(flag)
    return before, model.aux_loss().item()


def export(a: HCIPhotosConfig) -> dict:
    """Write the rate points of ``--run``'s checkpoint to ``--export`` and measure them."""
    from safetensors.torch import save_file

    from benchmark.photo_library import full_photos

    ckpt_path = Path(a.run) / "checkpoint.pt"
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {ckpt_path}; train first")
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
        raise ValueError(f"--export-names {names} and --export-rates {rates} differ in length")
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
        "export_command": a.command or a.command_line("python -m training.hci_photos"),
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


def run_hci_photos(cfg: HCIPhotosConfig):
    """Train, or with ``cfg.export`` export (module docstring)."""
    cfg.check()
    return export(cfg) if cfg.export else train(cfg)


def main(argv=None, prog: str | None = None):
    stage_main("hci-photos", argv, prog)


if __name__ == "__main__":
    main()
