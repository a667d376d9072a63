"""Do the two fidelity modes agree on a study? Consistency (or another metric) per policy and
SNR, abstraction against bit level, paired over seeds (same images, same channels).

    python -m experiments.mode_agreement results/channels/consistency [--metric consistency]

Reads ``results.parquet`` of a sweep with both modes and writes ``mode_agreement.json``,
``mode_agreement.md`` and ``mode_agreement.png`` beside it: per (scenario, policy, SNR) the
mean of each mode with its 95 % interval over seeds, the paired difference
(abstraction − bit level) with its interval, and whether that interval contains 0; and the
policy ranking at each SNR in each mode.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.stats import UNIT_BOUNDS, ci95, mean_interval


def agreement(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (scenario, policy, snr_db): means, intervals and the paired difference."""
    per_seed = (df.groupby(["scenario", "policy", "snr_db", "mode", "seed"])[metric].mean()
                .unstack("mode"))
    if not {"abstraction", "bit"} <= set(per_seed.columns):
        raise ValueError(f"the records hold modes {sorted(per_seed.columns)}; this needs both "
                         f"'abstraction' and 'bit'")
    bounds = UNIT_BOUNDS if metric in ("consistency", "complete", "ms_ssim") else None
    rows = []
    for key, g in per_seed.groupby(level=["scenario", "policy", "snr_db"]):
        g = g.dropna()
        d = (g["abstraction"] - g["bit"]).to_numpy()
        row = dict(zip(("scenario", "policy", "snr_db"), key), seeds=len(g))
        for m in ("abstraction", "bit"):
            mean, lo, hi = mean_interval(g[m].to_numpy(), bounds)
            row.update({f"{m}_mean": mean, f"{m}_low": lo, f"{m}_high": hi})
        half = ci95(d)
        row.update(diff_mean=float(np.mean(d)), diff_ci=float(half),
                   agree=bool(abs(np.mean(d)) <= half) if np.isfinite(half) else None)
        rows.append(row)
    return pd.DataFrame(rows)


def rankings(table: pd.DataFrame) -> list[dict]:
    """Policy order (best first) per scenario and SNR in each mode."""
    out = []
    for (sc, snr), g in table.groupby(["scenario", "snr_db"]):
        out.append(dict(scenario=sc, snr_db=float(snr), **{
            m: list(g.sort_values(f"{m}_mean", ascending=False).policy) for m in
            ("abstraction", "bit")}))
    return out


def plot(table: pd.DataFrame, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = sorted(table.scenario.unique())
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.2 * len(scenarios), 3.8),
                             squeeze=False)
    colours = dict(zip(sorted(table.policy.unique()), plt.get_cmap("tab10").colors))
    for ax, sc in zip(axes[0], scenarios):
        for pol, g in table[table.scenario == sc].groupby("policy"):
            g = g.sort_values("snr_db")
            for m, style in (("bit", "-o"), ("abstraction", "--s")):
                ax.errorbar(g.snr_db, g[f"{m}_mean"],
                            yerr=[g[f"{m}_mean"] - g[f"{m}_low"], g[f"{m}_high"] - g[f"{m}_mean"]],
                            fmt=style, color=colours[pol], ms=4, capsize=2, lw=1.2,
                            label=f"{pol}, {'bit level' if m == 'bit' else 'abstraction'}")
        ax.set_title(sc)
        ax.set_xlabel("SNR [dB]")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)


def main(argv=None):
    from sim.records import read_table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="sweep folder (with results.parquet)")
    p.add_argument("--metric", default="consistency")
    a = p.parse_args(argv)
    folder = Path(a.results)
    df = read_table(folder / "results.parquet")
    table = agreement(df, a.metric)
    calib = sorted(set(df.loc[df["mode"] == "abstraction", "calibration"])) \
        if "calibration" in df else []
    summary = dict(command="python -m experiments.mode_agreement " +
                   " ".join(sys.argv[1:] if argv is None else argv),
                   metric=a.metric, calibration=calib, points=len(table),
                   agree=int(table.agree.sum()), rankings=rankings(table),
                   table=table.to_dict(orient="records"))
    (folder / "mode_agreement.json").write_text(json.dumps(summary, indent=1, default=float))
    md = ["| scenario | policy | SNR [dB] | bit level | abstraction | abstraction − bit (95 % CI) |",
          "|---|---|---|---|---|---|"]
    for r in table.itertuples():
        md.append(f"| {r.scenario} | {r.policy} | {r.snr_db:g} | {r.bit_mean:.3f} | "
                  f"{r.abstraction_mean:.3f} | {r.diff_mean:+.3f} ± {r.diff_ci:.3f} |")
    (folder / "mode_agreement.md").write_text(
        f"{a.metric}, paired over seeds; abstraction calibration: {', '.join(calib) or 'none'}. "
        f"The modes agree (interval of the difference contains 0) at {summary['agree']} of "
        f"{len(table)} points.\n\n" + "\n".join(md) + "\n")
    plot(table, a.metric, folder / "mode_agreement.png")
    print(f"agree at {summary['agree']} of {len(table)} points; {folder / 'mode_agreement.md'}")


if __name__ == "__main__":
    main()
