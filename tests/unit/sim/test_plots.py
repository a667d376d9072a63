"""Plot helpers: confidence intervals and the finite-blocklength reference."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim.plots import fbl_reference, plot_results, summarize


def test_ci_uses_student_t_over_seeds():
    # two seeds per point: the run means are 0.2 and 0.6 -> s = 0.2828, n = 2
    df = pd.DataFrame({"policy": ["uep"] * 4, "seed": [0, 0, 1, 1],
                       "consistency": [0.1, 0.3, 0.5, 0.7]})
    s = summarize(df, ["policy"], "consistency").iloc[0]
    assert s["count"] == 2 and s["mean"] == pytest.approx(0.4)
    half = stats.t.ppf(0.975, 1) * np.std([0.2, 0.6], ddof=1) / math.sqrt(2)
    assert s["ci95"] == pytest.approx(half)          # 12.71 s / sqrt(2), not 1.96 s / sqrt(2)
    assert s["ci95"] > 6 * 1.96 * np.std([0.2, 0.6], ddof=1) / math.sqrt(2)


def test_ci_is_nan_for_a_single_sample():
    df = pd.DataFrame({"policy": ["uep", "eep", "eep"], "consistency": [0.5, 0.2, 0.4]})
    s = summarize(df, ["policy"], "consistency").set_index("policy")
    assert math.isnan(s.loc["uep", "ci95"])
    assert s.loc["eep", "ci95"] == pytest.approx(stats.t.ppf(0.975, 1) * np.std([0.2, 0.4],
                                                                                ddof=1) / 2 ** .5)


def records(table):
    return pd.DataFrame({"scenario": "s", "mode": "abstraction", "snr_db": [0.0, 4.0],
                         "budget_prbs": 4, "policy": "uep", "seed": 0, "mcs_caption": 9,
                         "mcs_table": table, "bits_caption": 200, "channel_model": "AWGN",
                         "ok_caption": [0.0, 1.0], "ok_hci": 1.0, "ok_rsrt": 1.0,
                         "latency_ms": 1.0, "consistency": [0.2, 0.8]})


def test_fbl_reference_follows_the_mcs_table():
    from channels.transport import transport_format

    t1 = fbl_reference(records(1), [0.0, 4.0])
    t2 = fbl_reference(records(2), [0.0, 4.0])
    assert t1[0]["n"] == transport_format(200, 9, 1).num_re
    assert t2[0]["n"] == transport_format(200, 9, 2).num_re != t1[0]["n"]   # 256QAM table
    assert "single transmission" in t2[0]["label"] and "table 2" in t2[0]["label"]
    assert (np.diff(t2[0]["p_success"]) >= -1e-12).all()


def test_plot_results_writes_files(tmp_path):
    files = plot_results(records(2), tmp_path, metric="consistency")
    assert {f.name for f in files} >= {"consistency_vs_snr.png", "delivery_vs_snr.png",
                                       "latency_cdf.png"}
