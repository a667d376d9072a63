"""Do the RSRT tokens carry anything, and does the decoder use it? → results/dpcd/token_probe.json

    python -m experiments.token_probe --presets scenes-64 [--n 64] [--loss-images 128]

Two measurements per preset, on held-out scenes (seed 7007, as ``experiments/dpcd_eval.py``),
captions from the shipped scene captioner, HCI at the preset's default rate point:

1. **Denoising loss** (v-prediction MSE, no SNR weighting) of the preset on ``--loss-images``
   scenes at the same noise draws, with the tokens the encoder makes (``all``), every token
   lost (``none``: the mask embedding) and another image's tokens (``shuffled``), with and
   without the caption, split by noise level (t < 300, 300-699, ≥ 700 of 1000). ``none`` ≈
   ``all`` means the tokens carry little the caption and HCI do not; ``shuffled`` ≫ ``all``
   means the decoder reads them.
2. **Paired judge consistency** of SDGIC (caption + HCI + RSRT) against no-RSRT (caption +
   HCI) on ``--n`` scenes, same seeds: the issue's "RSRT adds ≥ 10 points" target.

Several presets (e.g. two training branches) are measured on the same scenes and noise, so
their rows compare directly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.codec_eval import EVAL_SEED, decode_in_batches
from benchmark.evaluate import score_images
from benchmark.scene_dataset import render_scenes
from benchmark.stats import ci95
from codec.dpcd.decoder import denoise, training_scheduler
from codec.preset import PRECISIONS
from codec.sdgic import SDGIC

NOISE_BANDS = ((0, 300), (300, 700), (700, 1000))
TOKEN_CASES = ("all", "none", "shuffled")


@torch.no_grad()
def denoising_loss(codec: SDGIC, images: np.ndarray, captions: list[str], batch: int = 32,
                   repeats: int = 3, seed: int = 0) -> list[dict]:
    """Rows {caption, tokens, t_from, t_to, loss, n}: mean v-MSE per case and noise band (fp32).
    ``shuffled`` gives image i the tokens of image i + 1 (mod N) of the whole set."""
    if codec.rsrt_encoder is None:
        raise ValueError(f"preset {codec.preset!r} has no RSRT path to probe")
    if len(images) < 2:
        raise ValueError("the loss probe needs at least 2 images (shuffled tokens)")
    sched = training_scheduler()
    x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255
    hci = codec.hci[codec.rate].reconstruct_batch(x)    # at the HCI's working size
    r = codec.resolution
    if x.shape[-1] != r:                                 # the decoder's resolution
        x, hci = (F.interpolate(v, size=(r, r), mode="bilinear", antialias=True,
                                align_corners=False).clamp(0, 1) for v in (x, hci))
    conds, codes = {}, {}
    for with_caption in (True, False):
        conds[with_caption] = codec.text_encoder.tokens(
            list(captions) if with_caption else [""] * len(x))
        pooled = codec.text_encoder.pool(*conds[with_caption]) * float(with_caption)
        codes[with_caption] = codec.rsrt_encoder.encode(x, hci, pooled)
    g = torch.Generator().manual_seed(seed)
    losses: dict[tuple, list[float]] = {}
    for i in range(0, len(x), batch):
        sl = slice(i, i + batch)
        x0, hci_z = codec.space.encode(x[sl]), codec.space.encode(hci[sl])
        b = len(x0)
        for with_caption in (True, False):
            cond, mask = (v[sl] for v in conds[with_caption])
            ones = torch.ones(b, codes[with_caption].shape[1], dtype=torch.bool)
            cases = {"all": (codes[with_caption][sl], ones),
                     "none": (codes[with_caption][sl], ~ones),
                     "shuffled": (codes[with_caption].roll(-1, 0)[sl], ones)}
            for _ in range(repeats):
                noise = torch.randn(x0.shape, generator=g)
                t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=g)
                xt, target = sched.add_noise(x0, noise, t), sched.get_velocity(x0, noise, t)
                for name, (c, present) in cases.items():
                    e = codec.rsrt_embedding(codes=c, present=present)
                    pred = denoise(codec.unet, xt, t, torch.cat([cond, e], 1),
                                   torch.cat([mask, ones], 1), codec.controlnet, hci_z)
                    per = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
                    for lo, hi in NOISE_BANDS:
                        sel = (t >= lo) & (t < hi)
                        losses.setdefault((with_caption, name, lo, hi), []).extend(
                            per[sel].tolist())
    return [{"caption": cap, "tokens": name, "t_from": lo, "t_to": hi,
             "loss": float(np.mean(v)), "n": len(v)}
            for (cap, name, lo, hi), v in losses.items() if v]


def run(presets: list[str], n: int, loss_images: int, out: Path, batch: int = 16,
        precision: str | None = None) -> dict:
    """Probe each preset (see the module docstring); ``precision``: the decoder arithmetic of
    the consistency decodes (None: each preset's). Writes ``out/token_probe.json``."""
    from benchmark.captioner import SceneCaptioner

    m = max(n, loss_images)
    images, scenes = render_scenes(m, seed=EVAL_SEED, size=64)    # the HCI's working size
    captioner = SceneCaptioner()
    res = {"n": n, "loss_images": loss_images, "eval_seed": EVAL_SEED, "presets": []}
    for preset in presets:
        codec = SDGIC.from_pretrained(preset, **({"precision": precision} if precision else {}))
        row = {"preset": preset, "card_stages": {k: v.get("steps") for k, v in
                                                 codec.card.get("stages", {}).items()},
               "rate": codec.rate, "guidance_scale": codec.guidance_scale,
               "precision": codec.precision, "caption_detail": codec.caption_detail}
        captions = captioner(images, detail=codec.caption_detail)
        row["denoising_loss"] = denoising_loss(codec, images[:loss_images],
                                               captions[:loss_images])
        enc = [codec.encode(im, caption=c) for im, c in zip(images[:n], captions[:n])]
        cons = {}
        for name, es in (("sdgic", enc), ("no_rsrt", [e.without("rsrt") for e in enc])):
            recs = decode_in_batches(codec, es, codec.steps, batch, f"{preset} {name}")
            df, _ = score_images(images[:n], recs, scenes[:n], inception=False,
                                 captioner=captioner)
            cons[name] = df["consistency"].to_numpy(float)
        d = cons["sdgic"] - cons["no_rsrt"]
        row["consistency"] = {k: float(v.mean()) for k, v in cons.items()}
        row["rsrt_gain"] = float(d.mean())
        row["rsrt_gain_ci95"] = ci95(d)
        res["presets"].append(row)
        print(json.dumps({k: row[k] for k in ("preset", "consistency", "rsrt_gain",
                                              "rsrt_gain_ci95")}), flush=True)
    precisions = sorted({p["precision"] for p in res["presets"]})
    res["command"] = (f"python -m experiments.token_probe --presets {','.join(presets)} "
                      f"--n {n} --loss-images {loss_images}"
                      + (f" --precision {precisions[0]}" if len(precisions) == 1 else "")
                      + f" --threads {torch.get_num_threads()} --out {out}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "token_probe.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="scenes-64", help="comma-separated presets or folders")
    p.add_argument("--n", type=int, default=64, help="scenes decoded for the consistency gain")
    p.add_argument("--loss-images", type=int, default=128, help="scenes for the loss probe")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="decoder arithmetic of the consistency decodes (default: the preset's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/dpcd")
    a = p.parse_args(argv)
    if a.n < 2 or a.loss_images < 2:
        p.error("--n and --loss-images must be at least 2")
    torch.set_num_threads(a.threads)
    run([s for s in a.presets.split(",") if s], a.n, a.loss_images, Path(a.out),
        precision=a.precision)


if __name__ == "__main__":
    main()
