"""Blends of two ``bench_native`` runs' decodes: where the fidelity–texture trade-off lies.

    python -m experiments.native_blend results/dpcd/native-steps1 results/dpcd/native-steps2 \
        --alphas 0 0.3 0.5 1 [--out results/dpcd/native-steps/blend.json]

Reads each run's ``grid.png`` (rows: source | HCI | SDGIC, lossless; the photos' sizes from its
``bench_native.json``) and scores ``alpha · A + (1 − alpha) · B`` per photo: mean PSNR,
Inception similarity and patch FID, as ``bench_native`` computes them. With A the 1-step decode
(the network's first estimate of the image) and B a sample of more steps from the same seed,
the blend moves along the distortion–perception trade-off, whose optimal estimators are such
interpolations (Freirich, Michaeli and Meir, NeurIPS 2021). Both runs must hold the same photos.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def decodes(run) -> tuple[list, list]:
    """(sources, SDGIC decodes) uint8 (H, W, 3) read back from a run's grid."""
    run = Path(run)
    record = json.loads((run / "bench_native.json").read_text())
    grid_file = run / "grid.png"
    if not grid_file.is_file():
        raise SystemExit(f"{grid_file}: missing (rerun the run's command: {record['command']})")
    grid = np.array(Image.open(grid_file).convert("RGB"))
    y, sources, outs = 0, [], []
    for r in record["images"]:
        h, w = r["height"], r["width"]
        sources.append(grid[y:y + h, :w])
        outs.append(grid[y:y + h, 2 * w:3 * w])
        y += h + 4                                    # bench_native pads each row by 4
    return sources, outs


def main(argv=None) -> None:
    from experiments.bench_native import perceptual, psnr

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a", help="bench_native run folder (weight alpha)")
    p.add_argument("b", help="bench_native run folder (weight 1 - alpha)")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0])
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--out", help="JSON file for the table")
    args = p.parse_args(argv)
    if any(not 0 <= a <= 1 for a in args.alphas):
        raise SystemExit(f"--alphas {args.alphas}: each must be in [0, 1]")
    sources, out_a = decodes(args.a)
    src_b, out_b = decodes(args.b)
    if [s.shape for s in sources] != [s.shape for s in src_b]:
        raise SystemExit("the two runs hold different photos")
    blends = {}
    for alpha in args.alphas:
        blends[f"alpha={alpha:g}"] = [
            np.clip(np.round(alpha * x.astype(float) + (1 - alpha) * y.astype(float)), 0, 255)
            .astype(np.uint8) for x, y in zip(out_a, out_b)]
    scores = perceptual(blends, sources, args.patch)
    table = {k: dict(psnr_db=float(np.mean([psnr(s, x) for s, x in zip(sources, imgs)])),
                     inception_similarity=scores[k]["inception_similarity_mean"],
                     patch_fid=scores[k]["patch_fid"]) for k, imgs in blends.items()}
    result = dict(a=str(args.a), b=str(args.b), photos=len(sources),
                  patches=scores["patches"], blends=table)
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
