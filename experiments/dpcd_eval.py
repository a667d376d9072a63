"""SDGIC on held-out scenes or photos: what each stream buys, at every rate point → results/dpcd/.

    python -m experiments.dpcd_eval --preset scenes-64 --n 500 --out results/dpcd
    python -m experiments.dpcd_eval --preset photos-64 --photos data/photos --n 300 \
        --out results/dpcd/photos

Held-out scenes: data set seed 7007 at the preset's resolution (never used in training).
Captions come from the shipped scene captioner (as a sender would make them), or from the
ground truth with ``--true-captions``. Every image is encoded once per HCI rate point with the
RSRT tokens the preset sends (all K unless its ``preset.json`` sets ``num_tokens``;
``--tokens N`` sends N; ``rate_frontier`` compares counts); the variants drop streams from
that encoding, so their bits are exact:

- ``sdgic``: caption + HCI + RSRT;  ``no_rsrt``; ``no_caption``; ``no_hci``;
- ``hci_codec``: the HCI codec's own decoded image (no diffusion), at its own bits;
- ``jpeg_q1``, ``webp_q0``: JPEG and WebP at their lowest quality, the floors a conventional
  codec cannot go below (header and all; far above SDGIC's bits at this size);
- ``subset:<streams>``: every subset of streams at ``--subset-rate`` (for protection studies;
  ``--no-subsets`` keeps only the four subsets the variants above decoded already, and skips
  the other four: none, caption, HCI, RSRT alone).

``--photos FOLDER``: the val tiles of a ``sdgic data photos`` set instead (a fixed subset of
``--n``, drawn evenly per val photo, resized to the preset's resolution). Photos have no
offline caption source, so they are sent without a caption: the variants are ``sdgic``
(HCI + RSRT), ``no_rsrt``, ``no_hci`` and the floors, there is no judge (no consistency), and
the stream gains are measured in Inception similarity, PSNR and MS-SSIM.

Outputs: ``per_image.csv`` (one row per image × variant × rate), ``summary.csv`` (mean and 95 %
CI per metric, bits, bpp, FID), ``gains.csv`` (what each stream adds, paired per image),
``summary.md``, ``consistency_vs_bpp.png`` (photos: ``inception_similarity_vs_bpp.png``) and
``grid.png``
(rows: source | HCI | no-RSRT | SDGIC).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from benchmark.codec_eval import (EVAL_SEED, PHOTO_METRICS, STREAMS, decode_in_batches, held_out,
                                  save_bpp_plot, stream_gains)
from benchmark.evaluate import score_images
from benchmark.stats import ci95
from codec.classical import classical_batch
from codec.preset import format_guidance_interval
from codec.provenance import command_line, git_commit, python_call
from codec.sdgic import SDGIC
from experiments.cli import interval_arg

FLOORS = (("jpeg_q1", "jpeg", 1), ("webp_q0", "webp", 0))


def run(preset: str, n: int, out: Path, steps: int = 20, batch: int = 16,
        rates: list[str] | None = None, subset_rate: str | None = None,
        true_captions: bool = False, inception: bool = True,
        guidance_scale: float | None = None, precision: str | None = None,
        subsets: bool = True, guidance_interval: tuple[float, float] | None = None,
        photos: str | Path | None = None, tokens: int | None = None,
        command: str | None = None) -> pd.DataFrame:
    """Measure ``preset`` (see the module docstring); ``tokens``: RSRT tokens to send (None:
    the preset's); ``command``: the command line recorded in ``command.json`` (default: this
    call). Returns the summary frame."""
    command = command or python_call(
        "experiments.dpcd_eval.run", preset=preset, n=n, out=str(out), steps=steps,
        batch=batch, rates=rates, subset_rate=subset_rate, true_captions=true_captions,
        inception=inception, guidance_scale=guidance_scale, precision=precision,
        subsets=subsets, guidance_interval=guidance_interval, photos=photos, tokens=tokens)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    codec = SDGIC.from_pretrained(preset)
    codec.decode_settings = codec.decode_settings.updated(
        guidance_scale=guidance_scale, guidance_interval=guidance_interval, precision=precision)
    rates = rates or list(codec.hci)
    subset_rate = subset_rate or codec.rate
    sent = tokens if tokens is not None else codec.tokens_sent
    if not 0 <= sent <= codec.max_tokens:
        raise ValueError(f"tokens={sent}: preset {preset!r} makes {codec.max_tokens} RSRT "
                         "tokens per image")
    images, scenes, captions, captioner, data_desc = held_out(codec, n, photos, true_captions)
    n = len(images)
    streams = [s for s in STREAMS if (s != "rsrt" or codec.rsrt_encoder is not None)
               and (s != "caption" or (photos is None and codec.caption_stream))]
    if "hci" in streams and codec.controlnet is None:
        print("note: this preset has no ControlNet: the decoder ignores the HCI stream")
    rows, summaries, grid = [], [], {}

    def score(name: str, rate: str, recs: np.ndarray, encoded, scored=None) -> tuple:
        """Record ``recs`` as variant ``name``; ``encoded``: what was sent (EncodedImages, or
        bits per image); ``scored``: the ``score_images`` result of the same reconstructions
        (a subset a variant decoded), reused instead of measured again. Returns the
        ``score_images`` result."""
        scored = scored or score_images(images, recs, scenes, inception=inception,
                                        captioner=captioner)
        df, extra = scored[0].copy(), scored[1]
        bits = (np.asarray(encoded) if isinstance(encoded, np.ndarray) else
                np.array([e.total_bits() for e in encoded]))
        df.insert(0, "variant", name)
        df.insert(1, "rate", rate)
        df.insert(2, "image", np.arange(len(df)))
        df.insert(3, "bits", bits)
        df.insert(4, "bpp", bits / (codec.resolution ** 2))
        rows.append(df)
        s = {"variant": name, "rate": rate, "n": len(df)}
        for k in df.columns[3:]:
            v = df[k].astype(float)
            s[k] = v.mean()
            s[f"{k}_ci95"] = ci95(v)
        s.update(extra)
        summaries.append(s)
        return scored

    for rate in rates:
        enc = [codec.encode(img, caption=c, rate=rate, num_tokens=sent) for img, c in
               tqdm(zip(images, captions), total=n, desc=f"encode {rate}", leave=False)]
        hci_imgs = np.stack([codec.hci[rate].decode(e.hci) for e in enc])  # original size
        score("hci_codec", rate, hci_imgs, [e.without("caption", "rsrt") for e in enc])
        variants = {"sdgic": enc}
        if "rsrt" in streams:
            variants["no_rsrt"] = [e.without("rsrt") for e in enc]
        if "caption" in streams:
            variants["no_caption"] = [e.without("caption") for e in enc]
        variants["no_hci"] = [e.without("hci") for e in enc]
        decoded = {}
        for name, es in variants.items():
            recs = decode_in_batches(codec, es, steps, batch, f"{name} {rate}")
            scored = score(name, rate, recs, es)
            decoded[frozenset(s for s in streams if es[0].has(s))] = recs, scored
            if rate == subset_rate:
                grid[name] = recs[:8]
        if rate == subset_rate:
            grid["hci"] = hci_imgs[:8]
            for r in range(len(streams) + 1):
                for keep in itertools.combinations(streams, r):
                    drop = [s for s in streams if s not in keep]
                    es = [e.without(*drop) for e in enc]
                    recs, scored = decoded.get(frozenset(keep), (None, None))  # a variant's
                    if recs is None:
                        if not subsets:
                            continue
                        recs = decode_in_batches(codec, es, steps, batch, f"subset {keep}")
                    score("subset:" + ("+".join(keep) or "none"), rate, recs, es, scored)

    for name, fmt, quality in FLOORS:
        bits, recs = classical_batch(images, fmt, quality)
        score(name, "-", recs, bits)

    per_image = pd.concat(rows, ignore_index=True)
    per_image.to_csv(out / "per_image.csv", index=False)
    summary = pd.DataFrame(summaries)
    summary.to_csv(out / "summary.csv", index=False)
    metrics = ("consistency",) if photos is None else \
        tuple(m for m in PHOTO_METRICS if m in per_image.columns)   # --no-inception: no similarity
    gains = pd.concat([stream_gains(per_image, m).assign(metric=m) for m in metrics],
                      ignore_index=True)
    gains.to_csv(out / "gains.csv", index=False)
    captions_desc = ("none (photos)" if photos is not None else
                     "none (the preset sends no caption stream)" if "caption" not in streams
                     else f"{'ground truth' if true_captions else 'scene captioner'} "
                          f"(detail {codec.caption_detail})")
    _write_markdown(summary, gains, out / "summary.md", codec, data_desc, steps, captions_desc,
                    sent)
    _plot(summary, out / f"{metrics[0]}_vs_bpp.png", metrics[0])
    _grid(images[:8], grid, out / "grid.png")
    (out / "command.json").write_text(json.dumps({
        "command": command, "commit": git_commit(),
        "decoder": {"steps": steps, "guidance_scale": codec.guidance_scale,
                    "guidance_interval": format_guidance_interval(codec.guidance_interval),
                    "precision": codec.precision},
        "preset_status": codec.card.get("status"),
        "stages": {k: v.get("steps") for k, v in codec.card.get("stages", {}).items()},
        "data": data_desc, "eval_seed": EVAL_SEED, "seconds": round(time.time() - t0, 1)},
        indent=2) + "\n")
    return summary


def _write_markdown(summary: pd.DataFrame, gains: pd.DataFrame, path: Path, codec,
                    data_desc: str, steps: int, captions: str, tokens: int) -> None:
    cols = ["variant", "rate", "bits", "bpp", "consistency", "consistency_ci95", "judge_shape",
            "judge_texture", "caption_similarity", "inception_similarity", "fid", "psnr", "ms_ssim"]
    cols = [c for c in cols if c in summary.columns]
    lo, hi = codec.guidance_interval
    lines = [f"# SDGIC {codec.preset}, {steps} steps, guidance scale "
             f"{codec.guidance_scale:g} at t/T in [{lo:g}, {hi:g}], {codec.precision}",
             "", f"data: {data_desc}", "",
             f"RSRT tokens sent: {tokens} of {codec.max_tokens} "
             f"({tokens * codec.token_bits} bits)", "",
             f"captions: {captions}; bits are stream payload bits per image "
             "(container framing not counted); the jpeg_q1 and webp_q0 floors count whole "
             "files, headers included", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in summary.iterrows():
        cells = [f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "What each stream adds to SDGIC, paired per image (sdgic minus no_<stream>; "
              "mean ± 95 % CI; consistency, similarity and MS-SSIM in points, PSNR in dB):", "",
              "| metric | rate | stream | bits | gain |", "|---|---|---|---|---|"]
    for _, r in gains.iterrows():
        k = 1 if r["metric"] == "psnr" else 100
        lines.append(f"| {r['metric']} | {r['rate']} | {r['stream']} | {r['bits']:.1f} | "
                     f"{k * r['gain']:+.2f} ± {k * r['gain_ci95']:.2f} |")
    path.write_text("\n".join(lines) + "\n")


def _plot(summary: pd.DataFrame, path: Path, metric: str = "consistency") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    floors = [f[0] for f in FLOORS]
    for name, g in summary[~summary["variant"].str.startswith("subset:")].groupby("variant"):
        g = g.sort_values("bpp")
        ax.errorbar(g["bpp"], g[metric], yerr=g[f"{metric}_ci95"],
                    marker="x" if name in floors else "o", capsize=3, label=name)
    ax.set_xscale("log")      # the JPEG/WebP floors sit an order of magnitude to the right
    save_bpp_plot(fig, ax, metric, path)


def _grid(src: np.ndarray, grid: dict, path: Path) -> None:
    from training.dpcd_data import save_grid

    rows = [src] + [grid[k] for k in ("hci", "no_rsrt", "sdgic") if k in grid]
    t = torch.from_numpy(np.concatenate(rows)).permute(0, 3, 1, 2).float() / 255
    save_grid(t, path, nrow=8, scale=2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="scenes-64")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rates", help="comma-separated HCI rate points (default: all)")
    p.add_argument("--subset-rate", help="rate point of the stream-subset table")
    p.add_argument("--no-subsets", action="store_true",
                   help="skip the stream-subset table (the variants only)")
    p.add_argument("--true-captions", action="store_true")
    p.add_argument("--photos", metavar="FOLDER",
                   help="evaluate on the val tiles of this photo set (sdgic data photos), "
                        "sent without captions, instead of scenes")
    p.add_argument("--no-inception", action="store_true")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance scale (default: the preset's)")
    p.add_argument("--guidance-interval", type=interval_arg, default=None, metavar="LO:HI",
                   help="guide only at timesteps t/T in [LO, HI] (default: the preset's)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="decoder arithmetic (default: the preset's)")
    p.add_argument("--tokens", type=int, default=None,
                   help="RSRT tokens to send (default: the preset's: all K unless its "
                        "preset.json sets num_tokens)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/dpcd")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    s = run(a.preset, a.n, Path(a.out), a.steps, a.batch,
            a.rates.split(",") if a.rates else None, a.subset_rate, a.true_captions,
            not a.no_inception, a.guidance_scale, a.precision, not a.no_subsets,
            a.guidance_interval, a.photos, a.tokens,
            command=command_line("experiments.dpcd_eval", argv))
    cols = ["variant", "rate", "bits", "bpp", "consistency" if a.photos is None else "psnr",
            "inception_similarity"]
    print(s[[c for c in cols if c in s.columns]].to_string())


if __name__ == "__main__":
    main()
