"""DPCD decode time per image and peak memory on this CPU → results/dpcd/bench_decode.json.

    python -m experiments.bench_decode [--preset scenes-64] [--steps 20] [--batches 1,16]
                                       [--guidance-scale G] [--guidance-interval LO:HI]
                                       [--precision fp32|bf16] [--resolution R]

Times ``SDGIC.decode_batch`` (all three streams present) after one warm-up call, for each
batch size, with ``--threads`` torch threads; peak memory is the process's max RSS.
``--resolution R`` runs the preset's networks at R×R instead of the resolution they were
trained at: the images are meaningless, but the time and memory are those of a preset with the
same networks trained at R (the UNet and ControlNet are convolutional and the RSRT embedding
is a lookup, so the cost depends on the size they run at, not on their weights). That holds for
a preset in the same model space: a latent-space preset at R runs its UNet at R / factor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch

from benchmark.scenes import generate
from codec.preset import Preset
from codec.provenance import run_record
from codec.sdgic import SDGIC, preset_folder
from experiments.cli import interval_arg


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="scenes-64")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batches", default="1,16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance scale (default: the preset's; > 1 doubles the "
                        "UNet batch)")
    p.add_argument("--guidance-interval", type=interval_arg, default=None, metavar="LO:HI",
                   help="guide only at timesteps t/T in [LO, HI] (default: the preset's)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="decoder arithmetic (default: the preset's)")
    p.add_argument("--resolution", type=int, default=None,
                   help="run the networks at R×R (default: the preset's); for timing only, "
                        "see the module docstring")
    p.add_argument("--note", default="", help="what else ran on the machine (recorded)")
    p.add_argument("--out", default="results/dpcd/bench_decode.json")
    a = p.parse_args(argv)
    if a.resolution is not None and a.resolution < 8:
        p.error(f"--resolution {a.resolution}: expected a side of at least 8 pixels")
    torch.set_num_threads(a.threads)
    try:
        codec = SDGIC.from_pretrained(a.preset, **({} if a.resolution is None
                                                   else {"resolution": a.resolution}))
    except ValueError as e:           # e.g. a resolution the model space cannot take
        p.error(str(e))
    down = 2 ** (len(codec.unet.config.block_out_channels) - 1) * codec.space.factor
    if codec.resolution % down:
        p.error(f"--resolution {codec.resolution}: the UNet halves the image "
                f"{down.bit_length() - 1} times, so the side must be a multiple of {down}")
    g = codec.guidance_scale if a.guidance_scale is None else a.guidance_scale
    prec = a.precision or codec.precision
    gi = codec.guidance_interval if a.guidance_interval is None else a.guidance_interval
    sizes = [int(b) for b in a.batches.split(",")]
    scenes = [generate(i, seed=9009, size=codec.resolution) for i in range(max(sizes))]
    enc = [codec.encode(img, caption=sc.describe(codec.caption_detail) if codec.caption_stream
                        else None)  # a captionless preset (photos-64) refuses a caption
           for img, sc in scenes]
    codec.decode_batch(enc[:1], steps=2, guidance_scale=g, precision=prec,
                       guidance_interval=gi)  # warm-up
    per_image = {}
    for b in sizes:
        times = []
        for r in range(a.repeats):
            t = time.perf_counter()
            codec.decode_batch(enc[:b], seeds=list(range(b)), steps=a.steps, guidance_scale=g,
                               precision=prec, guidance_interval=gi)
            times.append(time.perf_counter() - t)
        per_image[str(b)] = round(min(times) / b, 3)
    res = {
        **run_record("experiments.bench_decode", argv),
        "preset": codec.preset, "resolution": codec.resolution,
        "trained_resolution": Preset.load(preset_folder(a.preset)).resolution, "steps": a.steps,
        "guidance_scale": g, "guidance_interval": list(gi), "precision": prec,
        "paths": {"controlnet": codec.controlnet is not None,
                  "rsrt": codec.rsrt_encoder is not None},
        "torch_threads": a.threads, "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "seconds_per_image_by_batch_size": per_image,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_seconds_per_image": 1.5,
        "timing": "best of --repeats wall-clock runs",
        "note": a.note,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
