"""Quality at equal SNR: each policy's metric per SNR point, and its paired difference from a
baseline policy (same seeds, so the same images and channel draws), with the resource
elements each spends.

    python -m experiments.equal_snr results/semantic --policy semantic --baseline eep

Writes ``equal_snr_<policy>_vs_<baseline>.md`` and ``.json`` beside the results: per scenario,
mode, SNR and budget (PRBs; a column of its own when the sweep has several), the mean metric
of both policies (95 % t interval over seeds, cut to the metric's bounds), the paired
difference (per-seed means of the same images; 95 % t interval) and the mean resource
elements used per image.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from benchmark.stats import mean_interval
from codec.provenance import command_line, git_commit

BOUNDS = {"consistency": (0.0, 1.0), "inception_similarity": (-1.0, 1.0)}


def equal_snr(df: pd.DataFrame, policy: str, baseline: str, metric: str = "consistency"
              ) -> pd.DataFrame:
    """One row per (scenario, mode, snr_db, budget_prbs): both policies' means with intervals,
    the paired difference and the REs per image (columns named in the module docstring)."""
    for p in (policy, baseline):
        if p not in set(df["policy"]):
            raise ValueError(f"policy {p!r} not in the results; they hold "
                             f"{sorted(set(df['policy']))}")
    if metric not in df.columns:
        raise ValueError(f"metric {metric!r} not in the results")
    df = df if "budget_prbs" in df.columns else df.assign(budget_prbs=math.nan)
    keys = ["scenario", "mode", "snr_db", "budget_prbs"]   # (points of other budgets never pair)
    per_seed = (df[df["policy"].isin([policy, baseline])]
                .groupby(keys + ["policy", "seed"], dropna=False)
                .agg(value=(metric, "mean"), re=("re_used", "mean")).reset_index())
    rows = []
    bounds = BOUNDS.get(metric)
    for (sc, mode, snr, prbs), g in per_seed.groupby(keys, dropna=False):
        wide = g.pivot(index="seed", columns="policy", values="value").dropna()
        re = g.groupby("policy")["re"].mean()
        row = {"scenario": sc, "mode": mode, "snr_db": float(snr),
               "budget_prbs": float(prbs), "seeds": len(wide)}
        for p, tag in ((policy, "policy"), (baseline, "baseline")):
            m, lo, hi = mean_interval(wide[p], bounds)
            row.update({f"{tag}_mean": m, f"{tag}_low": lo, f"{tag}_high": hi,
                        f"{tag}_re_per_image": float(re.get(p, math.nan))})
        m, lo, hi = mean_interval(wide[policy] - wide[baseline])
        row.update({"difference": m, "difference_low": lo, "difference_high": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(t: pd.DataFrame, policy: str, baseline: str, metric: str) -> str:
    budgets = t["budget_prbs"].nunique() > 1
    out = [f"# {metric} at equal SNR: {policy} against {baseline}", "",
           "Mean over seeds with 95 % t intervals; the difference is paired by seed (same "
           "images, same channel). REs: resource elements used per image.", "",
           f"| scenario | mode | SNR (dB) | {'PRBs | ' if budgets else ''}{policy} | {baseline} "
           f"| difference | REs {policy} | REs {baseline} |",
           "|---|---|---|" + ("---|" if budgets else "") + "---|---|---|---|---|"]
    for r in t.itertuples():
        prbs = f"{r.budget_prbs:g} | " if budgets else ""
        out.append(f"| {r.scenario} | {r.mode} | {r.snr_db:g} | {prbs}{r.policy_mean:.3f} "
                   f"[{r.policy_low:.3f}, {r.policy_high:.3f}] | {r.baseline_mean:.3f} "
                   f"[{r.baseline_low:.3f}, {r.baseline_high:.3f}] | {r.difference:+.3f} "
                   f"[{r.difference_low:+.3f}, {r.difference_high:+.3f}] | "
                   f"{r.policy_re_per_image:.0f} | {r.baseline_re_per_image:.0f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="sweep folder (with results.parquet)")
    p.add_argument("--policy", default="semantic")
    p.add_argument("--baseline", default="eep")
    p.add_argument("--metric", default="consistency")
    a = p.parse_args(argv)
    folder = Path(a.results)
    if not (folder / "results.parquet").is_file():
        p.error(f"{folder / 'results.parquet'} does not exist (run the sweep first)")
    try:
        t = equal_snr(pd.read_parquet(folder / "results.parquet"), a.policy, a.baseline,
                      a.metric)
    except ValueError as e:
        p.error(str(e))
    stem = folder / f"equal_snr_{a.policy}_vs_{a.baseline}"
    stem.with_suffix(".md").write_text(_markdown(t, a.policy, a.baseline, a.metric))
    stem.with_suffix(".json").write_text(json.dumps(
        {"command": command_line("experiments.equal_snr", argv), "commit": git_commit(),
         "metric": a.metric, "rows": t.to_dict("records")}, indent=1) + "\n")
    print(stem.with_suffix(".md").read_text())
    return t


if __name__ == "__main__":
    main()
