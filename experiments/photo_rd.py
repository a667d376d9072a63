"""Photos at their own size: the HCI rate points beside JPEG, WebP and AVIF, native and
downscaled, at equal bits, paired per photo.

    python -m experiments.photo_rd --hci codec/weights/hci-photos \\
        --images data/photos/test/512 --out results/hci/photo_rd_test512

For every photo of ``--images`` (any folder; Kodak or CLIC work the same, at their own size):

- each HCI rate point (a sub-folder of ``--hci`` with ``config.json``), as one stream and as
  slices (``--slice-rows``): real bytes, PSNR, MS-SSIM;
- each classical codec (Pillow: JPEG, WebP, AVIF) at qualities ``--qualities``, coded at the
  native size and after a bicubic (antialiased) downscale by each of ``--factors``, decoded
  and upscaled back (bicubic): the realistic classical choice at these rates;
- **the best classical at equal bits**: per photo, the upper envelope of PSNR over every
  classical point whose bits do not exceed the HCI's (the best a user could pick per photo,
  knowing the source), compared with the HCI point on the same photo.

Writes ``<out>.csv`` (one row per photo × codec point), ``<out>.json`` (command, commit, CPU,
summary with 95 % t intervals over photos) and ``<out>.png`` (PSNR against bpp).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from codec.provenance import run_record

FORMATS = ("JPEG", "WEBP", "AVIF")


def _t_interval(x: np.ndarray) -> tuple[float, float]:
    from benchmark.stats import mean_interval

    if len(x) < 2:
        return float("nan"), float("nan")
    return mean_interval(x)[1:]


def run(hci: Path, images: Path, out: Path, qualities, factors, slice_rows: int) -> dict:
    import pandas as pd
    import torch
    from tqdm import tqdm

    from benchmark.metrics import ms_ssim, psnr
    from codec.classical import code_image
    from codec.image_io import ImageFolder
    from codec.streams.hci import HCICodec
    from codec.streams.hci_sliced import SlicedHCI

    torch.set_num_threads(1)
    folder = ImageFolder(images)
    points = sorted((p for p in hci.iterdir() if (p / "config.json").is_file()),
                    key=lambda p: json.loads((p / "config.json").read_text()).get("rate", 0))
    codecs = {p.name: HCICodec.from_pretrained(p) for p in points}
    rows = []
    t0 = time.time()
    for i in tqdm(range(len(folder)), desc="photos"):
        name, img = folder[i]
        h, w = img.shape[:2]

        def row(codec, setting, nbytes, rec, **extra):
            rows.append({"image": name, "height": h, "width": w, "codec": codec,
                         "setting": setting, "bits": 8 * nbytes, "bpp": 8 * nbytes / (h * w),
                         "psnr_db": float(psnr(img[None], rec[None])[0]),
                         "ms_ssim": float(ms_ssim(img[None], rec[None])[0]), **extra})

        for pname, codec in codecs.items():
            t = time.perf_counter()
            data = codec.encode(img)
            enc_s = time.perf_counter() - t
            t = time.perf_counter()
            rec = codec.decode(data)
            row("HCI", pname, len(data), rec, encode_s=enc_s, decode_s=time.perf_counter() - t)
            s = SlicedHCI(codec, slice_rows=slice_rows)
            slices = s.encode(img)
            rec_s, _, _ = s.decode(slices, h, w)
            row("HCI sliced", pname, sum(len(x) for x in slices), rec_s, slices=len(slices))
        for fmt in FORMATS:
            for f in factors:
                for q in qualities:
                    data, rec = code_image(img, fmt.lower(), q, f)
                    row(fmt if f == 1 else f"{fmt} ↓{f:g}", f"q{q}", len(data), rec,
                        factor=f, quality=q, family=fmt)
    df = pd.DataFrame(rows)
    df["family"] = df["family"].fillna(df["codec"])
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False)
    summary = summarize(df)
    record = {**run_record("experiments.photo_rd"), "cpu": platform.processor() or platform.machine(),
              "threads": 1, "images": str(images), "n_images": len(folder),
              "hci": str(hci), "slice_rows": slice_rows, "qualities": list(qualities),
              "factors": list(factors), "seconds": round(time.time() - t0, 1),
              "summary": summary}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    plot(df, out.with_suffix(".png"), str(images))
    return record


def summarize(df) -> dict:
    """Per HCI rate point: mean bpp, PSNR, the sliced stream's bit overhead, and the paired
    PSNR difference against the best classical point at equal or fewer bits per photo."""
    out = {}
    cls = df[df["codec"].isin([c for c in df["codec"].unique() if not c.startswith("HCI")])]
    for pname, g in df[df["codec"] == "HCI"].groupby("setting", sort=False):
        diffs, best_names, best_psnr = [], [], []
        for _, r in g.iterrows():
            c = cls[(cls["image"] == r["image"]) & (cls["bits"] <= r["bits"])]
            if c.empty:
                continue
            b = c.loc[c["psnr_db"].idxmax()]
            diffs.append(r["psnr_db"] - b["psnr_db"])
            best_psnr.append(b["psnr_db"])
            best_names.append(f"{b['codec']} {b['setting']}")
        sl = df[(df["codec"] == "HCI sliced") & (df["setting"] == pname)]
        overhead = (sl["bits"].to_numpy() / g["bits"].to_numpy() - 1)
        out[pname] = {
            "bpp": float(g["bpp"].mean()), "bpp_max": float(g["bpp"].max()),
            "psnr_db": float(g["psnr_db"].mean()), "psnr_ci95": _t_interval(g["psnr_db"]),
            "ms_ssim": float(g["ms_ssim"].mean()),
            "encode_s": float(g["encode_s"].mean()), "decode_s": float(g["decode_s"].mean()),
            "sliced_bit_overhead": float(overhead.mean()),
            "sliced_psnr_db": float(sl["psnr_db"].mean()),
            "best_classical_at_equal_bits_psnr_db": float(np.mean(best_psnr)) if best_psnr
            else None,
            "hci_minus_best_classical_db": float(np.mean(diffs)) if diffs else None,
            "hci_minus_best_classical_ci95": _t_interval(diffs) if diffs else None,
            "photos_compared": len(diffs), "photos": int(len(g)),
            "best_classical_choices": sorted(set(best_names)),
        }
    return out


def plot(df, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    factors = sorted(df["factor"].dropna().unique())
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(1, len(factors))))
    dashes = {"JPEG": ":", "WEBP": "--", "AVIF": "-"}
    for codec, g in df.groupby("codec", sort=False):
        m = g.groupby("setting", sort=False)[["bpp", "psnr_db"]].mean().sort_values("bpp")
        m = m[m["bpp"] <= 0.08]
        if m.empty:
            continue
        if codec.startswith("HCI"):
            style = dict(lw=2.5, marker="o", color="C3" if codec == "HCI" else "C1")
        else:  # colour by downscale factor, line style by format
            style = dict(lw=1, marker=".", ls=dashes[g["family"].iloc[0]],
                         color=colours[factors.index(g["factor"].iloc[0])])
        ax.plot(m["bpp"], m["psnr_db"], label=codec, **style)
    ax.set_xlabel("bits per pixel (real bytes)")
    ax.set_ylabel("PSNR (dB), mean over photos")
    ax.set_title(f"photos at their own size: {title}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)



def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hci", required=True, help="folder of HCI rate-point folders")
    p.add_argument("--images", required=True, help="folder of photos (coded at their size)")
    p.add_argument("--out", required=True, help="output path without suffix")
    p.add_argument("--qualities", type=int, nargs="+", default=[0, 2, 5, 10, 15, 25])
    p.add_argument("--factors", type=float, nargs="+", default=[1, 2, 3, 4, 6, 8])
    p.add_argument("--slice-rows", type=int, default=4)
    p.add_argument("--replot", action="store_true", help="redraw <out>.png from <out>.csv")
    a = p.parse_args(argv)
    if a.replot:
        import pandas as pd

        return plot(pd.read_csv(Path(a.out).with_suffix(".csv")),
                    Path(a.out).with_suffix(".png"), a.images)
    rec = run(Path(a.hci), Path(a.images), Path(a.out), a.qualities, a.factors, a.slice_rows)
    print(json.dumps(rec["summary"], indent=1))


if __name__ == "__main__":
    main()
