"""At equal quality, how many resource elements each codec needs (error-free link).

    python -m experiments.sscc_equal_quality --out results/sscc

On ``--images`` procedural scenes (the study's data set, 64²): SDGIC (``--preset``, its
default rate point, every stream, decoded with the study's settings) gives a judge
consistency and PSNR; each classical codec is coded to a ladder of bit budgets
(``--budgets``), and the HCI alone at each of its rate points. For each codec the script
interpolates (linearly in log bits, on the mean over images) the bits it needs to reach
SDGIC's mean consistency, and converts bits to resource elements on the study's first
scenario: first transmissions, the packetizer's split, at MCS 5, 11 and 17 (SDGIC: under UEP
and EEP). Writes ``<out>/equal_quality.json`` (with the command, commit and CPU) and
``<out>/plots/quality_vs_bits.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from codec.provenance import run_record

_MCS = (5, 11, 17)


def _interp_bits(bits: np.ndarray, quality: np.ndarray, target: float) -> float | None:
    """Fewest bits at which the (bits, quality) curve, sorted by bits and made monotone
    (running maximum), reaches ``target``; linear in log bits; None if it never does."""
    order = np.argsort(bits)
    b, q = np.asarray(bits, float)[order], np.maximum.accumulate(np.asarray(quality)[order])
    if q[-1] < target:
        return None
    k = int(np.argmax(q >= target))
    if k == 0:
        return float(b[0])
    t = (target - q[k - 1]) / (q[k] - q[k - 1])
    return float(np.exp(np.log(b[k - 1]) + t * (np.log(b[k]) - np.log(b[k - 1]))))


def run(out: Path, n: int, preset: str, budgets: list[int], scenario: str, budget_prbs: int,
        steps: int) -> dict:
    import torch
    from tqdm import tqdm

    from benchmark.judge import SceneJudge
    from benchmark.metrics import psnr
    from benchmark.scenes import generate
    from codec.classical import CLASSICAL_FORMATS, ClassicalCodec
    from codec.hci_alone import HCIAlone
    from codec.sdgic import SDGIC
    from sim.config import SimConfig
    from sim.packetizer import Packetizer
    from sim.policy import make_policy
    from sim.simulation import get_link

    torch.set_num_threads(1)
    t0 = time.time()
    items = [generate(i, seed=0, size=64) for i in range(n)]
    imgs = np.stack([im for im, _ in items])
    scenes = [sc for _, sc in items]
    judge = SceneJudge(None)

    def score(recs) -> tuple[float, float]:
        c = np.mean([d["consistency"] for d in judge.consistency(np.stack(recs), scenes)])
        return float(c), float(np.mean(psnr(imgs, np.stack(recs))))

    cfg = SimConfig(scenario=scenario, snr_db=30.0, budget_prbs=budget_prbs)
    link = get_link(cfg.scenario_obj, "abstraction")

    def packetizer(policy):
        return Packetizer(link, policy, cfg.budget_re)

    rows = []
    sd = SDGIC.from_pretrained(preset)
    enc = [sd.encode(im, caption=sc.caption if sd.caption_stream else None)
           for im, sc in items]
    recs = [sd.decode(e, seed=i, steps=steps) for i, e in enumerate(tqdm(enc, desc=preset))]
    c, p = score(recs)
    sd_row = {"codec": preset, "setting": sd.rate, "bits": float(np.mean([e.total_bits()
                                                                           for e in enc])),
              "consistency": c, "psnr_db": p}
    for pol in ("uep", "eep"):
        pk = packetizer(make_policy(pol))
        sd_row[f"re_{pol}"] = float(np.mean([pk.image_re(e) for e in enc]))
    rows.append(sd_row)
    hci = HCIAlone(preset)
    for rate, codec in hci.hci.items():
        data = [codec.encode(im) for im in imgs]
        recs = [hci.decode(hci.encode(im, budget_bits=8 * len(d))) for im, d in zip(imgs, data)]
        c, p = score(recs)
        rows.append({"codec": "hci", "setting": rate,
                     "bits": float(np.mean([8 * len(d) for d in data])),
                     "consistency": c, "psnr_db": p})
    for name in CLASSICAL_FORMATS:
        codec = ClassicalCodec(name)
        for b in tqdm(budgets, desc=name):
            e = [codec.encode(im, budget_bits=b) for im in imgs]
            sent = [x for x in e if x.has("hci")]
            c, p = score([codec.decode(x) for x in e])
            rows.append({"codec": name, "setting": f"{b} bits", "budget_bits": b,
                         "bits": float(np.mean([x.total_bits() for x in e])),
                         "fraction_sent": len(sent) / len(e), "consistency": c,
                         "psnr_db": p})
    target = sd_row["consistency"]
    needs = {}
    pks = {m: packetizer(make_policy("eep", mcs=m)) for m in _MCS}
    for name in ["hci", *CLASSICAL_FORMATS]:
        pts = [r for r in rows if r["codec"] == name and r.get("fraction_sent", 1.0) == 1.0]
        bits = _interp_bits(np.array([r["bits"] for r in pts]),
                            np.array([r["consistency"] for r in pts]), target) if pts else None
        needs[name] = {"bits": bits, **{f"re_mcs{m}": (pks[m].stream_re("hci", int(
            np.ceil(bits / 8) * 8)) if bits is not None else None) for m in _MCS}}
    record = {
        **run_record("experiments.sscc_equal_quality"), "cpu": platform.processor() or platform.machine(),
        "images": n, "preset": preset, "scenario": scenario, "budget_prbs": budget_prbs,
        "decode_steps": steps, "seconds": round(time.time() - t0, 1),
        "target_consistency": target, "sdgic": sd_row, "needed_for_sdgic_consistency": needs,
        "rows": rows,
        "notes": "bits: mean payload bits per image (classical: the file, headers included); "
                 "RE: resource elements of the first transmission at the given MCS; None: the "
                 "codec never reaches SDGIC's consistency on the ladder"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "equal_quality.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(rows, sd_row, out / "plots" / "quality_vs_bits.png")
    return record


def plot(rows, sd_row, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in ((axes[0], "consistency", "judge consistency"),
                           (axes[1], "psnr_db", "PSNR [dB]")):
        for name in dict.fromkeys(r["codec"] for r in rows[1:]):
            pts = sorted((r["bits"], r[key]) for r in rows if r["codec"] == name
                         and r["bits"] > 0)
            if pts:
                ax.plot(*zip(*pts), "o-", ms=3, label=name)
        ax.plot([sd_row["bits"]], [sd_row[key]], "k*", ms=11, label=f"SDGIC {sd_row['setting']}")
        ax.set_xscale("log")
        ax.set_xlabel("bits per image (error-free)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)



def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder (equal_quality.json, plots/)")
    p.add_argument("--images", type=int, default=24, help="scenes (seed 0, items 0..N-1)")
    p.add_argument("--preset", default="scenes-64")
    p.add_argument("--budgets", type=int, nargs="+",
                   default=[400, 800, 1200, 1600, 2400, 3200, 4800, 6400, 9600, 12800])
    p.add_argument("--scenario", default=str(Path(__file__).parent / "scenarios"
                                             / "tdl_a_30khz.toml"))
    p.add_argument("--budget-prbs", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args(argv)
    rec = run(Path(a.out), a.images, a.preset, a.budgets, a.scenario, a.budget_prbs, a.steps)
    print(json.dumps({"target_consistency": rec["target_consistency"],
                      "sdgic": rec["sdgic"], "needed": rec["needed_for_sdgic_consistency"]},
                     indent=1))


if __name__ == "__main__":
    main()
