"""Whole runs: deadlines, budget, service order, reproducibility, records, both link modes."""

import numpy as np
import pandas as pd
import pytest
from simtest_support import AWGN, BASELINE, RAYLEIGH, RAYLEIGH_LS

from sim import SimConfig, make_policy
from sim.simulation import simulate


def cfg(**kw):
    base = dict(scenario=RAYLEIGH, snr_db=6.0, policy="uep", budget_prbs=3, num_images=6,
                seed=1, codec=BASELINE, decode=False, trace=True, interval_ms=0.5,
                deadline_ms=3.0)            # 6 slots: room for one HARQ round trip (4 slots)
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
    # what the receiver used is exactly what the link delivered by each image's deadline,
    # with the deadline recomputed from the records (arrival + deadline_ms), not taken from
    # the receiver's own bookkeeping
    slot_ms = c.slot_ms
    for img, (_, row) in zip(uep_run.images, r.iterrows()):
        due = (row.arrival_ms + c.deadline_ms) / slot_ms
        ok = tr[(tr.image_id == img.image_id) & tr.success]
        assert (ok.slot + 1 <= due + 1e-9).all()
        sent_ok = sorted(zip(ok.stream, ok.seq))
        assert sorted((p.stream, p.seq) for p in img.delivered) == sent_ok
        for s in ("caption", "hci", "rsrt"):
            assert row[f"delivered_packets_{s}"] == int((ok.stream == s).sum())


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


def test_adaptive_at_bit_level_picks_only_encodable_formats(baseline_codec):
    # at -6 dB OLLA falls to the lowest MCS; at bit level that is the lowest the 5G LDPC
    # encoder can code for each packet (rate >= 1/5), not MCS 0
    out = simulate(cfg(scenario=AWGN, mode="bit", policy="adaptive", snr_db=-6.0, num_images=3),
                   codec=baseline_codec).trace
    assert len(out) and out.mcs.min() >= 1


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


def test_retransmission_gaps_equal_the_harq_rtt(baseline_codec):
    # light load (one image every 20 slots, whole carrier), -2 dB: many NACKs; every
    # retransmission goes out exactly harq_rtt_slots after the NACKed transmission
    for rtt in (3, 5):
        c = cfg(scenario=AWGN, snr_db=-2.0, policy=make_policy("eep", max_retx=3),
                budget_prbs=None, num_images=4, seed=0, interval_ms=10.0, deadline_ms=20.0,
                harq_rtt_slots=rtt)
        tr = simulate(c, codec=baseline_codec).trace
        gaps = [d for _, g in tr.groupby(["image_id", "stream", "seq"])
                for d in np.diff(g.sort_values("attempt").slot).tolist()]
        assert len(gaps) >= 3 and set(gaps) == {rtt}
        assert simulate(c, codec=baseline_codec).records.harq_rtt_slots.eq(rtt).all()


def test_harq_rtt_default_and_validation():
    assert cfg().harq_rtt_slots == 4
    with pytest.raises(ValueError, match=r"harq_rtt_slots = 0 is not supported; allowed: an "
                                         r"integer in \[1, "):
        cfg(harq_rtt_slots=0)


def test_rsrt_tokens_default_to_one_packet_and_re_per_stream(uep_run):
    # default rsrt_tokens_per_packet = 0: all 9 tokens of the baseline codec in one packet
    r = uep_run.records
    assert cfg().rsrt_tokens_per_packet == 0
    assert r.packets_rsrt.eq(1).all() and r.rsrt_tokens.eq(9).all()
    # resource elements per stream, every transmission counted, as the trace saw them
    tr = uep_run.trace
    for _, row in r.iterrows():
        for s in ("caption", "hci", "rsrt"):
            sent = tr[(tr.image_id == row.image_id) & (tr.stream == s)]
            assert row[f"re_{s}"] == int(sent.num_re.sum())
        assert row.re_used == row.re_caption + row.re_hci + row.re_rsrt


def _clear_module_caches():
    import sim.codec_api
    import sim.link_adaptation
    import sim.packetizer
    import sim.simulation
    import sim.sweep

    sim.simulation._LINKS.clear()
    sim.simulation._CACHE = None
    sim.simulation._METRICS = None
    sim.simulation._DECODE_CACHE = None
    sim.codec_api._CODECS.clear()
    sim.sweep._CACHES.clear()
    sim.packetizer._max_payload.cache_clear()
    sim.link_adaptation.abstraction_mcs_range.cache_clear()


@pytest.mark.parametrize("policy", ["uep", "adaptive"])
def test_run_order_does_not_matter(policy):
    # Two different points back to back, in both orders, each order starting from fresh
    # process state (link, codec, caches rebuilt, as in a new process or a Ray worker) and
    # nothing cleared between the two points: a point's records depend on its own seed only,
    # not on what ran before it nor on which process built the link. LS estimation, so the
    # link's pilot symbols are part of every outcome.
    a = cfg(scenario=RAYLEIGH_LS, seed=1, snr_db=6.0, policy=policy, decode=True)
    b = a.replace(seed=2, snr_db=3.0, policy="eep")
    runs: dict = {}
    try:
        for order in ((a, b), (b, a)):
            _clear_module_caches()
            for c in order:
                runs.setdefault(c.point_id(), []).append(simulate(c))
    finally:
        _clear_module_caches()
    for first, second in runs.values():
        pd.testing.assert_frame_equal(first.records, second.records)
        pd.testing.assert_frame_equal(first.trace, second.trace)
    assert "psnr" in first.records
    assert not runs[a.point_id()][0].records.equals(runs[b.point_id()][0].records)


