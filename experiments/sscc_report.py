"""Report of the separate source-channel coding study (``experiments/sscc_study.toml``).

    python -m experiments.sscc_report results/sscc

From ``results.parquet`` it writes, under the study folder:

* ``plots/cliff.png`` (+ ``.pdf``): judge consistency and PSNR against SNR, one panel per
  scenario and fidelity mode: SDGIC (UEP, EEP), the HCI alone, and each classical codec
  filling the link's share at MCS 5, 11 and 17 (the cliff);
* ``sscc_summary.json`` / ``sscc_summary.md``: per scenario, mode and SNR the mean and 95 %
  CI (Student t over seeds, :func:`sim.plots.summarize`) of each system's consistency, PSNR
  and resource elements used per image, the best classical system at that SNR (the
  envelope over codec and MCS, picked after the fact, so optimistic for the classical
  side), and the verdict from the paired difference (per seed: same images, same channel) of
  SDGIC's better policy minus that classical system: ``win`` where its 95 % CI over seeds is
  above 0, ``lose`` where it is below, ``tie`` otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from codec.provenance import run_record

_SDGIC_POLICIES = ("uep", "eep")


def system_name(row) -> str:
    """Short legend names: ``SDGIC uep``, ``HCI alone``, ``webp MCS 11``, ``webp @SDGIC RE``."""
    codec, pol, budget = row["codec"], row["policy"], row.get("bit_budget", "")
    if not budget:
        return f"SDGIC {pol}"
    if codec.startswith("hci"):
        return "HCI alone"
    if budget == "fill":
        mcs = int(row["mcs_hci"])
        return f"{codec} MCS {mcs}"
    return f"{codec} @SDGIC RE"


def _classical(name: str) -> bool:
    return not name.startswith(("SDGIC", "HCI"))


def summary(df: pd.DataFrame) -> pd.DataFrame:
    from sim.plots import summarize

    df = df.copy()
    df["system_name"] = df.apply(system_name, axis=1)
    keys = ["scenario", "mode", "system_name", "snr_db"]
    parts = []
    for metric in ("consistency", "psnr", "re_used", "complete"):
        s = summarize(df, keys, metric).rename(columns={
            "mean": metric, "ci95": f"{metric}_ci95", "low": f"{metric}_low",
            "high": f"{metric}_high"})
        parts.append(s[keys + [metric, f"{metric}_ci95", f"{metric}_low", f"{metric}_high"]])
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p, on=keys)
    return out


def paired_difference(df: pd.DataFrame, a: str, b: str) -> tuple[float, float]:
    """Mean and 95 % CI half-width over seeds of the per-seed consistency difference a − b
    (the same seed: the same images and the same channel realization for both)."""
    from benchmark.stats import ci95

    per = df[df.system_name.isin([a, b])].groupby(["seed", "system_name"])["consistency"] \
        .mean().unstack()
    d = (per[a] - per[b]).dropna().to_numpy()
    return float(d.mean()), ci95(d)


def verdicts(s: pd.DataFrame, df: pd.DataFrame) -> list[dict]:
    df = df.assign(system_name=df.apply(system_name, axis=1))
    rows = []
    for (scn, mode, snr), g in s.groupby(["scenario", "mode", "snr_db"]):
        sd = g[g.system_name.str.startswith("SDGIC")].sort_values("consistency").iloc[-1]
        cl = g[g.system_name.map(_classical)].sort_values("consistency").iloc[-1]
        hci = g[g.system_name == "HCI alone"]
        point = df[(df.scenario == scn) & (df["mode"] == mode) & (df.snr_db == snr)]
        diff, half = paired_difference(point, sd.system_name, cl.system_name)
        verdict = "win" if diff - half > 0 else "lose" if diff + half < 0 else "tie"
        rows.append({"scenario": scn, "mode": mode, "snr_db": float(snr),
                     "sdgic": sd.system_name, "sdgic_consistency": float(sd.consistency),
                     "sdgic_ci95": float(sd.consistency_ci95),
                     "sdgic_psnr_db": float(sd.psnr), "sdgic_re": float(sd.re_used),
                     "best_classical": cl.system_name,
                     "classical_consistency": float(cl.consistency),
                     "classical_ci95": float(cl.consistency_ci95),
                     "classical_psnr_db": float(cl.psnr), "classical_re": float(cl.re_used),
                     "hci_consistency": float(hci.consistency.iloc[0]) if len(hci) else None,
                     "paired_difference": diff, "paired_difference_ci95": half,
                     "verdict": verdict})
    return rows


def plot(df: pd.DataFrame, s: pd.DataFrame, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.plots import _save

    panels = sorted(s.groupby(["scenario", "mode"]).groups)
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 6.4), squeeze=False,
                             sharex=True)
    colours = {"jpeg": "tab:blue", "webp": "tab:green", "avif": "tab:purple"}
    dashes = {5: ":", 11: "--", 17: "-."}
    for j, (scn, mode) in enumerate(panels):
        sub = s[(s.scenario == scn) & (s["mode"] == mode)]
        for name, g in sub.groupby("system_name"):
            g = g.sort_values("snr_db")
            if name.startswith("SDGIC"):
                kw = dict(color="black", ls="-" if name.endswith("uep") else "--", lw=2)
            elif name == "HCI alone":
                kw = dict(color="tab:orange", ls="-", lw=1.5)
            elif "@SDGIC" in name:
                continue          # nothing fits: grey at every SNR (in the summary table)
            else:
                codec, _, mcs = name.split()
                kw = dict(color=colours.get(codec, "grey"), ls=dashes.get(int(mcs), "-"), lw=1)
            for i, metric in enumerate(("consistency", "psnr")):
                yerr = [g[metric] - g[f"{metric}_low"], g[f"{metric}_high"] - g[metric]]
                axes[i][j].errorbar(g.snr_db, g[metric], yerr=yerr, label=name, capsize=2, **kw)
        axes[0][j].set_title(f"{scn} · {mode}", fontsize=9)
        axes[1][j].set_xlabel("SNR [dB]")
    axes[0][0].set_ylabel("judge consistency")
    axes[1][0].set_ylabel("PSNR [dB]")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=6, fontsize=7, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("SDGIC vs separate coding (classical codec + LDPC at a fixed MCS) at the same "
                 "per-slot RE budget and deadline", fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    return _save(fig, out, "cliff")


def _markdown(rows: list[dict]) -> str:
    lines = ["| scenario | mode | SNR dB | SDGIC consistency (RE/image) | best classical "
             "(RE/image) | HCI alone | SDGIC − classical, paired | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['mode']} | {r['snr_db']:g} | {r['sdgic']}: "
            f"{r['sdgic_consistency']:.2f} ± {r['sdgic_ci95']:.2f} ({r['sdgic_re']:.0f}) | "
            f"{r['best_classical']}: {r['classical_consistency']:.2f} ± "
            f"{r['classical_ci95']:.2f} ({r['classical_re']:.0f}) | "
            f"{r['hci_consistency']:.2f} | {r['paired_difference']:+.2f} ± "
            f"{r['paired_difference_ci95']:.2f} | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study", help="the study folder (holds results.parquet)")
    a = p.parse_args(argv)
    folder = Path(a.study)
    df = pd.read_parquet(folder / "results.parquet")
    s = summary(df)
    rows = verdicts(s, df)
    files = plot(df, s, folder / "plots")
    record = {**run_record("experiments.sscc_report", argv),
              "points": int(df.point_id.nunique()), "images": int(len(df)),
              "seeds": sorted(int(x) for x in df.seed.unique()),
              "grey_metrics": "an image that did not arrive is scored as what the receiver "
                              "shows: mid grey for the classical codecs and the HCI alone; "
                              "SDGIC's decoder draws from whatever streams arrived",
              "verdicts": rows,
              "systems": json.loads(s.to_json(orient="records"))}
    (folder / "sscc_summary.json").write_text(json.dumps(record, indent=1) + "\n")
    (folder / "sscc_summary.md").write_text(_markdown(rows))
    counts = pd.Series([r["verdict"] for r in rows]).value_counts().to_dict()
    print(f"verdicts {counts}; plots {', '.join(str(f) for f in files if f.suffix == '.png')}")


if __name__ == "__main__":
    main()
