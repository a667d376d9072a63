import numpy as np
import pandas as pd
import pytest

from sim.snr_gain import snr_gain, snr_to_reach


def test_snr_to_reach_interpolates_and_reports_never():
    snr = np.array([0.0, 2.0, 4.0])
    assert snr_to_reach(snr, np.array([0.1, 0.5, 0.9]), 0.7) == pytest.approx(3.0)
    assert snr_to_reach(snr, np.array([0.8, 0.9, 0.9]), 0.5) == 0.0
    assert np.isnan(snr_to_reach(snr, np.array([0.1, 0.2, 0.3]), 0.5))


def _logistic(snr, shift):
    return 0.2 + 0.7 / (1 + np.exp(-(snr - shift)))


def test_a_curve_shifted_by_3_db_gains_3_db():
    snr = np.arange(-10.0, 12.5, 0.5)
    rows = []
    for seed in range(4):
        noise = 0.005 * (seed - 1.5)
        for s in snr:
            rows.append(dict(scenario="x", mode="bit", seed=seed, snr_db=s, policy="eep",
                             consistency=_logistic(s, 2.0) + noise))
            rows.append(dict(scenario="x", mode="bit", seed=seed, snr_db=s, policy="uep",
                             consistency=_logistic(s, -1.0) + noise))
    out = snr_gain(pd.DataFrame(rows), levels=(0.5,), boot=50)
    assert len(out) == 1
    assert out[0]["gain_db"] == pytest.approx(3.0, abs=0.15)
    assert out[0]["gain_ci95_low_db"] <= out[0]["gain_db"] <= out[0]["gain_ci95_high_db"]
    with pytest.raises(ValueError, match="adaptive"):
        snr_gain(pd.DataFrame(rows), policy="adaptive")
