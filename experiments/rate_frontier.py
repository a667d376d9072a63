"""Do RSRT tokens pay for their bits? Every (HCI rate, token count) operating point → frontier.

    python -m experiments.rate_frontier --preset photos-64 --photos data/photos --n 150 \
        --tokens 0,2,4,8 --out results/dpcd/frontier-photos
    python -m experiments.rate_frontier --preset scenes-64 --n 160 --out results/dpcd/frontier

The paper's claim is that residual tokens raise quality *at equal bitrate*: the bits spent on
tokens would buy less if spent on a better HCI. ``dpcd_eval`` measures the tokens at a fixed HCI
rate; this measures them against the HCI ladder. Every held-out image (the ``dpcd_eval`` sets)
is encoded once per HCI rate point with all K tokens and decoded with the first k of them for
each k in ``--tokens`` (k = 0: no RSRT stream), with the caption the preset sends. Each
(rate, k) is an operating point whose bits are exact (stream payload bits, k × bits per
token for the RSRT stream, as everywhere in ``results/``; the container pads it to whole
bytes).

- ``points.csv``: per point, mean ± 95 % CI of each metric, bits, bpp, and whether the point
  is on the frontier (no other point has as few or fewer mean bits and as high or a higher
  mean score, one of them strictly).
- ``pairs.csv``: every point with tokens against the no-token (HCI-only) points around it in
  bits, paired per image: the gain over the next point below (fewer bits), over the next point
  above (more bits: a gain there is a clean win for the tokens), and over the ladder between
  the two, interpolated in log bits at the token point's bits (``gain_equal_bits``: the claim,
  where the ladder brackets the point). Quality rises with bits at a slowing rate, so the
  interpolated ladder sits at or below the true HCI-only curve: the equal-bits gain is an upper
  estimate (log bits, as in Bjøntegaard's BD-rate, is the less generous of the usual choices).
- ``per_image.csv``, ``summary.md``, ``<metric>_frontier.png``, ``command.json`` (the run's
  record; ``write_tables`` redoes the tables from it and ``per_image.csv``).

Scenes are scored by the judge (consistency) and PSNR; photos by Inception similarity, PSNR
and MS-SSIM.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.codec_eval import (EVAL_SEED, PHOTO_METRICS, decode_in_batches, held_out,
                                  save_bpp_plot)
from benchmark.evaluate import score_images
from benchmark.stats import ci95
from codec.preset import format_guidance_interval
from codec.provenance import command_line, git_commit, python_call
from codec.sdgic import SDGIC

SCENE_METRICS = ("consistency", "psnr")


def with_tokens(enc, k: int):
    """``enc`` carrying only its first ``k`` RSRT tokens (k = 0: no RSRT stream)."""
    if k == 0:
        return enc.without("rsrt")
    return dataclasses.replace(enc, rsrt_tokens=enc.rsrt_tokens[:k])


def frontier(points: pd.DataFrame, metric: str) -> pd.Series:
    """True for the points no other point beats: none has ≤ mean bits and ≥ ``metric``, one
    of them strictly (a point that costs more bits for the same score is off the frontier)."""
    b, m = points["bits"].to_numpy(float), points[metric].to_numpy(float)
    return pd.Series([not np.any((b <= b[i]) & (m >= m[i]) & ((b < b[i]) | (m > m[i])))
                      for i in range(len(b))], index=points.index)


def equal_bits_pairs(per_image: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each token point against the HCI-only ladder (k = 0), paired per image.

    Rows: ``rate``, ``tokens``, ``bits`` (mean), ``below``/``above`` (the ladder's rate points
    with the nearest mean bits ≤ / ≥ the point's; NaN past either end) with their bits,
    ``gain_vs_below``, ``gain_vs_above`` and ``gain_equal_bits`` (against the ladder between
    below and above, interpolated in log mean bits at the point's mean bits), each with
    ``_ci95`` (95 % Student t half-width over the per-image differences, :func:`benchmark.stats.ci95`)."""
    key = ["rate", "tokens"]
    means = per_image.groupby(key, sort=False)["bits"].mean()
    ladder = means.xs(0, level="tokens").sort_values()
    by_point = {k: g.set_index("image")[metric] for k, g in per_image.groupby(key, sort=False)}

    def paired(d: pd.Series) -> tuple[float, float]:
        return float(d.mean()), ci95(d)

    rows = []
    for (rate, k), bits in means.items():
        if k == 0:
            continue
        mine = by_point[(rate, k)]
        lo = ladder[ladder <= bits]
        hi = ladder[ladder >= bits]
        lo_rate = lo.index[-1] if len(lo) else None
        hi_rate = hi.index[0] if len(hi) else None
        r = {"rate": rate, "tokens": k, "bits": bits, "below": lo_rate,
             "below_bits": ladder.get(lo_rate, np.nan), "above": hi_rate,
             "above_bits": ladder.get(hi_rate, np.nan)}
        for side, ref_rate in (("below", lo_rate), ("above", hi_rate)):
            r[f"gain_vs_{side}"], r[f"gain_vs_{side}_ci95"] = (
                paired(mine - by_point[(ref_rate, 0)]) if ref_rate is not None
                else (np.nan, np.nan))
        if lo_rate is not None and hi_rate is not None:
            span = np.log(ladder[hi_rate] / ladder[lo_rate])
            w = 0.0 if span == 0 else np.log(bits / ladder[lo_rate]) / span
            line = (1 - w) * by_point[(lo_rate, 0)] + w * by_point[(hi_rate, 0)]
            r["gain_equal_bits"], r["gain_equal_bits_ci95"] = paired(mine - line)
        else:
            r["gain_equal_bits"] = r["gain_equal_bits_ci95"] = np.nan
        rows.append(r)
    return pd.DataFrame(rows)


