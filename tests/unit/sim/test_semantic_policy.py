"""The semantic policy spends the budget where the subset table says the meaning is, predicts
what arrives (checked against the simulator itself), and keeps the budget and the deadline."""

import numpy as np
import pandas as pd
import pytest
from simtest_support import AWGN, BASELINE, RAYLEIGH_LS

from benchmark.subset_table import SUBSETS, SubsetTable, subset_name
from sim.config import SimConfig
from sim.policy import ProtectionPolicy, make_policy
from sim.simulation import simulate


def table(worth: dict) -> SubsetTable:
    """An additive table: each stream that arrives adds ``worth[stream]``."""
    value = {subset_name(s): float(sum(worth[x] for x in s)) for s in SUBSETS}
    return SubsetTable("baseline-hci-mid", "toy", {("mid", 9): {"bits": {}, "value": value,
                                                                "ci95": {}}})


@pytest.fixture(scope="module")
def codec():
    from sim.baseline_codec import BaselineCodec

    return BaselineCodec()


def run(codec, worth, snr_db, n=24, seed=1, step_db=0.5, fading_draws=128, **kw):
    codec.subset_table = table(worth)
    cfg = dict(scenario=AWGN, snr_db=snr_db, budget_prbs=3, num_images=n, seed=seed,
               codec=BASELINE, decode=False, trace=True, interval_ms=3.0, deadline_ms=3.0,
               mode="abstraction", calibration="off",
               policy=make_policy("semantic", step_db=step_db, fading_draws=fading_draws))
    cfg.update(kw)
    return simulate(SimConfig(**cfg), codec=codec)


def realized(df, worth):
    return sum(worth[s] * df[f"ok_{s}"].astype(float) for s in worth)


def test_a_worthless_stream_is_never_sent(codec):
    worth = {"caption": 0.5, "hci": 0.3, "rsrt": 0.0}
    for snr in (-4.0, 2.0, 12.0):
        df = run(codec, worth, snr).records
        assert (df.packets_rsrt == 0).all() and df.semantic_rsrt_mcs.isna().all()
        assert (df.packets_caption > 0).all() and (df.packets_hci > 0).all()
        assert not df.ok_rsrt.any()                    # nothing sent, nothing received


def test_with_ample_budget_every_stream_is_protected(codec):
    worth = {"caption": 0.5, "hci": 0.3, "rsrt": 0.2}
    df = run(codec, worth, 0.0, budget_prbs=11, deadline_ms=8.0, interval_ms=8.0).records
    for s in worth:
        assert (df[f"semantic_{s}_p"] > 0.99).all(), s
        assert df[f"ok_{s}"].all(), s
    assert np.allclose(df.semantic_expected, 1.0, atol=0.01)


def test_the_expected_metric_matches_a_monte_carlo_run(codec):
    # AWGN slots fail independently: the model is exact there but for the schedule
    worth = {"caption": 0.5, "hci": 0.3, "rsrt": 0.2}
    for snr in (-5.0, -3.0):
        df = run(codec, worth, snr, n=150, seed=3, step_db=0.0).records
        r = realized(df, worth)
        se = r.std() / np.sqrt(len(r))
        assert abs(df.semantic_expected.mean() - r.mean()) < 3 * se + 0.01, snr
        for s in worth:           # stream by stream too
            p, ok = df[f"semantic_{s}_p"].mean(), df[f"ok_{s}"].mean()
            assert abs(p - ok) < 3 * np.sqrt(p * (1 - p) / len(df)) + 0.02, (snr, s)


def test_on_a_fading_link_the_model_follows_the_fades(codec):
    # Rayleigh fading with LS estimation at 4 dB: taking the report as every packet's SINR
    # predicts near-certain delivery, sends MCS 5 without retransmitting the tokens and
    # loses a fifth of the metric; averaging over the scenario's fades predicts what arrives
    worth = {"caption": 0.5, "hci": 0.3, "rsrt": 0.2}
    out = {}
    for draws in (0, 128):
        df = pd.concat([run(codec, worth, 4.0, n=30, seed=s, step_db=0.0, fading_draws=draws,
                            scenario=RAYLEIGH_LS, trace=False).records for s in range(4)])
        r = realized(df, worth)
        out[draws] = (df.semantic_expected.mean(), r.mean(), r.std() / np.sqrt(len(r)))
    (pred0, real0, _), (pred, real, se) = out[0], out[128]
    assert pred0 > real0 + 0.1                   # the nominal model is far too optimistic
    assert abs(pred - real) < 3 * se + 0.03
    assert real > real0 + 0.05


