"""Simulator speed: images per second of the event model + link per fidelity mode, and the
sweep speed-up from 1 to 2 Ray workers.

    python -m experiments.sim_benchmark --write            # -> results/sim/benchmark.json
    python -m experiments.sim_benchmark --out FILE.json    # elsewhere
    python -m experiments.sim_benchmark --images 2 --bit-images 1 --sweep-seeds 1  # smoke:
                                                           # prints, writes nothing

Without ``--write`` or ``--out`` nothing is written (results/ holds only deliberate runs).

* ``results``: each mode runs one simulation (UEP, TDL-A 30 kHz, full carrier, 10 dB) with
  the baseline codec and no decoding, after a warm-up run that builds the link and loads the
  tables; one torch thread. ``images_per_s`` counts simulated images per second of event loop
  + link.
* end to end: the same runs with the ``scenes-64`` codec, every image decoded by DPCD (20
  steps, decode cache off) and scored by the judge (``--decode-images``).
* ``sweep``: a small grid (``--sweep-mode``, bit level by default; 2 SNRs × EEP/UEP × ``--sweep-seeds`` seeds,
  ``--sweep-images`` images per point) run serially (``workers=None``, no Ray) and on a local
  Ray with ``workers=2``, each into a fresh results store (the encoded-image cache is warmed
  first, so both time the simulation only). Ray is started before the timed sweep
  (``ray_startup_s``); ``speedup = serial_s / ray_s`` is the sweep's wall time without it,
  ``speedup_with_startup`` with it (what one ``sdgic sweep`` call sees). Ray workers load
  the link and the codec once each, inside the timed sweep. ``identical_records`` checks
  that both give the same records. On a 2-core machine the speed-up is bounded by 2 and
  reduced by whatever else runs on the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from sim import SimConfig
from sim.simulation import simulate

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "tdl_a_30khz.toml"
CODEC = "sim.baseline_codec:BaselineCodec"
DEFAULT_OUT = Path("results") / "sim" / "benchmark.json"


def bench(mode: str, images: int, codec: str = CODEC) -> dict:
    """One simulation's wall time; with ``codec = "scenes-64"`` images are also decoded with
    DPCD (20 steps, no decode cache: every image really decoded) and scored."""
    dec = codec != CODEC
    cfg = SimConfig(SCENARIO, snr_db=10.0, policy="uep", mode=mode, num_images=images, seed=0,
                    codec=codec, decode=dec, decode_cache=False, interval_ms=1.0,
                    deadline_ms=2.0)
    simulate(cfg.replace(num_images=2, seed=99))          # warm-up: link, tables, encoder
    simulate(cfg.replace(decode=False))                   # encodes (cached) the images
    t = time.perf_counter()
    out = simulate(cfg)
    dt = time.perf_counter() - t
    return dict(mode=mode, codec=codec, decode=dec, images=images, seconds=dt,
                images_per_s=images / dt, slots_with_traffic=out.stats["slots_used"],
                ms_per_slot=1e3 * out.stats["event_s"] / max(1, out.stats["slots_used"]),
                decode_s_per_image=out.stats["decode_s"] / images if dec else None,
                complete=float(out.records.complete.mean()))


def sweep_experiment(seeds: int, images: int, mode: str = "abstraction"):
    from sim.experiment import Experiment

    return Experiment("bench-sweep", scenarios=[str(SCENARIO)], snr_db=[4.0, 10.0],
                      policies=["eep", "uep"], seeds=list(range(seeds)), budget_prbs=[None],
                      modes=[mode], base=dict(num_images=images, codec=CODEC, decode=False,
                                              interval_ms=1.0, deadline_ms=2.0))


def bench_sweep(seeds: int, images: int, mode: str = "bit") -> dict:
    """Serial vs 2 Ray workers on the same grid (see the module docstring)."""
    import pandas as pd
    import ray

    from channels.parallel import ray_init_kwargs
    from sim.sweep import run_sweep

    exp = sweep_experiment(seeds, images, mode)
    tmp = Path(tempfile.mkdtemp(prefix="sim-bench-"))
    try:
        enc = tmp / "warm"
        run_sweep(exp, enc, progress=False)                # warm: link, tables, encodings
        times, frames = {}, {}
        for name, workers in (("serial", None), ("ray", 2)):
            out = tmp / name
            out.mkdir()
            shutil.copytree(enc / "encoded", out / "encoded")
            if workers:
                t = time.perf_counter()
                ray.init(num_cpus=workers, **ray_init_kwargs())
                times["startup"] = time.perf_counter() - t
            try:
                t = time.perf_counter()
                frames[name] = run_sweep(exp, out, workers=workers, progress=False)
                times[name] = time.perf_counter() - t
            finally:
                if workers:
                    ray.shutdown()
        try:
            pd.testing.assert_frame_equal(frames["serial"], frames["ray"])
            same = True
        except AssertionError:
            same = False
        return dict(points=len(exp), mode=mode, images_per_point=images, serial_s=times["serial"],
                    ray_workers=2, ray_s=times["ray"], ray_startup_s=times["startup"],
                    speedup=times["serial"] / times["ray"],
                    speedup_with_startup=times["serial"] / (times["ray"] + times["startup"]),
                    identical_records=same)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true",
                   help=f"write the JSON to {DEFAULT_OUT} (default: print only)")
    p.add_argument("--out", help="write the JSON to this file (implies --write)")
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--bit-images", type=int, default=10)
    p.add_argument("--sweep-seeds", type=int, default=16,
                   help="seeds of the sweep grid (2 SNRs x 2 policies each); 0: skip")
    p.add_argument("--sweep-images", type=int, default=20)
    p.add_argument("--sweep-mode", choices=("abstraction", "bit"), default="bit",
                   help="fidelity mode of the sweep grid (abstraction points take ~0.1 s: "
                        "too short for Ray to pay off)")
    p.add_argument("--decode-images", type=int, default=8,
                   help="images of the end-to-end runs with DPCD decoding (0: skip)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = [bench("abstraction", a.images), bench("bit", a.bit_images)]
    if a.decode_images > 0:
        rows += [bench(m, a.decode_images, codec="scenes-64") for m in ("abstraction", "bit")]
    res = dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
               torch_threads=1, scenario=str(SCENARIO.name), results=rows)
    if a.sweep_seeds > 0:
        res["sweep"] = bench_sweep(a.sweep_seeds, a.sweep_images, a.sweep_mode)
    print(json.dumps(res, indent=2))
    if a.write or a.out:
        out = Path(a.out) if a.out else DEFAULT_OUT
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
