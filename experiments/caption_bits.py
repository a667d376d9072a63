"""Bits per caption of the caption stream on held-out scene captions.

    python experiments/caption_bits.py            # measure the shipped model
    python experiments/caption_bits.py --refit    # refit codec/streams/caption_model.json first
    python experiments/caption_bits.py --refit --detail layout --model PRESET/caption_model.json
                                                  # → results/caption_bits_layout.json

Writes ``results/caption_bits.json``: whole-byte bits per caption (median, mean, p95, by
object count), the model's ideal information content, and UTF-8 / zlib baselines, with the
command that produced them. The model is fitted on scene data set ``--fit-seed``; evaluation
uses ``--eval-seed``, which must differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmark.scene_captions import fit_scene_model, scene_captions  # noqa: E402
from codec.preset import CAPTION_DETAILS  # noqa: E402
from codec.provenance import run_record  # noqa: E402
from codec.streams.caption_coder import DEFAULT_MODEL_PATH, CaptionCoder  # noqa: E402


def stats(bits) -> dict:
    """Summary of a list of bit counts."""
    a = np.asarray(bits, dtype=np.float64)
    return {"median": float(np.median(a)), "mean": round(float(a.mean()), 3),
            "p95": float(np.percentile(a, 95)), "min": float(a.min()), "max": float(a.max())}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--refit", action="store_true", help="refit and overwrite the shipped model")
    p.add_argument("--fit-seed", type=int, default=7001)
    p.add_argument("--fit-n", type=int, default=20000)
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--eval-seed", type=int, default=2002)
    p.add_argument("--eval-n", type=int, default=1000)
    p.add_argument("--detail", choices=CAPTION_DETAILS, default="full",
                   help="caption detail to fit and measure (layout: a preset's own model)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "caption_bits.json")
    args = p.parse_args(argv)
    if args.detail != "full" and args.model.resolve() == DEFAULT_MODEL_PATH:
        p.error(f"--detail {args.detail} needs --model PRESET/caption_model.json: the default "
                "is the shipped full-detail model")
    if args.detail != "full" and args.out == p.get_default("out"):
        args.out = args.out.with_name(f"caption_bits_{args.detail}.json")
    if args.eval_seed == args.fit_seed:
        p.error(f"--eval-seed={args.eval_seed} equals --fit-seed; use a held-out seed")

    if args.refit:
        model = fit_scene_model(args.detail, args.fit_n, args.fit_seed, args.order, args.alpha)
        CaptionCoder(model).save(args.model)
    coder = CaptionCoder.load(args.model)

    captions = scene_captions(args.eval_n, args.eval_seed, detail=args.detail)
    t0 = time.perf_counter()
    encoded = [coder.encode(c) for c in captions]
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = [coder.decode(e) for e in encoded]
    t_dec = time.perf_counter() - t0
    mismatches = sum(d != c for d, c in zip(decoded, captions))
    bits = [8 * len(e) for e in encoded]
    n_obj = [c.count(" and ") + c.count(", ") + 1 for c in captions]
    result = {
        **run_record("experiments.caption_bits", argv),
        "model": {"path": str(Path(args.model).resolve().relative_to(ROOT))
                  if Path(args.model).resolve().is_relative_to(ROOT) else str(args.model),
                  "source": coder.model.get("source", ""),
                  "fit_command": f"python experiments/caption_bits.py --refit --fit-seed "
                                 f"{args.fit_seed} --fit-n {args.fit_n} --order {args.order} "
                                 f"--alpha {args.alpha} --detail {args.detail}",
                  "order": coder.order,
                  "alpha": coder.model["alpha"], "vocab_size": len(coder.vocab)},
        "eval": {"captions": args.eval_n, "scene_seed": args.eval_seed, "detail": args.detail,
                 "round_trip_mismatches": mismatches},
        "bits_per_caption": stats(bits),
        "bits_per_caption_by_objects": {str(k): dict(stats([b for b, n in zip(bits, n_obj)
                                                            if n == k]),
                                                     count=n_obj.count(k))
                                        for k in sorted(set(n_obj))},
        "ideal_bits_per_caption_mean": round(float(np.mean([coder.ideal_bits(c)
                                                            for c in captions])), 3),
        "baselines_bits_per_caption": {
            "utf8": stats([8 * len(c.encode()) for c in captions]),
            "zlib_level9": stats([8 * len(zlib.compress(c.encode(), 9)) for c in captions]),
        },
        "ms_per_caption": {"encode": round(1e3 * t_enc / len(captions), 3),
                           "decode": round(1e3 * t_dec / len(captions), 3)},
        "note": "bits count whole bytes of the caption stream (8 * len(encode(text)))",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["bits_per_caption"]), f"mismatches={mismatches}", f"→ {args.out}")
    if mismatches:
        raise SystemExit(f"{mismatches} captions did not round-trip")
    return result


if __name__ == "__main__":
    main()