class PickyCodec:
    """A codec without ``streams_of`` whose batch decoder rejects a whole batch when one
    image carries the undecodable caption ``b"\\xff"``; output encodes which streams it used."""

    preset = "picky"

    def encode(self, image, caption=None):
        raise NotImplementedError

    def decode(self, encoded, seed=0):
        return self.decode_batch([encoded], [seed])[0]

    def decode_batch(self, encoded, seeds):
        from codec.errors import CorruptStreamError

        if any(e.caption == b"\xff" for e in encoded):
            raise CorruptStreamError("caption bytes are not a valid caption stream")
        if any(e.caption == b"bug" for e in encoded):
            raise ValueError("a bug in the decoder, not a corrupt stream")
        return [np.full((4, 4, 3), 10 * e.has("caption") + e.has("hci"), np.uint8)
                for e in encoded]


def test_decode_fallback_without_streams_of_is_per_image():
    from codec.container import EncodedImage
    from sim.receiver import ImageInFlight
    from sim.simulation import _decode_and_score
    from sim.source import SourceItem

    sent = EncodedImage(preset="picky", height=4, width=4, caption=b"ab", hci=b"cd")
    bad = EncodedImage(preset="picky", height=4, width=4, caption=b"\xff", hci=b"cd")
    odd = EncodedImage(preset="picky", height=4, width=4, caption=b"ab", hci=b"ce")
    images = [ImageInFlight(0, sent, 0.0, 4.0, received=bad, corrupted=["caption"]),
              ImageInFlight(1, sent, 0.0, 4.0, received=odd, corrupted=["hci"])]
    items = [SourceItem(i, np.zeros((4, 4, 3), np.uint8), None) for i in range(2)]
    recs = _decode_and_score(cfg(decode=True), PickyCodec(), images, items,
                             metrics=lambda refs, recs, items: [{} for _ in recs])
    assert recs[0][0, 0, 0] == 1 and recs[1][0, 0, 0] == 11     # image 1 untouched by image 0
    assert images[0].decoded == bad.without("caption") and images[1].decoded == odd


def test_a_decoder_bug_is_not_recorded_as_a_corrupt_stream():
    from codec.container import EncodedImage
    from sim.receiver import ImageInFlight
    from sim.simulation import _decode_and_score
    from sim.source import SourceItem

    sent = EncodedImage(preset="picky", height=4, width=4, caption=b"bug", hci=b"cd")
    images = [ImageInFlight(0, sent, 0.0, 4.0, received=sent, corrupted=[])]
    items = [SourceItem(0, np.zeros((4, 4, 3), np.uint8), None)]
    with pytest.raises(ValueError, match="a bug in the decoder"):
        _decode_and_score(cfg(decode=True), PickyCodec(), images, items,
                          metrics=lambda refs, recs, items: [{} for _ in recs])


def test_decode_cache_reuses_reconstructions_across_points():
    import sim.simulation

    sim.simulation._DECODE_CACHE = None
    a = cfg(seed=3, snr_db=20.0, policy="uep", decode=True)
    first = simulate(a)
    assert first.stats["decoded_now"] == a.num_images
    again = simulate(a)
    assert again.stats["decoded_now"] == 0
    pd.testing.assert_frame_equal(first.records, again.records)
    eep = simulate(a.replace(policy="eep"))         # same images and seeds, other arrivals
    same = (eep.records["decoded_streams"] == first.records["decoded_streams"]).to_numpy()
    assert same.any()
    assert eep.stats["decoded_now"] == (~same).sum()
    assert (eep.records["psnr"][same] == first.records["psnr"][same]).all()
    uncached = simulate(a.replace(decode_cache=False))
    assert uncached.stats["decoded_now"] is None
    pd.testing.assert_series_equal(first.records["psnr"], uncached.records["psnr"])
    with pytest.raises(ValueError, match="decode_cache"):
        a.replace(decode_cache="yes")


@pytest.mark.parametrize("cache", [True, False])
def test_decode_guidance_reaches_the_decoder(cache):
    from sim.baseline_codec import BaselineCodec

    class Guided(BaselineCodec):
        seen = []

        def decode_batch(self, encoded, seeds, guidance_scale=1.0, precision="fp32",
                         guidance_interval=(0.0, 1.0)):
            Guided.seen.append((guidance_scale, precision, tuple(guidance_interval)))
            return [self.decode(e, s) for e, s in zip(encoded, seeds)]

    codec = Guided()
    simulate(cfg(seed=4, snr_db=20.0, decode=True, decode_cache=cache, decode_guidance=2.5),
             codec=codec)
    assert Guided.seen and set(Guided.seen) == {(2.5, "fp32", (0.0, 1.0))}   # the rest: codec's
    Guided.seen.clear()
    simulate(cfg(seed=4, snr_db=20.0, decode=True, decode_cache=cache, decode_guidance=2.5,
                 decode_precision="bf16", decode_guidance_interval=(0.3, 1.0)), codec=codec)
    assert Guided.seen and set(Guided.seen) == {(2.5, "bf16", (0.3, 1.0))}
    with pytest.raises(ValueError, match="decode_precision"):
        cfg(decode_precision="fp16")
    with pytest.raises(ValueError, match="decode_guidance_interval"):
        cfg(decode_guidance_interval=(0.8, 0.2))
