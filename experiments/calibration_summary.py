"""Table of the shipped calibrations: the abstraction's gap to bit level before and after.

    python -m experiments.calibration_summary [--calibrations channels/calibrations]
                                              [--out results/channels/calibration]

Reads every calibration file (``sdgic calibrate`` writes them) and writes ``summary.json``
and ``summary.md``: per scenario the grid, the time it took, and the worst and mean absolute
gaps (abstraction minus bit level, SNR at 10 % and 1 % BLER) over its curves, before and
after the calibration, and how many curves are within 0.5 dB after it (or have a 95 %
bootstrap interval over channel realizations that reaches into that band).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from channels.calibration import SHIPPED_DIR, Calibration


def rows(folder: Path) -> list[dict]:
    out = []
    for f in sorted(Path(folder).glob("*.json")):
        cal = Calibration.load(f)
        s = cal.summary
        g = cal.grid
        out.append(dict(
            scenario=cal.name, key=cal.key, file=f.name, command=cal.command,
            seconds=round(sum(c.get("seconds", 0.0) for c in cal.curves), 1),
            curves=s.get("curves"), curves_fitted=s.get("curves_fitted"),
            mcs=cal.mcs, packet_bits=cal.packet_bits, snr_points=g.get("snr_points"),
            slots=g.get("slots"),
            offsets_db_range=[min(min(r) for r in cal.offset_db),
                              max(max(r) for r in cal.offset_db)],
            slopes_fitted=sum(c.get("slope", 1.0) != 1.0 for c in cal.curves),
            slopes_range=[min(c.get("slope", 1.0) for c in cal.curves),
                          max(c.get("slope", 1.0) for c in cal.curves)],
            **{k: s.get(k) for k in s if k.startswith("gap")}))
    return out


def markdown(table: list[dict]) -> str:
    def f(v):
        return "–" if v is None else f"{v:.2f}"

    lines = ["| scenario | curves (fitted) | offsets [dB] | slopes ≠ 1 (range) | worst abs. gap "
             "at 10 % before → after [dB] | mean abs. gap at 10 % before → after | curves "
             "within 0.5 dB at 10 % (or whose 95 % CI reaches it) | worst abs. gap at 1 % "
             "before → after "
             "| core-minutes of grid points |", "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lo, hi = r["offsets_db_range"]
        slo, shi = r["slopes_range"]
        lines.append(
            f"| {r['scenario']} | {r['curves']} ({r['curves_fitted']}) | {lo:+.1f} … {hi:+.1f} | "
            f"{r['slopes_fitted']} ({slo:.2f} … {shi:.2f}) | "
            f"{f(r.get('gap10_before_max_abs_db'))} → **{f(r.get('gap10_after_max_abs_db'))}** | "
            f"{f(r.get('gap10_before_mean_abs_db'))} → {f(r.get('gap10_after_mean_abs_db'))} | "
            f"{r.get('gap10_after_within_tolerance')} "
            f"({r.get('gap10_after_within_tolerance_or_ci')}) of {r.get('gap10_after_curves')} | "
            f"{f(r.get('gap1_before_max_abs_db'))} → {f(r.get('gap1_after_max_abs_db'))} | "
            f"{r['seconds'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calibrations", default=str(SHIPPED_DIR))
    p.add_argument("--out", default="results/channels/calibration")
    a = p.parse_args(argv)
    table = rows(Path(a.calibrations))
    if not table:
        raise SystemExit(f"no calibration files in {a.calibrations}; run `sdgic calibrate` first")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python -m experiments.calibration_summary"
    (out / "summary.json").write_text(json.dumps(dict(command=cmd, scenarios=table), indent=1))
    (out / "summary.md").write_text(
        f"Gaps of the abstraction to the bit-level chain (SNR at 10 % / 1 % BLER, abstraction "
        f"minus bit level), before and after each scenario's calibration. "
        f"Made by `{cmd}` from the calibration files; each file holds its own command.\n\n"
        + markdown(table))
    print(markdown(table))


if __name__ == "__main__":
    main()
