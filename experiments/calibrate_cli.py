"""``sdgic calibrate``: fit a scenario's abstraction against the bit-level chain.

    sdgic calibrate SCENARIO.toml [--quick] [--workers N] [--out FILE_OR_DIR] [--plot DIR]

Runs :func:`channels.calibration.calibrate` (bit level and abstraction on the same seeded
channels over an MCS x packet size x SNR grid), stores the calibration where the simulator
finds it (:func:`channels.calibration.user_dir` unless ``--out``) and prints the gaps at
10 % BLER before and after. ``--plot DIR`` also writes the BLER curves (bit level,
abstraction before and after, the finite-blocklength bound) and their JSON. Killing it loses
nothing: finished grid points are kept in ``--workdir`` and a rerun reuses them.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

__all__ = ["add_calibrate_command", "cmd_calibrate", "plot_calibration", "write_report"]


def _grid(a):
    from dataclasses import replace

    from channels.calibration import GRIDS

    g = GRIDS["quick" if a.quick else "default"]
    kw = {}
    if a.mcs:
        kw["mcs"] = tuple(a.mcs)
    if a.packet_bits:
        kw["packet_bits"] = tuple(a.packet_bits)
    if a.slots is not None:
        kw["slots"] = a.slots
    if a.snr_points is not None:
        kw["snr_points"] = a.snr_points
    return replace(g, **kw) if kw else g


def cmd_calibrate(a):
    import torch

    from channels import load_scenario
    from channels.calibration import calibrate, user_dir

    torch.set_num_threads(1)
    scenario = load_scenario(a.scenario)
    command = shlex.join(["sdgic", *getattr(a, "argv", ["calibrate", a.scenario])])
    cal = calibrate(scenario, _grid(a), workdir=Path(a.workdir) if a.workdir else None,
                    workers=a.workers, address=a.address, progress=not a.no_progress,
                    command=command)
    out = Path(a.out) if a.out else user_dir()
    path = cal.save(out if out.suffix == ".json" else out / cal.file_name)
    for line in summary_lines(cal):
        print(line)
    print(f"calibration {cal.describe()} written to {path} ({cal.seconds:.0f} s)")
    if a.plot:
        files = write_report(cal, Path(a.plot))
        print(f"report: {', '.join(str(f) for f in files)}")


def summary_lines(cal) -> list[str]:
    """A table of the fitted curves: MCS, packet size, offset, slope, gaps at 10 % / 1 % BLER
    before and after (after: with its 95 % bootstrap interval)."""
    def f(v):
        return "   -  " if v is None else f"{v:+6.2f}"

    def ci(v):
        return "" if not v else f" [{v[0]:+.2f}, {v[1]:+.2f}]"

    lines = [f"{'MCS':>3} {'bits':>5} {'offset dB':>9} {'slope':>5}   gap10 before → after "
             f"[95 % CI]        gap1 before → after"]
    for c in cal.curves:
        fitted = c["informative"] and not c["at_edge"]
        off = f"{c['offset_db']:+9.2f} {c.get('slope', 1.0):5.2f}" if fitted else \
            "  no fit       "
        lines.append(f"{c['mcs']:>3} {c['packet_bits']:>5} {off}   {f(c['gap10_before_db'])} → "
                     f"{f(c['gap10_after_db'])}{ci(c.get('gap10_after_ci_db')):<18}  "
                     f"{f(c['gap1_before_db'])} → {f(c['gap1_after_db'])}"
                     f"{ci(c.get('gap1_after_ci_db'))}")
    s = cal.summary
    if s.get("gap10_before_max_abs_db") is not None:
        lines.append(f"worst |gap| at 10 % BLER: {s['gap10_before_max_abs_db']:.2f} dB before, "
                     f"{s['gap10_after_max_abs_db']:.2f} dB after; within "
                     f"{s.get('tolerance_db', 0.5)} dB: {s.get('gap10_after_within_tolerance')} "
                     f"of {s['gap10_after_curves']} curves, "
                     f"{s.get('gap10_after_within_tolerance_or_ci')} counting the 95 % CIs")
    return lines


def _bound(c: dict, fading: bool):
    import numpy as np

    from channels.bounds import ppv_awgn_error, ppv_rayleigh_error

    n, k = int(c["num_re"]), int(c["packet_bits"])
    snr = np.asarray(c["snr_db"], float)
    return (ppv_rayleigh_error(n, k, snr) if fading else ppv_awgn_error(n, k, snr)).tolist()


def plot_calibration(cal, path: Path) -> Path:
    """One panel per packet size: BLER against SNR per MCS, bit level (markers),
    abstraction before (dashed) and after (solid) the calibration, and the single-shot
    finite-blocklength bound (dotted: PPV normal approximation, averaged over Rayleigh
    fading for fading channels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fading = cal.scenario.get("channel", {}).get("model", "AWGN") != "AWGN"
    sizes = sorted({c["packet_bits"] for c in cal.curves})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.6), squeeze=False)
    cmap = plt.get_cmap("viridis")
    mcs_all = sorted({c["mcs"] for c in cal.curves})
    for ax, bits in zip(axes[0], sizes):
        for c in (c for c in cal.curves if c["packet_bits"] == bits):
            col = cmap(mcs_all.index(c["mcs"]) / max(1, len(mcs_all) - 1))
            snr = np.asarray(c["snr_db"])
            floor = 0.5 / max(1, c["packets"] // len(snr))
            ax.semilogy(snr, np.maximum(c["bler_bit"], floor), "o", color=col, ms=4,
                        label=f"MCS {c['mcs']}")
            ax.semilogy(snr, np.maximum(c["bler_before"], 1e-4), "--", color=col, lw=1)
            ax.semilogy(snr, np.maximum(c["bler_after"], 1e-4), "-", color=col, lw=1.2)
            ax.semilogy(snr, np.maximum(_bound(c, fading), 1e-4), ":", color=col, lw=0.8)
        ax.axhline(0.1, color="0.7", lw=0.6)
        ax.set_ylim(1e-3, 1.05)
        ax.set_xlabel("SNR (Es/N0 per RE) [dB]")
        ax.set_title(f"{bits}-bit packets")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("BLER")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{cal.name}: bit level (o), abstraction before (--) and after (-) "
                 f"calibration, bound (:)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return path


def write_report(cal, out: Path) -> list[Path]:
    """``out/<name>.png`` (+ .pdf) and ``out/<name>.json`` (the calibration with the
    bound per curve)."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    safe = cal.file_name[: -len(f"-{cal.key}.json")]
    fading = cal.scenario.get("channel", {}).get("model", "AWGN") != "AWGN"
    d = cal.to_dict()
    for c in d["curves"]:
        c["bound"] = _bound(c, fading)
        c["bound_kind"] = ("PPV normal approx. averaged over Rayleigh fading" if fading
                           else "PPV normal approx. (AWGN)")
    js = out / f"{safe}.json"
    js.write_text(json.dumps(d, indent=1))
    return [plot_calibration(cal, out / f"{safe}.png"), js]


def add_calibrate_command(sub) -> None:
    """Add ``calibrate`` to an argparse sub-parser set."""
    def positive(v):
        n = int(v)
        if n < 1:
            raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
        return n

    s = sub.add_parser("calibrate", help="fit a scenario's PHY abstraction against the "
                                         "bit-level chain (resumable)")
    s.add_argument("scenario", help="scenario TOML (see channels/scenario.py)")
    s.add_argument("--quick", action="store_true", help="a rough grid: 3 MCS x 2 sizes x 6 "
                                                        "SNRs x 12 slots")
    s.add_argument("--mcs", type=int, nargs="+", help="MCS indices (default: 6 spread over "
                                                      "the table)")
    s.add_argument("--packet-bits", type=positive, nargs="+",
                   help="packet sizes [bits] (default: 24 100 400 2000)")
    s.add_argument("--slots", type=positive, help="channel realizations per SNR point")
    s.add_argument("--snr-points", type=positive, help="SNR points per curve")
    s.add_argument("--workers", type=positive, default=1, help="local Ray workers (1: serial)")
    s.add_argument("--address", help="Ray cluster address")
    s.add_argument("--out", help="calibration file or folder (default: the user calibration "
                                 "folder, where the simulator looks)")
    s.add_argument("--workdir", help="finished grid points (default: ~/.cache/sdgic/"
                                     "calibration/KEY)")
    s.add_argument("--plot", metavar="DIR", help="also write the BLER plot and JSON here")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_calibrate)
