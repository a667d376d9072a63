"""Scene generator speed (images per second, one process) → results/scenes_speed.json.

    python -m experiments.bench_scenes [--n 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from benchmark.scenes import generate
from codec.provenance import run_record


def bench(n: int, size: int) -> float:
    generate(0, seed=0, size=size)  # warm caches (photo bank)
    t = time.perf_counter()
    for i in range(n):
        generate(i, seed=123, size=size)
    return n / (time.perf_counter() - t)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--out", default="results/scenes_speed.json")
    a = p.parse_args(argv)
    res = {
        **run_record("experiments.bench_scenes", argv),
        "processes": 1,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "note": "wall clock on a shared 2-core machine; other jobs were running",
        "images_per_second": {str(s): round(bench(a.n, s), 1) for s in (64, 128, 256)},
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
