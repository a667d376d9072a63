"""Simulator speed: images per second of the event model + link, per fidelity mode.

    python -m experiments.sim_benchmark --out results/sim_benchmark.json [--images 40]

Each mode runs one simulation (UEP, TDL-A 30 kHz, full carrier, 10 dB) with the baseline
codec and no decoding, after a warm-up run that builds the link and loads the tables; one
torch thread. ``images_per_s`` counts simulated images per second of event loop + link;
decoding (DPCD) is not included (time it with ``decode = true``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sim import SimConfig
from sim.simulation import simulate

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "tdl_a_30khz.toml"
CODEC = "experiments.sim_baseline_codec:BaselineCodec"


def bench(mode: str, images: int) -> dict:
    cfg = SimConfig(SCENARIO, snr_db=10.0, policy="uep", mode=mode, num_images=images, seed=0,
                    codec=CODEC, decode=False, interval_ms=1.0, deadline_ms=2.0)
    simulate(cfg.replace(num_images=2, seed=99))          # warm-up: link, tables, encoder
    simulate(cfg)                                         # encodes (cached) the images
    t = time.perf_counter()
    out = simulate(cfg)
    dt = time.perf_counter() - t
    return dict(mode=mode, images=images, seconds=dt, images_per_s=images / dt,
                slots_with_traffic=out.stats["slots_used"],
                ms_per_slot=1e3 * out.stats["event_s"] / max(1, out.stats["slots_used"]),
                complete=float(out.records.complete.mean()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/sim_benchmark.json")
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--bit-images", type=int, default=10)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = [bench("abstraction", a.images), bench("bit", a.bit_images)]
    res = dict(machine=platform.processor() or platform.machine(), torch_threads=1,
               scenario=str(SCENARIO.name), results=rows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
