"""Semantic consistency vs classifier-free guidance scale → results/dpcd/guidance.{json,png}.

    python -m experiments.guidance_sweep --preset scenes-64 --n 64 --scales 1,2,3.5,5,7.5

Held-out scenes (seed 7007, as ``experiments/dpcd_eval.py``), captions from the shipped scene
captioner, HCI at the preset's default rate point. Every scale decodes the same encodings with
the same per-image seeds, so differences against scale 1 are paired: the JSON gives each
scale's mean consistency with a 95 % CI, and the paired mean difference to scale 1 with its
95 % CI. Two stream sets: everything (``sdgic``) and the caption alone (``caption``). The
decode time per image at each scale is recorded too (guidance doubles the UNet batch).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from codec.data.scene_dataset import render_scenes
from codec.evaluate import score_images
from codec.sdgic import SDGIC
from experiments.dpcd_eval import _decode

EVAL_SEED = 7007


def _ci95(v: np.ndarray) -> float:
    return float(1.96 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def run(preset: str, n: int, scales: list[float], out: Path, steps: int | None = None,
        batch: int = 16) -> dict:
    from codec.captioner import SceneCaptioner

    codec = SDGIC.from_pretrained(preset)
    images, scenes = render_scenes(n, seed=EVAL_SEED, size=codec.resolution)
    captioner = SceneCaptioner()
    captions = captioner(images)
    enc = [codec.encode(im, caption=c) for im, c in zip(images, captions)]
    sets = {"sdgic": enc, "caption": [e.without("hci", "rsrt") for e in enc]}
    per, res = {}, {"preset": preset, "card_stages": {k: v.get("steps") for k, v in
                                                      codec.card.get("stages", {}).items()},
                    "n": n, "eval_seed": EVAL_SEED, "rate": codec.rate,
                    "steps": steps or codec.steps, "precision": codec.precision, "rows": []}
    for name, es in sets.items():
        for g in scales:
            t0 = time.perf_counter()
            recs = _decode(codec, es, steps or codec.steps, batch, f"{name} g={g:g}", g)
            sec = (time.perf_counter() - t0) / n
            df, _ = score_images(images, recs, scenes, inception=False,
                                 captioner=captioner)
            c = df["consistency"].to_numpy(float)
            per[(name, g)] = c
            row = {"streams": name, "guidance_scale": g, "consistency": float(c.mean()),
                   "consistency_ci95": _ci95(c), "seconds_per_image": round(sec, 3)}
            if g != 1.0:
                d = c - per[(name, 1.0)]
                row.update(diff_vs_1=float(d.mean()), diff_vs_1_ci95=_ci95(d))
            res["rows"].append(row)
            print(json.dumps(row), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    res["command"] = (f"python -m experiments.guidance_sweep --preset {preset} --n {n} "
                      f"--scales {','.join(f'{g:g}' for g in scales)} --out {out}")
    (out / "guidance.json").write_text(json.dumps(res, indent=2) + "\n")
    _plot(res, out / "guidance.png")
    return res


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name in dict.fromkeys(r["streams"] for r in res["rows"]):
        rows = [r for r in res["rows"] if r["streams"] == name]
        ax.errorbar([r["guidance_scale"] for r in rows], [r["consistency"] for r in rows],
                    yerr=[r["consistency_ci95"] for r in rows], marker="o", capsize=3,
                    label={"sdgic": "caption + HCI + RSRT", "caption": "caption only"}[name])
    ax.set_xlabel("classifier-free guidance scale")
    ax.set_ylabel("semantic consistency (judge)")
    ax.set_title(f"{res['preset']}, {res['n']} held-out scenes, HCI {res['rate']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="scenes-64")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--scales", default="1,2,3.5,5,7.5",
                   help="comma-separated guidance scales; 1 (no guidance) is added if missing")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: preset's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/dpcd")
    a = p.parse_args(argv)
    scales = [float(s) for s in a.scales.split(",")]
    if any(s <= 0 for s in scales):
        p.error(f"guidance scales must be positive; got {a.scales}")
    scales = sorted(set(scales) | {1.0})
    torch.set_num_threads(a.threads)
    run(a.preset, a.n, scales, Path(a.out), a.steps)


if __name__ == "__main__":
    main()
