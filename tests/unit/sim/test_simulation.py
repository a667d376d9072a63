"""Whole runs: deadlines, budget, service order, reproducibility, records, both link modes."""

import numpy as np
import pandas as pd
import pytest

from sim import SimConfig, make_policy
from sim.simulation import simulate

from simtest_support import AWGN, BASELINE, RAYLEIGH


def cfg(**kw):
    base = dict(scenario=RAYLEIGH, snr_db=6.0, policy="uep", budget_prbs=3, num_images=6,
                seed=1, codec=BASELINE, decode=False, trace=True, interval_ms=0.5,
                deadline_ms=2.0)
    base.update(kw)
    return SimConfig(**base)


@pytest.fixture(scope="module")
def uep_run(baseline_codec):
    return simulate(cfg(), codec=baseline_codec)


def test_deadlines_hold(uep_run):
    c = cfg()
    tr = uep_run.trace
    assert len(tr) > 0
    # every transmission ends (slot + 1) by its packet's deadline
    assert (tr.slot + 1 <= tr.deadline).all()
    ok = tr[tr.success]
    assert (ok.slot + 1 <= ok.deadline).all()
    assert uep_run.stats["late_packets"] == 0
    r = uep_run.records
    for s in ("caption", "hci", "rsrt"):
        lat = r[f"latency_{s}_ms"].dropna()
        assert (lat <= c.deadline_ms + 1e-9).all()
    # every delivered packet of a received image was delivered by the image deadline
    for img in uep_run.images:
        assert all(p.delivered_at <= img.deadline for p in img.delivered)


def test_budget_never_exceeded(uep_run):
    tr = uep_run.trace
    per_slot = tr.groupby("slot").num_re.sum()
    assert per_slot.max() <= cfg().budget_re
    assert uep_run.stats["max_re_in_slot"] <= cfg().budget_re
    assert tr.groupby("slot").mcs.nunique().max() == 1      # one MCS per slot


def test_service_order_in_every_slot(uep_run):
    tr = uep_run.trace
    for _, g in tr.groupby("slot", sort=False):
        keys = list(zip(g.priority, g.attempt.eq(1)))    # (priority, new?) in service order
        assert keys == sorted(keys)


def test_strict_priority_starves_hci_under_overload(uep_run):
    # 1 image per slot and 3 PRBs: caption and RSRT (priority 0, 1) fill most slots, so some
    # HCI packets (priority 2) miss their deadline while no caption does
    r = uep_run.records
    assert r.ok_caption.all()
    assert (~r.ok_hci & (r.packets_hci > 0)).any()


def test_uep_serves_caption_before_hci(uep_run):
    tr = uep_run.trace
    for img, g in tr.groupby("image_id"):
        first = g.groupby("stream").slot.min()
        if "hci" in first and "caption" in first:
            assert first["caption"] <= first["hci"]


def test_same_seed_same_records(baseline_codec, uep_run):
    again = simulate(cfg(), codec=baseline_codec)
    pd.testing.assert_frame_equal(uep_run.records, again.records)
    pd.testing.assert_frame_equal(uep_run.trace, again.trace)
    other = simulate(cfg(seed=2), codec=baseline_codec)
    assert not other.trace[["slot", "success"]].equals(uep_run.trace[["slot", "success"]])


def test_records_are_tidy_and_consistent(uep_run):
    r = uep_run.records
    assert len(r) == 6 and r.image_id.tolist() == list(range(6))
    for col in ("scenario", "seed", "snr_db", "budget_prbs", "policy", "latency_ms",
                "bits_caption", "delivered_bits_hci", "ok_rsrt", "rsrt_lost", "transmissions"):
        assert col in r
    assert (r.delivered_bits_caption <= r.bits_caption).all()
    assert (r.rsrt_tokens_received <= r.rsrt_tokens).all()
    done = r[r.complete]
    assert done.latency_ms.notna().all() and r[~r.complete].latency_ms.isna().all()
    for img, (_, row) in zip(uep_run.images, r.iterrows()):
        lost = [int(x) for x in row.rsrt_lost.split(",") if x]
        rx = img.received
        assert (rx.lost_tokens() if rx.rsrt_tokens is not None else
                list(range(row.rsrt_tokens))) == lost
        assert rx.has("caption") == bool(row.ok_caption)


def test_high_snr_delivers_everything_low_snr_little(baseline_codec):
    light = dict(scenario=AWGN, interval_ms=4.0, budget_prbs=None)
    hi = simulate(cfg(snr_db=20.0, **light), codec=baseline_codec).records
    assert hi.complete.all() and (hi.retransmissions == 0).all()
    lo = simulate(cfg(snr_db=-8.0, **light), codec=baseline_codec).records
    assert lo.ok_caption.mean() < 0.5 and not lo.complete.any()


def test_eep_uses_one_mcs_and_uep_two(baseline_codec):
    e = simulate(cfg(policy="eep", interval_ms=4.0), codec=baseline_codec).trace
    u = simulate(cfg(policy="uep", interval_ms=4.0), codec=baseline_codec).trace
    assert set(e.mcs) == {5}
    assert set(u[u.stream == "hci"].mcs) == {9} and set(u[u.stream != "hci"].mcs) == {3}


def test_adaptive_policy_follows_snr(baseline_codec):
    light = dict(scenario=AWGN, policy="adaptive", interval_ms=4.0, budget_prbs=None)
    lo = simulate(cfg(snr_db=0.0, **light), codec=baseline_codec).trace
    hi = simulate(cfg(snr_db=18.0, **light), codec=baseline_codec).trace
    assert hi[hi.stream == "hci"].mcs.mean() > lo[lo.stream == "hci"].mcs.mean() + 3


def test_abstraction_rejects_mcs_without_bler_tables(baseline_codec):
    with pytest.raises(ValueError, match=r"caption.mcs = 1 .*abstraction.*allowed: 3\.\.28"):
        simulate(cfg(policy=make_policy("uep", robust_mcs=1)), codec=baseline_codec)


def test_decoding_and_metrics_with_a_plugged_metric(baseline_codec):
    seen = {}

    def metric(refs, recs, items):
        seen["n"] = len(recs)
        return [{"mean_abs_error": float(np.abs(a.astype(int) - b.astype(int)).mean())}
                for a, b in zip(refs, recs)]

    out = simulate(cfg(decode=True, scenario=AWGN, snr_db=20.0), codec=baseline_codec,
                   metrics=metric)
    assert seen["n"] == 6 and len(out.reconstructions) == 6
    assert out.reconstructions[0].shape == (64, 64, 3)
    assert (out.records.mean_abs_error < 40).all()      # HCI arrived: a recognizable image


def test_bit_level_short_run(baseline_codec):
    out = simulate(cfg(scenario=AWGN, mode="bit", snr_db=12.0, num_images=2), codec=baseline_codec)
    r = out.records
    assert r.complete.all() and (r.undetected_errors == "").all()
    for img in out.images:     # the receiver rebuilt the streams from the decoded bits
        assert img.received == img.encoded
        assert all(p.received_bits is not None for p in img.delivered)
