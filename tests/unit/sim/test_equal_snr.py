"""experiments/equal_snr.py: paired per-seed differences at equal SNR."""

import pandas as pd
import pytest

from experiments.equal_snr import equal_snr


def _frame():
    rows = []
    for seed in range(4):
        for img in range(2):
            for pol, val, re in (("semantic", 0.6 + 0.1 * seed, 300), ("eep", 0.5 + 0.1 * seed, 200)):
                rows.append({"scenario": "s", "mode": "abstraction", "snr_db": 0.0,
                             "policy": pol, "seed": seed, "consistency": val, "re_used": re})
    return pd.DataFrame(rows)


def test_paired_difference_and_bounds():
    t = equal_snr(_frame(), "semantic", "eep")
    r = t.iloc[0]
    assert r.seeds == 4 and r.difference == pytest.approx(0.1)
    # the paired difference is constant over seeds: a zero-width interval, although each
    # policy's own interval is wide
    assert r.difference_high - r.difference_low == pytest.approx(0.0, abs=1e-12)
    assert r.policy_high - r.policy_low > 0.1
    assert 0.0 <= r.baseline_low and r.policy_high <= 1.0
    assert (r.policy_re_per_image, r.baseline_re_per_image) == (300, 200)


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="'uep' not in the results"):
        equal_snr(_frame(), "semantic", "uep")


def test_budgets_are_compared_separately():
    # at 1 PRB semantic is 0.2 better, at 8 PRBs equal: pooled, the budgets would mix
    rows = []
    for seed in range(3):
        for prbs, gain in ((1, 0.2), (8, 0.0)):
            for pol, val in (("semantic", 0.5 + gain + 0.05 * seed), ("eep", 0.5 + 0.05 * seed)):
                rows.append({"scenario": "s", "mode": "abstraction", "snr_db": 0.0,
                             "budget_prbs": prbs, "policy": pol, "seed": seed,
                             "consistency": val, "re_used": 100 * prbs})
    t = equal_snr(pd.DataFrame(rows), "semantic", "eep").set_index("budget_prbs")
    assert len(t) == 2
    assert t.loc[1.0, "difference"] == pytest.approx(0.2)
    assert t.loc[8.0, "difference"] == pytest.approx(0.0)
    assert t.loc[8.0, "policy_re_per_image"] == 800
