"""The simulator and a scenario's calibration: used when found, warned or refused when not,
named in the records and in the point id. No bit-level runs (a hand-made calibration)."""

import warnings

import numpy as np
import pytest
from simtest_support import BASELINE, RAYLEIGH_LS

from channels import calibration as C
from sim import SimConfig, run_simulation
from sim.link_calibration import UncalibratedScenarioWarning, forget_calibrations


@pytest.fixture(autouse=True)
def _own_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("SDGIC_CALIBRATIONS", raising=False)
    monkeypatch.setattr(C, "SHIPPED_DIR", tmp_path / "shipped")
    forget_calibrations()
    yield
    forget_calibrations()


def _cal(offset: float):
    return C.Calibration(key=C.scenario_key(RAYLEIGH_LS), scenario=RAYLEIGH_LS.to_dict(),
                         mcs=[0, 27], packet_bits=[24, 4000],
                         offset_db=[[offset, offset], [offset, offset]])


def _cfg(**kw):
    base = dict(scenario=RAYLEIGH_LS, snr_db=6.0, policy="eep", mode="abstraction",
                budget_prbs=4, num_images=6, seed=2, codec=BASELINE, decode=False)
    return SimConfig(**{**base, **kw})


def test_strict_refuses_an_uncalibrated_scenario():
    with pytest.raises(ValueError, match="no calibration.*sdgic calibrate"):
        run_simulation(_cfg(calibration="strict"))


def test_auto_warns_once_per_scenario_and_records_none():
    with pytest.warns(UncalibratedScenarioWarning, match="sdgic calibrate"):
        df = run_simulation(_cfg())
    assert set(df.calibration) == {"none"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncalibratedScenarioWarning)
        run_simulation(_cfg(seed=3))                   # the same scenario: no second warning
        run_simulation(_cfg(calibration="off"))         # off: never a warning
        run_simulation(_cfg(mode="bit", num_images=1))  # bit level: no calibration involved


def test_a_found_calibration_is_used_named_and_changes_results():
    raw = run_simulation(_cfg(calibration="off"))
    id_raw = _cfg(calibration="off").point_id()
    cal = _cal(-6.0)                                     # very pessimistic: fewer deliveries
    cal.save(C.user_dir() / cal.file_name)
    forget_calibrations()
    assert _cfg(calibration="strict").point_id() != id_raw
    assert _cfg(calibration="off").point_id() == id_raw
    df = run_simulation(_cfg(calibration="strict"))
    assert set(df.calibration) == {cal.describe()}
    assert df.delivered_bits_hci.sum() < raw.delivered_bits_hci.sum()


def test_bad_setting_names_the_key():
    with pytest.raises(ValueError, match="calibration = 'sometimes'"):
        _cfg(calibration="sometimes")


def test_link_offset_moves_the_effective_sinr():
    from channels import Link

    cal = _cal(-3.0)
    raw, fixed = Link(RAYLEIGH_LS, "abstraction"), Link(RAYLEIGH_LS, "abstraction",
                                                         calibration=cal)
    a = raw.transmit([100, 1000], 5, 4.0, 0, raw.new_state(1))
    b = fixed.transmit([100, 1000], 5, 4.0, 0, fixed.new_state(1))
    np.testing.assert_allclose(b.sinr_eff_db, a.sinr_eff_db - 3.0, atol=1e-4)
    assert (b.tbler >= a.tbler).all()
