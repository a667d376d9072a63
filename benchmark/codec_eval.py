"""Evaluating a codec on the benchmark: the held-out set at its resolution, batched decoding
with per-image seeds, and what each stream adds (paired per image)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark import seeds
from benchmark.photos import val_tiles
from benchmark.scene_dataset import render_scenes
from benchmark.stats import ci95

if TYPE_CHECKING:
    from codec.sdgic import SDGIC

__all__ = ["EVAL_SEED", "STREAMS", "PHOTO_METRICS", "decode_in_batches", "held_out",
           "stream_gains", "metric_label", "save_bpp_plot"]

EVAL_SEED = seeds.DPCD_EVAL
STREAMS = ("caption", "hci", "rsrt")
PHOTO_METRICS = ("inception_similarity", "psnr", "ms_ssim")   # the photo gains' metrics


def decode_in_batches(codec: SDGIC, encoded, steps: int, batch: int, desc: str,
                      guidance_scale: float | None = None, precision: str | None = None,
                      guidance_interval: tuple[float, float] | None = None) -> np.ndarray:
    """Decode ``encoded`` ``batch`` at a time; image i gets seed i, so a result does not
    depend on the batch size. Returns uint8 (N, H, W, 3); None settings take the codec's."""
    out = []
    for i in tqdm(range(0, len(encoded), batch), desc=desc, unit="batch", leave=False):
        chunk = encoded[i:i + batch]
        out += codec.decode_batch(chunk, seeds=list(range(i, i + len(chunk))), steps=steps,
                                  guidance_scale=guidance_scale, precision=precision,
                                  guidance_interval=guidance_interval)
    return np.stack(out)


def held_out(codec: SDGIC, n: int, photos: str | Path | None = None,
             true_captions: bool = False) -> tuple:
    """The evaluation set at the codec's resolution: ``n`` held-out scenes (seed
    ``EVAL_SEED``), or with ``photos`` a fixed subset of that photo set's val tiles (all of them
    if there are fewer). Returns ``(images, scenes, captions, captioner, data_desc)``: uint8
    (N, R, R, 3); the ground-truth scenes (None for photos); the captions a sender sends (None
    entries: no caption stream — photos, or a captionless preset); the shipped scene
    captioner, for scoring reconstructions (it made the captions unless ``true_captions``;
    None for photos, or with ``true_captions`` when none is shipped); a one-line description
    of the data."""
    if photos is not None:
        images, _, data_desc = val_tiles(photos, n, codec.resolution, seed=EVAL_SEED)
        if n > len(images):
            print(f"note: --n {n} but the photo set has {len(images)} val tiles: using all")
        return images, None, [None] * len(images), None, data_desc
    images, scenes = render_scenes(n, seed=EVAL_SEED, size=codec.resolution, progress=True)
    captioner = None
    try:
        from benchmark.captioner import SceneCaptioner

        captioner = SceneCaptioner()
    except FileNotFoundError:
        if not true_captions:
            raise
    detail = codec.caption_detail   # what the preset's decoder was trained to read
    captions = ([None] * n if not codec.caption_stream else   # a captionless preset
                [s.describe(detail) for s in scenes] if true_captions else
                captioner(images, detail=detail))
    return images, scenes, captions, captioner, f"{n} held-out scenes (seed {EVAL_SEED})"


def stream_gains(per_image: pd.DataFrame, metric: str = "consistency") -> pd.DataFrame:
    """What each stream adds, paired per image: ``sdgic`` minus ``no_<stream>`` at each rate.

    Rows: ``rate``, ``stream``, ``n``, ``gain`` (mean of the per-image differences of
    ``metric``), ``gain_ci95`` (95 % Student t half-width of those differences), ``bits`` (mean bits
    the stream costs). Pairing removes the scene-to-scene spread, so these intervals are much
    tighter than the difference of two variants' own intervals.
    """
    rows = []
    key = ["rate", "image"]
    full = per_image[per_image["variant"] == "sdgic"].set_index(key)
    for stream in STREAMS:
        without = per_image[per_image["variant"] == f"no_{stream}"].set_index(key)
        if without.empty:
            continue
        both = full.merge(without, left_index=True, right_index=True,
                          suffixes=("_all", "_without"))
        for rate, g in both.groupby(level="rate", sort=False):
            d = (g[f"{metric}_all"] - g[f"{metric}_without"]).to_numpy(float)
            rows.append({"rate": rate, "stream": stream, "n": len(d), "gain": d.mean(),
                         "gain_ci95": ci95(d),
                         "bits": float((g["bits_all"] - g["bits_without"]).mean())})
    return pd.DataFrame(rows, columns=["rate", "stream", "n", "gain", "gain_ci95", "bits"])


def metric_label(metric: str) -> str:
    """Axis label of a ``score_images`` metric."""
    return {"consistency": "semantic consistency (judge)",
            "inception_similarity": "Inception-v3 feature similarity",
            "psnr": "PSNR (dB)", "ms_ssim": "MS-SSIM"}.get(metric, metric)


def save_bpp_plot(fig, ax, metric: str, path: Path) -> None:
    """Label ``ax`` as ``metric`` against bits per pixel, then write ``path`` (PNG) and the
    same plot as PDF beside it, and close ``fig``."""
    import matplotlib.pyplot as plt

    ax.set_xlabel("bits per pixel (all streams sent)")
    ax.set_ylabel(metric_label(metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
