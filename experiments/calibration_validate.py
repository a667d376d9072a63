"""A shipped calibration judged on fresh channels, with more realizations, where it is weakest.

    python -m experiments.calibration_validate experiments/scenarios/cdl_c_fr3_480khz.toml \
        --worst 3 --slots 80 --out results/channels/validation

The gap a calibration file reports is measured on the channels it was fitted on, with 20
realizations per point: on fading links a curve's 10 % crossing is then known to about
±0.5-1 dB. This takes the ``--worst`` curves of the scenario's calibration (largest absolute
gap at 10 % BLER after it, or the ``--curves`` given), measures them again in both modes on
``--slots`` new channel realizations (another seed) and writes, per curve, the bit-level,
raw and calibrated BLER and the gaps at 10 % / 1 % BLER with 95 % bootstrap intervals
(:func:`channels.calibration.validate`) to ``OUT/NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main(argv=None):
    from channels.calibration import find_calibration, validate
    from channels.scenario import load_scenario
    from codec.provenance import command_line, git_commit

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", help="scenario TOML with a calibration")
    p.add_argument("--worst", type=int, default=3, help="curves with the largest gap after")
    p.add_argument("--curves", nargs="+", metavar="MCS:BITS", help="these curves instead")
    p.add_argument("--slots", type=int, default=80, help="channel realizations per SNR point")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/channels/validation")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    scenario = load_scenario(a.scenario)
    cal = find_calibration(scenario)
    if cal is None:
        raise SystemExit(f"{a.scenario}: no calibration for this scenario; run `sdgic calibrate "
                         f"{a.scenario}` first")
    if a.curves:
        try:
            curves = [tuple(int(x) for x in c.split(":")) for c in a.curves]
        except ValueError:
            raise SystemExit(f"--curves {a.curves}: expected MCS:BITS, e.g. 18:24") from None
    else:
        ranked = sorted((c for c in cal.curves if c.get("gap10_after_db") is not None),
                        key=lambda c: -abs(c["gap10_after_db"]))
        curves = [(c["mcs"], c["packet_bits"]) for c in ranked[:a.worst]]
    t0 = time.time()
    rows = validate(cal, scenario, seed=a.seed, slots=a.slots, curves=curves, progress=True)
    fitted = {(c["mcs"], c["packet_bits"]): c for c in cal.curves}
    for r in rows:
        r["gap10_fit_db"] = fitted[(r["mcs"], r["packet_bits"])].get("gap10_after_db")
        r["gap10_fit_ci_db"] = fitted[(r["mcs"], r["packet_bits"])].get("gap10_after_ci_db")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{cal.name}.json"
    path.write_text(json.dumps(dict(
        command=command_line("experiments.calibration_validate", argv), commit=git_commit(),
        scenario=cal.name, calibration=cal.describe(), seed=a.seed, slots=a.slots,
        seconds=round(time.time() - t0, 1), curves=rows), indent=1))

    def f(v):
        return "  -  " if v is None else f"{v:+.2f}"

    def ci(v):
        return "" if not v else f" [{v[0]:+.2f}, {v[1]:+.2f}]"

    for r in rows:
        print(f"MCS {r['mcs']:>2} {r['packet_bits']:>5} bits: gap10 on the fit's channels "
              f"{f(r['gap10_fit_db'])}{ci(r['gap10_fit_ci_db'])}, on {a.slots} fresh ones "
              f"raw {f(r['gap10_raw_db'])} → calibrated {f(r['gap10_db'])}{ci(r['gap10_ci_db'])}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
