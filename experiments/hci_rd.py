"""HCI rate–distortion on scenes, beside JPEG and WebP at their lowest qualities.

    python -m experiments.hci_rd --weights codec/weights/hci-64 --n 500 --size 64
    python -m experiments.hci_rd --bench codec/weights/hci-64/mid   # 512×384, 768×512 timing

For every HCI rate point (a folder with config.json) and every JPEG quality 1..10 and WebP
quality 0..10 (Pillow), codes the eval scenes (seed 6007) and reports mean bits/image (real
bytes), bpp, PSNR, MS-SSIM and Inception-v3 feature similarity. Writes
``results/hci/rd_scenes<size>.csv``, ``.json`` (command, budget, summary) and ``.png``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

EVAL_SEED = 6007
BUDGET_BPP = 0.05


def _ms_ssim(metrics, ref, rec) -> float:
    """MS-SSIM; pytorch-msssim asserts a side > 96 px whatever the scale count, so images
    smaller than that are compared after a 2× bilinear upsampling of both (noted in the JSON)."""
    try:
        return float(metrics.ms_ssim(ref, rec).mean())
    except AssertionError:
        x = metrics.resize_to(ref, 2 * ref.shape[1], 2 * ref.shape[2])
        y = metrics.resize_to(rec, 2 * rec.shape[1], 2 * rec.shape[2])
        return float(metrics.ms_ssim(x, y).mean())


def _pillow(images: np.ndarray, fmt: str, quality: int):
    from PIL import Image

    sizes, recs = [], []
    for img in images:
        buf = io.BytesIO()
        kw = {"quality": quality}
        if fmt == "JPEG":
            kw.update(optimize=True)
        else:
            kw.update(method=6)
        Image.fromarray(img).save(buf, format=fmt, **kw)
        sizes.append(buf.tell())
        recs.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return np.array(sizes) * 8, np.stack(recs)


def _hci(images: np.ndarray, folder: Path):
    from codec.streams.hci import HCICodec

    codec = HCICodec.from_pretrained(folder)
    bits, recs = [], []
    t0 = time.perf_counter()
    for img in images:
        data = codec.encode(img)
        bits.append(8 * len(data))
        recs.append(codec.decode(data))
    sec = (time.perf_counter() - t0) / len(images)
    return np.array(bits), np.stack(recs), sec


def bench_sizes(folder: str, out: str, repeats: int = 3) -> dict:
    """Encode/decode time (best of ``repeats``) and peak RSS for 512×384 and 768×512 images in
    both fit modes; writes ``<out>/bench_sizes.json``."""
    import resource

    from codec.data.scenes import generate
    from codec.streams.hci import HCICodec

    big, _ = generate(0, seed=EVAL_SEED, size=768)
    images = {"512x384": np.ascontiguousarray(big[:384, :512]),
              "768x512": np.ascontiguousarray(big[:512, :768])}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = {"command": "python -m experiments.hci_rd " + " ".join(sys.argv[1:]),
           "weights": str(folder), "threads": torch.get_num_threads(),
           "rss_before_mib": rss0, "runs": []}
    for fit in ("resize", "pad"):
        codec = HCICodec.from_pretrained(folder)
        codec.fit = fit
        for name, img in images.items():
            te, td = [], []
            for _ in range(repeats):
                t = time.perf_counter()
                data = codec.encode(img)
                te.append(time.perf_counter() - t)
                t = time.perf_counter()
                rec = codec.decode(data)
                td.append(time.perf_counter() - t)
            assert rec.shape == img.shape
            r = {"image": name, "fit": fit, "bytes": len(data), "encode_s": min(te),
                 "decode_s": min(td),
                 "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            print(r, flush=True)
            res["runs"].append(r)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "bench_sizes.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="codec/weights/hci-64")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--out", default="results/hci")
    p.add_argument("--no-inception", action="store_true")
    p.add_argument("--inception-n", type=int, default=100,
                   help="images per setting for Inception similarity (CPU cost)")
    p.add_argument("--inception-settings", default="HCI,JPEG:q1,JPEG:q10,WebP:q0,WebP:q10",
                   help="codec or codec:setting entries that get Inception similarity")
    p.add_argument("--bench", default=None, help="rate-point folder: time large images only")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.bench:
        bench_sizes(a.bench, a.out)
        return

    import pandas as pd

    from codec import metrics
    from codec.data.scene_dataset import render_scenes

    images, _ = render_scenes(a.n, seed=EVAL_SEED, size=a.size)
    h, w = images.shape[1:3]
    incep = None if a.no_inception else metrics.inception_features()
    n_inc = min(a.inception_n, len(images))
    ref_feats = None if incep is None else incep(images[:n_inc])
    want = set(a.inception_settings.split(","))

    def row(codec, setting, bits, recs, sec=None):
        r = {"codec": codec, "setting": setting, "bits_per_image": float(bits.mean()),
             "bits_min": int(bits.min()), "bpp": float(bits.mean() / (h * w)),
             "psnr_db": float(metrics.psnr(images, recs).mean()),
             "ms_ssim": _ms_ssim(metrics, images, recs)}
        r["inception_sim"] = float("nan")
        if incep is not None and (codec in want or f"{codec}:{setting}" in want):
            f = incep(recs[:n_inc])
            sim = (f * ref_feats).sum(1) / (np.linalg.norm(f, axis=1)
                                           * np.linalg.norm(ref_feats, axis=1) + 1e-12)
            r["inception_sim"] = float(sim.mean())
        r["within_budget"] = bool(r["bpp"] <= BUDGET_BPP)
        if sec is not None:
            r["sec_per_image"] = sec
        print(r, flush=True)
        return r

    rows = []
    folders = sorted(f for f in Path(a.weights).iterdir() if (f / "config.json").is_file())
    for f in folders:
        bits, recs, sec = _hci(images, f)
        rows.append(row("HCI", f.name, bits, recs, sec))
    for q in range(1, 11):
        rows.append(row("JPEG", f"q{q}", *_pillow(images, "JPEG", q)))
    for q in range(0, 11):
        rows.append(row("WebP", f"q{q}", *_pillow(images, "WEBP", q)))

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"rd_scenes{a.size}"
    df = pd.DataFrame(rows)
    df.to_csv(out / f"{stem}.csv", index=False)
    summary = {
        "command": "python -m experiments.hci_rd " + " ".join(sys.argv[1:]),
        "data": f"{a.n} procedural scenes of seed {EVAL_SEED} at {a.size}x{a.size}",
        "inception_sim": f"first {n_inc} images, settings {sorted(want)} only (CPU cost)",
        "ms_ssim": "pytorch-msssim needs a side > 96 px: below that both images are upsampled 2× "
                   "(bilinear, codec.metrics.resize_to) before MS-SSIM",
        "total_budget_bpp": BUDGET_BPP,
        "total_budget_bits_per_image": BUDGET_BPP * h * w,
        "min_bits_per_image": {c: float(df[df.codec == c].bits_per_image.min())
                               for c in df.codec.unique()},
        "rows": rows,
    }
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in ("psnr_db", "ms_ssim", "inception_sim") if c in df]
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.4))
    for ax, col in zip(np.atleast_1d(axes), cols):
        for codec, marker in (("HCI", "o-"), ("JPEG", "s-"), ("WebP", "^-")):
            d = df[(df.codec == codec) & df[col].notna()].sort_values("bpp")
            ax.plot(d.bpp, d[col], marker, label=codec, ms=4)
        ax.axvline(BUDGET_BPP, color="k", ls="--", lw=1, label="total budget 0.05 bpp")
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3, which="both")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(f"HCI vs JPEG/WebP lowest qualities, {a.n} scenes {a.size}×{a.size}")
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=130)
    print(json.dumps(summary["min_bits_per_image"]))


if __name__ == "__main__":
    main()
