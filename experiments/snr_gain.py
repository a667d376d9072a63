"""SNR gain of one protection policy over another at equal semantic consistency.

    python -m experiments.snr_gain results/reference [--metric consistency] [--levels 0.5,0.9]

Reads a sweep's ``results.parquet``. Per scenario × mode, the consistency-vs-SNR curve of each
policy is the mean over seeds (each seed: its own images and channel). A target level
``floor + f · (ceiling - floor)`` is set for each fraction ``f`` of ``--levels``, with
``ceiling`` the mean of both policies at the highest SNR (every stream arrives) and ``floor``
the lowest point of either curve. The SNR a policy needs is where its curve first reaches the
target (linear interpolation between grid points). Gain = SNR(baseline) - SNR(policy) in dB:
positive when ``--policy`` needs less SNR than ``--baseline`` (a lower bound, marked ≥, when
``--policy`` is at the target already at the lowest SNR of the grid). The 95 % interval comes from a
bootstrap over seeds (seeds resampled with replacement, both policies together, since a seed
gives both policies the same channel).

Writes ``snr_gain.json``, ``snr_gain.md`` and ``plots/snr_gain.png`` beside the results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from codec.provenance import run_record
from sim.snr_gain import GROUP, snr_gain


def _plot(df: pd.DataFrame, rows: list[dict], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.plots import _yerr, summarize

    keys = list(df.groupby(GROUP).groups)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        g = df[(df.scenario == key[0]) & (df["mode"] == key[1])]
        s = summarize(g, ["policy", "snr_db"], metric)
        for pol, p in s.groupby("policy"):
            ax.errorbar(p.snr_db, p["mean"], yerr=_yerr(p), marker="o", capsize=3, label=pol)
        for r in rows:
            if (r["scenario"], r["mode"]) == key:
                ax.axhline(r["target"], color="grey", lw=0.7, ls=":")
                ax.annotate(f"{r['gain_db']:+.1f} dB", (ax.get_xlim()[0], r["target"]),
                            fontsize=7, va="bottom")
        ax.set_title(f"{key[0]}, {key[1]}", fontsize=9)
        ax.set_xlabel("SNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} (mean over seeds, 95 % CI)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="sweep folder (with results.parquet) or the parquet file")
    p.add_argument("--metric", default="consistency")
    p.add_argument("--policy", default="uep")
    p.add_argument("--baseline", default="eep")
    p.add_argument("--levels", default="0.5,0.9", help="fractions of the floor→ceiling range")
    a = p.parse_args(argv)
    from sim.records import read_table

    src = Path(a.results)
    path = src / "results.parquet" if src.is_dir() else src
    if not path.is_file():
        raise SystemExit(f"no results at {path}; run `sdgic sweep` first")
    df = read_table(path)
    levels = tuple(float(x) for x in a.levels.split(","))
    rows = snr_gain(df, a.policy, a.baseline, a.metric, levels)
    out = path.parent
    args = sys.argv[1:] if argv is None else list(argv)
    (out / "snr_gain.json").write_text(json.dumps({
        **run_record("experiments.snr_gain", args), "rows": rows},
        indent=2) + "\n")
    lines = [f"# SNR gain of {a.policy} over {a.baseline} at equal {a.metric}", "",
             "| scenario | mode | level | target | SNR " + a.policy + " (dB) | SNR " + a.baseline +
             " (dB) | gain (dB) | 95 % CI (dB) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['mode']} | {r['level']:.2f} | {r['target']:.3f} | "
                     f"{r['snr_policy_db']:.2f} | {r['snr_baseline_db']:.2f} | "
                     f"{'≥ ' if r['lower_bound'] else ''}{r['gain_db']:+.2f} | "
                     f"[{r['gain_ci95_low_db']:+.2f}, "
                     f"{r['gain_ci95_high_db']:+.2f}] |")
    (out / "snr_gain.md").write_text("\n".join(lines) + "\n")
    _plot(df, rows, a.metric, out / "plots" / "snr_gain.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