def test_the_plan_goes_around_other_images_queued_packets(codec):
    from sim.simulation import get_link, semantic_planner

    codec.subset_table = table({"caption": 0.5, "hci": 0.3, "rsrt": 0.2})
    cfg = SimConfig(scenario=AWGN, snr_db=-3.0, budget_prbs=3, num_images=1, codec=BASELINE,
                    decode=False, mode="abstraction", calibration="off",
                    policy=make_policy("semantic", step_db=0.0, fading_draws=0))
    planner = semantic_planner(cfg, codec, get_link(cfg.scenario_obj, "abstraction"))
    enc = codec.encode(np.zeros((64, 64, 3), np.uint8))      # (a blank image: no caption)
    slots, full = 6, (1, planner.budget_re)
    free = planner.decide(enc, slots)
    assert free.choices["hci"].sent and free.choices["rsrt"].sent
    assert free.expected == pytest.approx(0.5, abs=0.01)
    # slots taken ahead of the last stream only, then ahead of every stream: the plan moves
    # its packets behind them, fewer retransmissions fit, less is expected
    behind = planner.decide(enc, slots, [(), (), (full,) * 3])
    late = planner.decide(enc, slots, [(full,) * 3] * 3)
    assert free.expected >= behind.expected >= late.expected
    assert late.expected < free.expected - 0.01
    # a window taken whole sends nothing
    none = planner.decide(enc, slots, [(full,) * slots] * 3)
    assert not any(c.sent for c in none.choices.values()) and none.expected == 0.0


def test_on_a_busy_link_the_first_stream_arrives_as_predicted(codec):
    # images overlap (a new one every slot or two, deadline 3 ms): the queue ahead of an
    # image, NACKed packets waiting for their round trip included, is in the plan
    worth = {"caption": 0.5, "hci": 0.3, "rsrt": 0.2}
    for kw in (dict(budget_prbs=1, interval_ms=2.0, harq_rtt_slots=4),
               dict(budget_prbs=2, interval_ms=1.0, harq_rtt_slots=2)):
        df = run(codec, worth, -4.0, n=120, seed=2, step_db=0.0, trace=False, **kw).records
        first = df[[f"semantic_{s}_p" for s in worth]].idxmax(axis=1).str[9:-2].mode()[0]
        p, ok = df[f"semantic_{first}_p"].mean(), df[f"ok_{first}"].mean()
        assert abs(p - ok) < 3 * np.sqrt(p * (1 - p) / len(df)) + 0.02, (kw, first, p, ok)


def test_budget_and_deadline_are_never_exceeded(codec):
    worth = {"caption": 0.5, "hci": 0.3, "rsrt": 0.2}
    out = run(codec, worth, -2.0, n=30, interval_ms=0.5)     # images overlap: a busy link
    tr, df = out.trace, out.records
    assert tr.groupby("slot").num_re.sum().max() <= out.stats["budget_re"]
    assert (tr.slot + 1 <= tr.deadline).all()
    deadline_ms = 3.0
    for s in worth:
        assert (df[f"latency_{s}_ms"].dropna() <= deadline_ms + 1e-9).all()


def test_a_codec_without_a_table_gets_a_clear_error():
    from sim.baseline_codec import BaselineCodec

    cfg = SimConfig(scenario=AWGN, snr_db=0.0, policy="semantic", num_images=1, codec=BASELINE,
                    decode=False, mode="abstraction", calibration="off")
    with pytest.raises(ValueError, match="sdgic subset-table"):
        simulate(cfg, codec=BaselineCodec())


def test_the_semantic_preset_from_toml_and_old_point_ids():
    p = ProtectionPolicy.from_dict({"preset": "semantic", "max_retx": 2}, name="sem")
    assert p.semantic["max_retx"] == 2 and p.name == "sem"
    assert "semantic" not in make_policy("uep").to_dict()     # ids of other policies hold
    with pytest.raises(ValueError, match="max_retx"):
        make_policy("semantic", max_retx=-1)