def run(preset: str, n: int, out: Path, tokens: list[int] | None = None,
        rates: list[str] | None = None, photos: str | Path | None = None,
        true_captions: bool = False, steps: int | None = None, batch: int = 16,
        inception: bool = True, command: str | None = None) -> dict:
    """Measure every operating point; write the outputs listed in the module docstring.
    ``command``: the command line recorded in ``command.json`` (default: this call)."""
    command = command or python_call(
        "experiments.rate_frontier.run", preset=preset, n=n, out=str(out), tokens=tokens,
        rates=rates, photos=photos, true_captions=true_captions, steps=steps, batch=batch,
        inception=inception)
    t0 = time.time()
    codec = SDGIC.from_pretrained(preset)
    if codec.rsrt_encoder is None:
        raise ValueError(f"preset {preset!r} has no RSRT path: there are no tokens to weigh")
    tokens = sorted(set(tokens if tokens is not None else (0, codec.max_tokens // 2,
                                                           codec.max_tokens)))
    bad = [k for k in tokens if not 0 <= k <= codec.max_tokens]
    if bad or 0 not in tokens or len(tokens) < 2:
        raise ValueError(f"--tokens {tokens}: need 0 (the HCI-only ladder) and at least one "
                         f"count in [1, {codec.max_tokens}] (this preset's K)")
    rates = rates or list(codec.hci)
    unknown = [r for r in rates if r not in codec.hci]
    if unknown:
        raise ValueError(f"rate points {unknown} are not in preset {preset!r}: "
                         f"expected some of {list(codec.hci)}")
    images, scenes, captions, _, data_desc = held_out(codec, n, photos, true_captions)
    metrics = tuple(m for m in (PHOTO_METRICS if photos is not None else SCENE_METRICS)
                    if inception or m != "inception_similarity")
    judge = None
    if scenes is not None:
        from benchmark.judge import SceneJudge

        judge = SceneJudge()     # loaded once, not once per operating point
    steps = steps or codec.steps
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for rate in rates:
        enc = [codec.encode(img, caption=c, rate=rate, num_tokens=codec.max_tokens)
               for img, c in
               tqdm(zip(images, captions), total=len(images), desc=f"encode {rate}",
                    leave=False)]
        for k in tokens:
            es = [with_tokens(e, k) for e in enc]
            recs = decode_in_batches(codec, es, steps, batch, f"{rate} k={k}")
            df, _ = score_images(images, recs, scenes, judge=judge,
                                 inception="inception_similarity" in metrics)
            df = df[list(metrics)]
            df.insert(0, "rate", rate)
            df.insert(1, "tokens", k)
            df.insert(2, "image", np.arange(len(df)))
            df.insert(3, "bits", [e.total_bits() for e in es])
            rows.append(df)
    per_image = pd.concat(rows, ignore_index=True)
    per_image.to_csv(out / "per_image.csv", index=False)
    record = {"command": command, "commit": git_commit(), "preset": codec.preset,
              "preset_status": codec.card.get("status"),
              "stages": {k: v.get("steps") for k, v in codec.card.get("stages", {}).items()},
              "data": data_desc, "eval_seed": EVAL_SEED, "tokens": tokens, "rates": rates,
              "token_bits": codec.token_bits, "resolution": codec.resolution,
              "metrics": list(metrics),
              "decoder": {"steps": steps, "guidance_scale": codec.guidance_scale,
                          "guidance_interval": list(codec.guidance_interval),
                          "precision": codec.precision},
              "seconds": round(time.time() - t0, 1)}
    (out / "command.json").write_text(json.dumps(record, indent=2) + "\n")
    points, pairs = write_tables(per_image, record, out)
    return {"points": points, "pairs": pairs, **record}


def write_tables(per_image: pd.DataFrame, record: dict, out: Path) -> tuple:
    """``points.csv``, ``pairs.csv``, ``summary.md`` and the plots, from ``per_image`` and the
    run's ``record`` (its ``command.json``), so tables can be redone without decoding again.
    Returns ``(points, pairs)``."""
    metrics = record["metrics"]
    g = per_image.groupby(["rate", "tokens"], sort=False)
    points = g[["bits", *metrics]].mean().reset_index()
    points.insert(3, "bpp", points["bits"] / record["resolution"] ** 2)
    for m in metrics:
        points.insert(points.columns.get_loc(m) + 1, f"{m}_ci95", g[m].agg(ci95).to_numpy())
        points[f"frontier_{m}"] = frontier(points, m)
    points.to_csv(out / "points.csv", index=False)
    pairs = pd.concat([equal_bits_pairs(per_image, m).assign(metric=m) for m in metrics],
                      ignore_index=True)
    pairs.to_csv(out / "pairs.csv", index=False)
    _write_markdown(points, pairs, record, out / "summary.md")
    for m in metrics:
        _plot(points, m, out / f"{m}_frontier.png", f"{record['preset']}: {record['data']}")
    return points, pairs


