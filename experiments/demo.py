"""Data-and-metrics demo (``sdgic demo``): what classical low-rate images keep of a scene.

Renders fresh scenes, degrades them the way the cheapest classical streams would (a 16×16 and a
32×32 thumbnail upsampled back, JPEG and WebP at their lowest quality), and measures every
metric plus the judge's semantic consistency per attribute. The thumbnails show the ambiguity
SDGIC's residual tokens exist to resolve: colour and position survive, texture and the shape of
small objects do not.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from benchmark import seeds
from benchmark.evaluate import evaluate_folders
from benchmark.scene_dataset import read_scene_folder, write_scene_folder
from codec.provenance import git_commit, python_call

DEMO_SEED = seeds.DEMO


def _thumbnail(side: int):
    def f(img: Image.Image) -> tuple[Image.Image, bytes]:
        small = img.resize((side, side), Image.BOX)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
        return small.resize(img.size, Image.BICUBIC), buf.getvalue()
    return f


def _codec(fmt: str, **kw):
    def f(img: Image.Image) -> tuple[Image.Image, bytes]:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        data = buf.getvalue()
        return Image.open(io.BytesIO(data)).convert("RGB"), data
    return f


VARIANTS = {
    "thumb16": _thumbnail(16),
    "thumb32": _thumbnail(32),
    "jpeg_q1": _codec("JPEG", quality=1),
    "webp_q0": _codec("WEBP", quality=0),
}


def run_demo(out: str | Path, n: int = 64, size: int = 128,
             command: str | None = None) -> pd.DataFrame:
    """Write scenes, degraded versions, per-variant metrics, a table, a plot and a grid."""
    out = Path(out)
    ref = write_scene_folder(out / "scenes", n, seed=DEMO_SEED, size=size, progress=False)
    paths, _ = read_scene_folder(ref)
    rows = []
    for name, fn in VARIANTS.items():
        rec, streams = out / name / "images", out / name / "streams"
        rec.mkdir(parents=True, exist_ok=True)
        streams.mkdir(parents=True, exist_ok=True)
        for p in paths:
            img, data = fn(Image.open(p).convert("RGB"))
            img.save(rec / p.name)
            (streams / f"{p.stem}.bin").write_bytes(data)
        df, summary, notes = evaluate_folders(ref, rec, streams=streams, progress=False)
        df.to_csv(out / name / "per_image.csv", index=False)
        row = {"variant": name, **summary["mean"].to_dict()}
        row["consistency_ci95"] = float(summary.loc["consistency", "ci95"])
        rows.append(row)
        print(f"{name}: " + ", ".join(f"{k}={row[k]:.3f}" for k in
                                      ("bpp", "psnr", "consistency") if k in row))
    table = pd.DataFrame(rows).set_index("variant")
    table.to_csv(out / "summary.csv")
    (out / "summary.md").write_text(table.to_markdown(floatfmt=".3f") + "\n"
                                    if _has_tabulate() else table.to_string() + "\n")
    _plot(table, out / "consistency_by_attribute.png")
    _grid(paths[:6], out, out / "grid.png")
    (out / "command.json").write_text(json.dumps(
        {"command": command or python_call("experiments.demo.run_demo", out=str(out), n=n,
                                           size=size),
         "commit": git_commit(), "scene_seed": DEMO_SEED, "size": size}) + "\n")
    print(f"wrote {out / 'summary.csv'}, {out / 'consistency_by_attribute.png'}, {out / 'grid.png'}")
    return table


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


def _plot(table: pd.DataFrame, path: Path) -> None:
    attrs = [c for c in table.columns if c.startswith("judge_")] + ["consistency"]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    w = 0.8 / len(table)
    x = np.arange(len(attrs))
    for i, (name, row) in enumerate(table.iterrows()):
        label = f"{name} ({row['bpp']:.3f} bpp)" if "bpp" in row else name
        ax.bar(x + i * w, [row[a] for a in attrs], w, label=label)
    ax.set_xticks(x + w * (len(table) - 1) / 2, [a.replace("judge_", "") for a in attrs])
    ax.set_ylabel("fraction recovered by the judge")
    ax.set_ylim(0, 1.05)
    ax.set_title("Scene semantics kept by classical low-rate images (128×128)")
    ax.legend(fontsize=8, ncol=2, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _grid(paths: list[Path], out: Path, path: Path) -> None:
    cols = ["scenes"] + list(VARIANTS)
    tiles = []
    for p in paths:
        row = [np.asarray(Image.open(p).convert("RGB"))]
        row += [np.asarray(Image.open(out / v / "images" / p.name).convert("RGB")) for v in VARIANTS]
        tiles.append(np.concatenate(row, axis=1))
    Image.fromarray(np.concatenate(tiles, axis=0)).save(path)
    (path.with_suffix(".txt")).write_text("columns: " + " | ".join(cols) + "\n")
