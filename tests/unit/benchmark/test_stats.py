"""One confidence-interval definition: Student t, NaN-safe, cut at a bounded metric's bounds."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.stats import ci95, mean_interval, t_quantile


def test_ci95_is_the_student_t_half_width():
    v = [0.2, 0.6, 0.5]
    assert ci95(v) == pytest.approx(stats.t.ppf(0.975, 2) * np.std(v, ddof=1) / math.sqrt(3))
    assert ci95([0.2, np.nan, 0.6, 0.5]) == pytest.approx(ci95(v))      # NaNs left out
    assert math.isnan(ci95([1.0])) and math.isnan(ci95([]))
    assert np.isnan(t_quantile(np.array([1, 2]))[0]) and t_quantile(2) == pytest.approx(12.706,
                                                                                         abs=1e-3)


def test_bounded_intervals_stay_inside_their_bounds():
    m, lo, hi = mean_interval([1.0, 1.0, 0.6], bounds=(0.0, 1.0))
    assert lo < m < hi == 1.0
    _, lo2, hi2 = mean_interval([1.0, 1.0, 0.6])
    assert hi2 > 1.0 and lo2 == pytest.approx(lo)


def test_sweep_summaries_cut_unit_metrics_and_keep_others():
    from sim.plots import summarize

    df = pd.DataFrame({"policy": ["a"] * 3, "consistency": [1.0, 1.0, 0.7],
                       "psnr": [30.0, 31.0, 20.0], "ok_hci": [True, True, False]})
    for col in ("consistency", "ok_hci"):
        s = summarize(df, ["policy"], col).iloc[0]
        assert 0.0 <= s["low"] and s["high"] == 1.0 and s["mean"] + s["ci95"] > 1.0
    s = summarize(df, ["policy"], "psnr").iloc[0]
    assert s["high"] == pytest.approx(s["mean"] + s["ci95"])
