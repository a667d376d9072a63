"""Semantic consistency and decode time vs one decoder setting, paired → results/dpcd/decode_<setting>.{json,png}.

    python -m experiments.decode_sweep --vary precision --values fp32,bf16
    python -m experiments.decode_sweep --vary steps --values 20,10,14,40
    python -m experiments.decode_sweep --vary guidance_scale --values 1,2.5,5,7.5 --streams sdgic,caption
    python -m experiments.decode_sweep --vary guidance_interval --values 0:1,0:0.6,0.3:1

Held-out scenes (seed 7007, as ``experiments/dpcd_eval.py``), captions from the shipped scene
captioner, HCI at the preset's default rate point. A guidance interval is written ``lo:hi``
(guidance only at timesteps t/T in [lo, hi]). Every value decodes the same encodings with
the same per-image seeds, so differences against the first value (the reference) are paired:
the JSON gives each value's mean consistency with a 95 % CI, the paired mean difference to
the reference with its 95 % CI, and the judge's accuracy per attribute, per stream set
(``sdgic``: everything; ``caption``: the caption alone). The settings not varied are the
preset's (or ``--steps``/``--guidance-scale``/``--guidance-interval``/``--precision``). Decode
time per image is recorded too: run nothing else on the machine when the times matter.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmark.codec_eval import EVAL_SEED, decode_in_batches, held_out
from benchmark.evaluate import score_images
from benchmark.stats import ci95
from codec.preset import PRECISIONS, format_guidance_interval, parse_guidance_interval
from codec.sdgic import SDGIC
from experiments.cli import interval_arg


def _label(v):
    """A setting value as JSON and the command line write it (an interval as ``"lo:hi"``)."""
    return format_guidance_interval(v) if isinstance(v, tuple) else v


SETTINGS = {"guidance_scale": float, "guidance_interval": parse_guidance_interval, "steps": int,
            "precision": str, "strength": float}
STREAM_SETS = {"sdgic": "caption + HCI + RSRT", "caption": "caption only"}


def run(preset: str, n: int, vary: str, values: list, out: Path,
        streams: tuple[str, ...] = ("sdgic",), batch: int = 16, **fixed) -> dict:
    """Decode ``n`` held-out scenes once per value of setting ``vary`` (``values[0]`` is the
    reference); ``fixed`` sets the other settings (None: the preset's). Writes
    ``out/decode_<vary>.{json,png}`` and returns the JSON dict."""
    if vary not in SETTINGS:
        raise ValueError(f"vary={vary!r}; expected one of {sorted(SETTINGS)}")
    unknown = sorted(set(streams) - set(STREAM_SETS))
    if unknown:
        raise ValueError(f"unknown stream sets {unknown}; expected some of {sorted(STREAM_SETS)}")
    if not values:
        raise ValueError("no values to sweep")
    unknown = sorted(set(fixed) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; expected some of {sorted(SETTINGS)}")
    codec = SDGIC.from_pretrained(preset)
    base = {"guidance_scale": codec.guidance_scale, "guidance_interval": codec.guidance_interval,
            "steps": codec.steps, "precision": codec.precision,
            "strength": codec.decode_settings.strength}
    base.update({k: v for k, v in fixed.items() if v is not None})
    images, scenes, captions, captioner, _ = held_out(codec, n)
    enc = [codec.encode(im, caption=c) for im, c in zip(images, captions)]
    sets = {"sdgic": enc, "caption": [e.without("hci", "rsrt") for e in enc]}
    for v in values:    # warm-up: the first timed value must not pay for kernel set-up
        setting = {**base, vary: v}
        codec.decode_batch(enc[:1], steps=2, guidance_scale=setting["guidance_scale"],
                           precision=setting["precision"],
                           guidance_interval=setting["guidance_interval"])
    res = {"preset": preset, "card_stages": {k: v.get("steps") for k, v in
                                             codec.card.get("stages", {}).items()},
           "n": n, "eval_seed": EVAL_SEED, "rate": codec.rate, "vary": vary,
           "reference": _label(values[0]),
           "fixed": {k: _label(v) for k, v in base.items() if k != vary},
           "torch_threads": torch.get_num_threads(), "rows": []}
    for name in streams:
        ref = None
        for v in values:
            setting = {**base, vary: v}
            t0 = time.perf_counter()
            recs = decode_in_batches(codec, sets[name], setting["steps"], batch,
                                     f"{name} {vary}={_label(v)}", setting["guidance_scale"],
                                     setting["precision"], setting["guidance_interval"])
            sec = (time.perf_counter() - t0) / n
            df, _ = score_images(images, recs, scenes, inception=False, captioner=captioner)
            c = df["consistency"].to_numpy(float)
            row = {"streams": name, vary: _label(v), "consistency": float(c.mean()),
                   "consistency_ci95": ci95(c), "psnr": float(df["psnr"].mean()),
                   "seconds_per_image": round(sec, 3),
                   "judge": {k.removeprefix("judge_"): round(float(df[k].mean()), 4)
                             for k in df.columns if k.startswith("judge_")}}
            if ref is None:
                ref = c
            else:
                d = c - ref
                row.update(diff_vs_ref=float(d.mean()), diff_vs_ref_ci95=ci95(d))
            res["rows"].append(row)
            print(json.dumps(row), flush=True)
    # every setting in use goes into the command: a preset's precision depends on the machine
    fixed_args = "".join(f" --{k.replace('_', '-')} {_label(v)}" for k, v in base.items()
                         if k != vary)
    res["command"] = (f"python -m experiments.decode_sweep --preset {preset} --n {n} "
                      f"--vary {vary} --values {','.join(str(_label(v)) for v in values)} "
                      f"--streams {','.join(streams)}{fixed_args} "
                      f"--threads {torch.get_num_threads()} --out {out}")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"decode_{vary}.json").write_text(json.dumps(res, indent=2) + "\n")
    _plot(res, out / f"decode_{vary}.png")
    return res


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vary = res["vary"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    labels = [str(v) for v in dict.fromkeys(r[vary] for r in res["rows"])]
    numeric = all(isinstance(r[vary], (int, float)) for r in res["rows"])
    for name in dict.fromkeys(r["streams"] for r in res["rows"]):
        rows = [r for r in res["rows"] if r["streams"] == name]
        if numeric:
            rows = sorted(rows, key=lambda r: r[vary])
        x = [r[vary] for r in rows] if numeric else [labels.index(str(r[vary])) for r in rows]
        ax.errorbar(x, [r["consistency"] for r in rows],
                    yerr=[r["consistency_ci95"] for r in rows], marker="o", capsize=3,
                    linestyle="-" if numeric else "none", label=STREAM_SETS[name])
    if not numeric:
        ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(vary.replace("_", " "))
    ax.set_ylabel("semantic consistency (judge)")
    ax.set_title(f"{res['preset']}, {res['n']} held-out scenes, HCI {res['rate']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="scenes-64")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--vary", required=True, choices=sorted(SETTINGS))
    p.add_argument("--values", required=True,
                   help="comma-separated values; the first is the reference of the paired "
                        "differences")
    p.add_argument("--streams", default="sdgic", help="comma-separated: sdgic, caption")
    p.add_argument("--guidance-scale", type=float, help="when not varied (default: preset's)")
    p.add_argument("--guidance-interval", type=interval_arg, metavar="LO:HI",
                   help="when not varied (default: preset's)")
    p.add_argument("--steps", type=int, help="when not varied (default: preset's)")
    p.add_argument("--precision", choices=PRECISIONS, help="when not varied (default: preset's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/dpcd")
    a = p.parse_args(argv)
    try:
        values = [SETTINGS[a.vary](v.strip()) for v in a.values.split(",") if v.strip()]
    except ValueError as e:
        p.error(f"--values {a.values!r}: not all {a.vary} values ({e})")
    if a.vary == "precision" and any(v not in PRECISIONS for v in values):
        p.error(f"precision values must be among {PRECISIONS}; got {a.values}")
    if a.vary in ("guidance_scale", "steps") and any(v <= 0 for v in values):
        p.error(f"{a.vary} values must be positive; got {a.values}")
    if a.n < 2:
        p.error("--n must be at least 2 (confidence intervals)")
    torch.set_num_threads(a.threads)
    run(a.preset, a.n, a.vary, values, Path(a.out), tuple(a.streams.split(",")),
        guidance_scale=a.guidance_scale, guidance_interval=a.guidance_interval, steps=a.steps,
        precision=a.precision)


if __name__ == "__main__":
    main()