def _write_markdown(points, pairs, record: dict, path: Path) -> None:
    metrics, d = record["metrics"], record["decoder"]
    lines = [f"# Operating points of {record['preset']}: HCI rate × RSRT tokens sent", "",
             f"data: {record['data']}; {record['token_bits']} bits per token; bits are stream "
             "payload bits per image", "",
             f"decoder: {d['steps']} steps, guidance scale {d['guidance_scale']:g} at t/T in "
             f"{format_guidance_interval(d['guidance_interval'])}, {d['precision']}", "",
             f"`{record['command']}`", "",
             "| rate | tokens | bits | bpp | " + " | ".join(metrics) + " |",
             "|---|---|---|---|" + "---|" * len(metrics)]
    for _, r in points.iterrows():
        cells = [f"{r[m]:.4f} ± {r[f'{m}_ci95']:.4f}" + (" ★" if r[f"frontier_{m}"] else "")
                 for m in metrics]
        lines.append(f"| {r['rate']} | {r['tokens']} | {r['bits']:.1f} | {r['bpp']:.4f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "★: on the frontier for that metric (no point with as few or fewer bits "
              "scores as high, one of the two strictly).", "",
              "Tokens against the HCI-only ladder, paired per image (mean ± 95 % CI; points, "
              "PSNR in dB). A gain over the point above (more bits) is a clean win; `equal "
              "bits`: against the ladder between the rate points that bracket the token "
              "point's bits, interpolated in log bits (an upper estimate of the gain).", "",
              "| metric | rate | tokens | bits | vs below (bits) | vs above (bits) | "
              "equal bits |", "|---|---|---|---|---|---|---|"]
    for _, r in pairs.iterrows():
        k = 1.0 if r["metric"] == "psnr" else 100.0

        def cell(side):
            if pd.isna(r[f"gain_vs_{side}"]):
                return "—"
            return (f"{k * r[f'gain_vs_{side}']:+.2f} ± {k * r[f'gain_vs_{side}_ci95']:.2f} "
                    f"({r[side]}, {r[f'{side}_bits']:.0f})")
        eq = ("—" if pd.isna(r["gain_equal_bits"]) else
              f"{k * r['gain_equal_bits']:+.2f} ± {k * r['gain_equal_bits_ci95']:.2f}")
        lines.append(f"| {r['metric']} | {r['rate']} | {r['tokens']} | {r['bits']:.1f} | "
                     f"{cell('below')} | {cell('above')} | {eq} |")
    path.write_text("\n".join(lines) + "\n")


def _plot(points: pd.DataFrame, metric: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for k, g in points.groupby("tokens"):
        g = g.sort_values("bpp")
        ax.errorbar(g["bpp"], g[metric], yerr=g[f"{metric}_ci95"], marker="o", capsize=3,
                    label=f"{k} tokens" if k else "HCI only (no tokens)")
    best = points[points[f"frontier_{metric}"]].sort_values("bpp")
    ax.step(best["bpp"], best[metric], where="post", color="k", lw=0.8, alpha=0.6,
            label="frontier")
    ax.set_title(title, fontsize=8)
    save_bpp_plot(fig, ax, metric, path)


def main(argv=None):
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="scenes-64")
    p.add_argument("--n", type=int, default=160)
    p.add_argument("--tokens", help="comma-separated token counts, 0 included "
                                    "(default: 0, K/2, K)")
    p.add_argument("--rates", help="comma-separated HCI rate points (default: all)")
    p.add_argument("--photos", metavar="FOLDER",
                   help="the val tiles of this `sdgic data photos` set instead of scenes")
    p.add_argument("--true-captions", action="store_true",
                   help="scenes: send the ground-truth captions, not the captioner's")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: preset's)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--no-inception", action="store_true",
                   help="photos: skip Inception similarity (PSNR and MS-SSIM only)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/dpcd/frontier")
    a = p.parse_args(argv)
    try:
        tokens = [int(t) for t in a.tokens.split(",")] if a.tokens else None
    except ValueError:
        p.error(f"--tokens {a.tokens!r}: expected comma-separated integers such as 0,4,8")
    if a.n < 2:
        p.error("--n must be at least 2 (confidence intervals)")
    torch.set_num_threads(a.threads)
    try:
        res = run(a.preset, a.n, Path(a.out), tokens,
                  a.rates.split(",") if a.rates else None, a.photos, a.true_captions,
                  a.steps, a.batch, not a.no_inception,
                  command=command_line("experiments.rate_frontier", argv))
    except ValueError as e:
        p.error(str(e))
    print((Path(a.out) / "summary.md").read_text())
    print(f"{res['seconds']:.0f} s → {a.out}")


if __name__ == "__main__":
    main()
