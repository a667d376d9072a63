"""Calibrate the PHY abstraction against the bit-level Sionna chain.

BLER vs SNR for both link modes on several MCS x channels, the SNR at 10 % BLER
of each and their gap, with the finite-blocklength bounds (PPV normal
approximation for AWGN, quasi-static Rayleigh outage for fading) drawn beside.
Writes ``results/channels/calibration.json`` and ``calibration.png``.

    python -m experiments.channels_calibration --quick     # ~3-5 min on one busy core
    python -m experiments.channels_calibration             # full: ~40-60 min

Each fading trial uses an independent channel (a new seed per slot), so the
curves are averages over channel realizations.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from channels import Link, Scenario
from channels.bounds import ppv_awgn_error, ppv_snr_db, rayleigh_outage

PACKET_BITS = 512


def scenarios():
    return {
        "AWGN": Scenario.from_dict({"name": "awgn", "channel": {"model": "AWGN"},
                                    "receiver": {"channel_estimation": "perfect"}}),
        "TDL-A (LMMSE est.)": Scenario.from_dict({
            "name": "tdl-a", "channel": {"model": "TDL-A", "delay_spread_ns": 100, "ue_speed_kmh": 3},
            "receiver": {"channel_estimation": "lmmse"}}),
        "TDL-A (perfect CSI)": Scenario.from_dict({
            "name": "tdl-a-perfect", "channel": {"model": "TDL-A", "delay_spread_ns": 100, "ue_speed_kmh": 3},
            "receiver": {"channel_estimation": "perfect"}}),
        "TDL-A (LS est.)": Scenario.from_dict({
            "name": "tdl-a-ls", "channel": {"model": "TDL-A", "delay_spread_ns": 100, "ue_speed_kmh": 3},
            "receiver": {"channel_estimation": "ls", "interpolation": "lin"}}),
        "TDL-C 120 km/h (LMMSE est.)": Scenario.from_dict({
            "name": "tdl-c-vehicular", "channel": {"model": "TDL-C", "delay_spread_ns": 100,
                                                   "ue_speed_kmh": 120},
            "ofdm": {"num_prbs": 24, "pilot_ofdm_symbols": [2, 7, 11]},
            "receiver": {"channel_estimation": "lmmse"}}),
        "CDL-C (LS est.)": Scenario.from_dict({
            "name": "cdl-c", "channel": {"model": "CDL-C", "delay_spread_ns": 100, "ue_speed_kmh": 30},
            "receiver": {"channel_estimation": "ls", "interpolation": "lin_time_avg"}}),
    }


def snr_at(snr, bler, target=0.1):
    """SNR where the BLER curve first crosses ``target`` (interpolated in log BLER)."""
    snr, bler = np.asarray(snr), np.clip(np.asarray(bler, float), 1e-4, 1)
    for i in range(len(snr) - 1):
        if bler[i] >= target > bler[i + 1]:
            a, b = np.log10(bler[i]), np.log10(bler[i + 1])
            return float(snr[i] + (np.log10(target) - a) / (b - a) * (snr[i + 1] - snr[i]))
    return None


def bler_curve(link, mcs, snrs, slots, seed0):
    fmt = link.transport_format(PACKET_BITS, mcs)
    per_slot = max(1, link.num_data_re // fmt.num_re)
    out = []
    for snr in snrs:
        fails = n = 0
        for t in range(slots):
            st = link.new_state(seed0 + t)       # independent realization per trial
            r = link.transmit([PACKET_BITS] * per_slot, mcs, float(snr), 0, st)
            fails += int((~r.success).sum())
            n += len(r.success)
        out.append(fails / n)
        if fails == 0 and snr > snrs[0]:
            out += [0.0] * (len(snrs) - len(out))
            break
    return out, per_slot


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 channels x 2 MCS, fewer trials")
    ap.add_argument("--out", default="results/channels")
    ap.add_argument("--seed", type=int, default=2024)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    allsc = scenarios()
    if a.quick:
        chans, mcss, bit_slots, abs_slots, step = (["AWGN", "TDL-A (LMMSE est.)", "TDL-A (LS est.)"],
                                                   [4, 16], 150, 400, 1.0)
    else:
        chans, mcss, bit_slots, abs_slots, step = list(allsc), [4, 9, 16, 22], 150, 1500, 0.5
    results = []
    for name in chans:
        sc = allsc[name]
        fading = sc.channel.family != "awgn"
        bit, ab = Link(sc, "bit"), Link(sc, "abstraction")
        for mcs in mcss:
            fmt = bit.transport_format(PACKET_BITS, mcs)
            thr = ppv_snr_db(fmt.num_re, PACKET_BITS, 0.1)
            lo, hi = (thr - 1.0, thr + 3.5) if not fading else (thr - 1.0, thr + 14.0)
            snrs = np.round(np.arange(lo, hi + 1e-9, step * (1 if not fading else 2)), 2)
            tb = time.time()
            # AWGN curves are steep (few trials suffice); fading curves are shallow and the
            # 10 % point of a 20-trial curve moves by dB between seeds
            n_bit = bit_slots if fading else max(20, bit_slots // 3)
            b_bit, per_slot = bler_curve(bit, mcs, snrs, n_bit, a.seed)
            t_bit = time.time() - tb
            ta = time.time()
            b_abs, _ = bler_curve(ab, mcs, snrs, abs_slots, a.seed)
            t_abs = time.time() - ta
            s_bit, s_abs = snr_at(snrs, b_bit), snr_at(snrs, b_abs)
            bound = (ppv_awgn_error(fmt.num_re, PACKET_BITS, snrs) if not fading
                     else rayleigh_outage(fmt.num_re, PACKET_BITS, snrs))
            s_bound = ppv_snr_db(fmt.num_re, PACKET_BITS, 0.1,
                                 "awgn" if not fading else "rayleigh_outage")
            row = dict(channel=name, scenario=sc.to_dict(), mcs=mcs,
                       modulation_order=fmt.modulation_order, coderate=fmt.coderate,
                       packet_bits=PACKET_BITS, num_re=fmt.num_re, packets_per_slot=per_slot,
                       snr_db=snrs.tolist(), bler_bit=b_bit, bler_abstraction=b_abs,
                       bound=np.asarray(bound).tolist(),
                       bound_kind="PPV normal approx. (AWGN)" if not fading else "quasi-static Rayleigh outage",
                       snr10_bit=s_bit, snr10_abstraction=s_abs, snr10_bound=s_bound,
                       gap_db=None if s_bit is None or s_abs is None else s_abs - s_bit,
                       packets_bit=n_bit * per_slot, packets_abstraction=abs_slots * per_slot,
                       bit_seconds=t_bit, abstraction_seconds=t_abs)
            results.append(row)
            print(f"{name:22s} MCS {mcs:2d}: SNR@10% bit {s_bit}  abs {s_abs}  gap {row['gap_db']}  "
                  f"bound {s_bound:.2f}  (bit {t_bit:.0f} s, abs {t_abs:.0f} s)", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python -m experiments.channels_calibration" + (" --quick" if a.quick else "")
    (out / ("calibration_quick.json" if a.quick else "calibration.json")).write_text(json.dumps(
        dict(command=cmd, seconds=time.time() - t0, torch_threads=1, results=results), indent=1))
    plot(results, out / ("calibration_quick.png" if a.quick else "calibration.png"))
    print(f"wrote {out} in {time.time() - t0:.0f} s")


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    chans = list(dict.fromkeys(r["channel"] for r in results))
    fig, axes = plt.subplots(1, len(chans), figsize=(5.2 * len(chans), 4.2), squeeze=False)
    for ax, ch in zip(axes[0], chans):
        for i, r in enumerate([r for r in results if r["channel"] == ch]):
            c = f"C{i}"
            s = r["snr_db"]
            ax.semilogy(s, np.maximum(r["bler_bit"], 1e-4), "o-", color=c,
                        label=f"MCS {r['mcs']} bit-level")
            ax.semilogy(s, np.maximum(r["bler_abstraction"], 1e-4), "s--", color=c, mfc="none",
                        label=f"MCS {r['mcs']} abstraction")
            ax.semilogy(s, np.maximum(r["bound"], 1e-4), ":", color=c, label=f"MCS {r['mcs']} {r['bound_kind']}")
        ax.axhline(0.1, color="grey", lw=0.5)
        ax.set_ylim(1e-3, 1.05)
        ax.set_xlabel("SNR (Es/N0 per RE) [dB]")
        ax.set_ylabel("BLER (512-bit packets)")
        ax.set_title(ch)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    main()
