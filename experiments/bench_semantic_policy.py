"""Cost of the semantic policy's decisions against the cost of simulating a slot.

    python -m experiments.bench_semantic_policy [--images 60] [--out results/sim/bench_semantic_policy.json]

One run of the simulator (abstraction mode, the baseline test codec with an additive subset
table, TDL-A 30 kHz, 3 PRBs, an image per 2 slots) under UEP and under the semantic policy:
wall time per simulated slot, and the planner's decisions per second, first for images whose
packet layout it has not seen (a search) and then from its cache, and the planner's fading
sample (once per link and SNR in a process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from benchmark.subset_table import SUBSETS, SubsetTable, subset_name
from codec.provenance import run_record

WORTH = {"caption": 0.5, "hci": 0.3, "rsrt": 0.2}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=60)
    p.add_argument("--out", default="results/sim/bench_semantic_policy.json")
    a = p.parse_args(argv)
    import torch

    from sim.baseline_codec import BaselineCodec
    from sim.config import SimConfig
    from sim.simulation import semantic_planner, simulate

    torch.set_num_threads(1)
    codec = BaselineCodec()
    codec.subset_table = SubsetTable("baseline-hci-mid", "toy", {("mid", 9): {
        "bits": {}, "ci95": {},
        "value": {subset_name(s): sum(WORTH[x] for x in s) for s in SUBSETS}}})
    base = dict(scenario="experiments/scenarios/tdl_a_30khz.toml", snr_db=2.0, budget_prbs=3,
                num_images=a.images, seed=0, codec="sim.baseline_codec:BaselineCodec",
                decode=False, interval_ms=1.0, deadline_ms=3.0, mode="abstraction")
    res = {**run_record("experiments.bench_semantic_policy", argv),
           "cpu": platform.processor() or platform.machine(), "threads": 1,
           "load_average_at_start": os.getloadavg()[0],
           "setup": {k: v for k, v in base.items() if k != "codec"}, "runs": {}}
    for policy in ("uep", "semantic"):
        simulate(SimConfig(**{**base, "policy": policy, "num_images": 2}), codec=codec)  # warm
        t = time.perf_counter()
        out = simulate(SimConfig(**{**base, "policy": policy}), codec=codec)
        dt = time.perf_counter() - t
        res["runs"][policy] = {"seconds": round(dt, 3), "slots": int(out.stats["slots"]),
                               "ms_per_slot": round(1e3 * dt / out.stats["slots"], 3)}
        if policy == "semantic":   # searches: decisions not found in the planner's cache
            res["runs"][policy].update(decisions=out.stats["planner_decisions"],
                                       searches=out.stats["planner_searches"])
    # decisions alone: a fresh planner, the run's images
    cfg = SimConfig(**{**base, "policy": "semantic"})
    from sim.simulation import get_link

    link = get_link(cfg.scenario_obj, cfg.mode, cfg.calibration_obj())
    from sim.source import make_source

    source = make_source(cfg.dataset)
    encoded = [codec.encode(source[i].image, caption=source[i].caption)
               for i in range(a.images)]
    planner = semantic_planner(cfg, codec, link)
    t = time.perf_counter()     # the planner's fading sample, once per link and SNR
    link.effective_sinr_db(cfg.snr_db, planner.mcs, num_re=cfg.budget_re,
                           num_draws=planner.fading_draws,
                           slots=[k * planner.rtt for k in range(planner.max_retx + 1)], seed=1)
    setup = time.perf_counter() - t
    t = time.perf_counter()
    for e in encoded:
        planner.decide(e, 6)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    for e in encoded:
        planner.decide(e, 6)
    warm = time.perf_counter() - t
    res["decisions"] = {"fading_sample_s": round(setup, 3),
                        "fading_draws": planner.fading_draws,
                        "images": a.images, "distinct_layouts": len(planner._decisions),
                        "first_pass_per_s": round(a.images / cold, 1),
                        "cached_per_s": round(a.images / warm, 1),
                        "first_pass_ms_each": round(1e3 * cold / a.images, 2)}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
