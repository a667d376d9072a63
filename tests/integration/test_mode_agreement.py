"""experiments.mode_agreement: paired abstraction-vs-bit agreement per policy and SNR."""

import numpy as np
import pandas as pd
import pytest

from experiments.mode_agreement import agreement, rankings


def _records(shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for policy, base in (("eep", 0.5), ("uep", 0.7)):
        for snr in (0.0, 8.0):
            for seed in range(5):
                v = base + 0.02 * snr / 8 + rng.normal(0, 0.05)
                for mode, d in (("bit", 0.0), ("abstraction", shift + rng.normal(0, 0.01))):
                    for img in range(3):
                        rows.append(dict(scenario="s", policy=policy, snr_db=snr, mode=mode,
                                         seed=seed, consistency=float(np.clip(v + d, 0, 1))))
    return pd.DataFrame(rows)


def test_modes_that_match_agree_and_shifted_ones_do_not():
    same = agreement(_records(0.0), "consistency")
    assert same.agree.all() and len(same) == 4
    off = agreement(_records(0.2), "consistency")
    assert not off.agree.any()
    assert (off.diff_mean > 0.15).all()
    r = rankings(same)
    assert all(x["bit"] == x["abstraction"] == ["uep", "eep"] for x in r)


def test_one_mode_only_is_refused():
    df = _records(0.0)
    with pytest.raises(ValueError, match="needs both"):
        agreement(df[df["mode"] == "bit"], "consistency")
