"""Does the semantic planner predict what arrives? Predicted against realized stream arrival,
point by point, without decoding.

    python -m experiments.semantic_arrivals [--experiment experiments/semantic_budget_quick.toml]
        [--images 32] [--prbs 1 2] [--out results/semantic-budget/arrivals.json]

For every semantic-policy point of the experiment with a budget in ``--prbs``: the run with
``--images`` images and no decode; per stream, the mean predicted arrival probability
(``semantic_<stream>_p``) and the fraction that arrived, the mean expected metric, and the
packets dropped at the deadline and at the retransmission limit. On a busy link (images
overlapping, few PRBs) this is where the planner's schedule model shows.

``--toy``: instead, the baseline test codec with an additive table (caption 0.5, HCI 0.3,
tokens 0.2) on a flat AWGN link at −4 dB, in three busy setups (1 PRB with an image every 2 ms,
2 PRBs every 1 ms, 3 PRBs every 1 ms; 3 ms deadline), 2 seeds × 60 images each: predicted
and realized metric (mean, standard error).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from codec.provenance import run_record

STREAMS = ("caption", "hci", "rsrt")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="experiments/semantic_budget_quick.toml")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--prbs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", default="results/semantic-budget/arrivals.json")
    p.add_argument("--toy", action="store_true")
    a = p.parse_args(argv)
    if a.toy:
        return toy(argv, Path(a.out))
    from sim.experiment import load_experiment
    from sim.simulation import simulate

    points = [c for c in load_experiment(a.experiment).points()
              if c.policy.name == "semantic" and c.budget_prbs in a.prbs]
    if not points:
        raise SystemExit(f"{a.experiment} has no semantic point with {a.prbs} PRBs")
    rows = []
    for c in points:
        c = dataclasses.replace(c, decode=False, num_images=a.images)
        df = simulate(c).records
        row = {"snr_db": c.snr_db, "budget_prbs": c.budget_prbs, "seed": c.seed,
               "expected": float(df.semantic_expected.mean()),
               "dropped_deadline": int(df.dropped_deadline.sum()),
               "dropped_retx": int(df.dropped_retx.sum())}
        for s in STREAMS:
            row[f"{s}_predicted"] = float(df[f"semantic_{s}_p"].mean())
            row[f"{s}_arrived"] = float(df[f"ok_{s}"].mean())
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for prbs in a.prbs:
        for snr in sorted({r["snr_db"] for r in rows}):
            sel = [r for r in rows if r["budget_prbs"] == prbs and r["snr_db"] == snr]
            summary[f"{snr:g} dB, {prbs} PRB"] = {
                s: {"predicted": float(np.mean([r[f"{s}_predicted"] for r in sel])),
                    "arrived": float(np.mean([r[f"{s}_arrived"] for r in sel]))}
                for s in STREAMS}
    rec = {**run_record("experiments.semantic_arrivals", argv), "experiment": a.experiment,
           "images_per_point": a.images, "points": rows, "mean_over_seeds": summary}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=1) + "\n")


TOY_SETUPS = (dict(budget_prbs=1, interval_ms=2.0, harq_rtt_slots=4),
              dict(budget_prbs=2, interval_ms=1.0, harq_rtt_slots=2),
              dict(budget_prbs=3, interval_ms=1.0, harq_rtt_slots=4))


def toy(argv, out: Path) -> None:
    import pandas as pd

    from benchmark.subset_table import SUBSETS, SubsetTable, subset_name
    from channels import Scenario
    from sim.baseline_codec import BaselineCodec
    from sim.config import SimConfig
    from sim.policy import make_policy
    from sim.simulation import simulate

    worth = {"caption": 0.5, "hci": 0.3, "rsrt": 0.2}
    codec = BaselineCodec()
    codec.subset_table = SubsetTable("baseline-hci-mid", "toy", {("mid", 9): {
        "bits": {}, "ci95": {},
        "value": {subset_name(s): float(sum(worth[x] for x in s)) for s in SUBSETS}}})
    awgn = Scenario.from_dict({"name": "awgn-test", "channel": {"model": "AWGN"},
                               "receiver": {"channel_estimation": "perfect"}})
    rows = []
    for setup in TOY_SETUPS:
        df = pd.concat([simulate(SimConfig(
            scenario=awgn, snr_db=-4.0, num_images=60, seed=seed, codec="sim.baseline_codec:"
            "BaselineCodec", decode=False, deadline_ms=3.0, mode="abstraction",
            calibration="off", policy=make_policy("semantic", step_db=0.0), **setup),
            codec=codec).records for seed in range(2)])
        real = sum(worth[s] * df[f"ok_{s}"].astype(float) for s in worth)
        rows.append({**setup, "predicted": float(df.semantic_expected.mean()),
                     "realized": float(real.mean()),
                     "realized_se": float(real.std() / np.sqrt(len(real)))})
        print(json.dumps(rows[-1]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**run_record("experiments.semantic_arrivals", argv),
                               "snr_db": -4.0, "worth": worth, "setups": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
