"""Per-scenario calibration of the abstraction: fit, keys, files, resume, detection.

One torch thread. The bit-level runs use one MCS and 24-bit packets on a tiny grid
(about 20-40 s in all on a busy CPU).
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

from channels import Scenario
from channels import calibration as C

torch.set_num_threads(1)

# AWGN with LS estimation: the raw abstraction is optimistic by about 2 dB on short packets
LS_AWGN = Scenario.from_dict({"name": "awgn-ls-test", "channel": {"model": "AWGN"},
                              "ofdm": {"num_prbs": 4},
                              "receiver": {"channel_estimation": "ls", "interpolation": "lin"}})
TINY = C.CalibrationGrid(mcs=(5,), packet_bits=(24,), snr_points=7, slots=10,
                         max_packets_per_slot=8, seed=11)


@pytest.fixture(autouse=True)
def _own_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SDGIC_CALIBRATIONS", raising=False)
    monkeypatch.setattr(C, "SHIPPED_DIR", tmp_path / "shipped")


@pytest.fixture(scope="module")
def tiny_cal(tmp_path_factory):
    return C.calibrate(LS_AWGN, TINY, workdir=tmp_path_factory.mktemp("work"), progress=False)


def test_fit_recovers_a_known_synthetic_offset():
    rng = np.random.default_rng(0)
    fmt_cb, ncb = 24 + 16, 1          # one code block of a 24-bit packet (CRC added)

    def table(x):
        from channels.link import transport_block_error

        x = np.asarray(x, float)
        return transport_block_error(1, 5, fmt_cb, ncb, 10 ** (x.reshape(-1) / 10)).reshape(x.shape)

    sinr = rng.uniform(-8, 2, 6000)                      # dB, spread over the waterfall
    for true in (-2.3, 0.0, 1.1):
        failed = rng.random(sinr.size) < table(sinr + true)
        fit = C.fit_offset(failed, sinr, table)
        assert fit["informative"] and not fit["at_edge"]
        assert abs(fit["offset_db"] - true) < max(0.15, 4 * fit["stderr_db"]), (true, fit)


def _table_24():
    from channels.link import transport_block_error

    def table(x):
        x = np.asarray(x, float)
        return transport_block_error(1, 5, 40, 1, 10 ** (x.reshape(-1) / 10)).reshape(x.shape)
    return table, C.pivot_db(1, 5, 40, 1)


def test_fit_recovers_a_known_synthetic_slope_and_keeps_1_without_one():
    rng = np.random.default_rng(1)
    table, pivot = _table_24()
    assert table(np.array([pivot - 0.02]))[0] >= 0.1 > table(np.array([pivot + 0.02]))[0]
    sinr = rng.uniform(pivot - 8, pivot + 6, 8000)
    for slope, off in ((0.6, -1.5), (1.6, 0.7)):
        failed = rng.random(sinr.size) < table(C.stretched(sinr, off, slope, pivot))
        fit = C.fit_correction(failed, sinr, table, pivot)
        assert abs(fit["slope"] - slope) <= 0.1 and abs(fit["offset_db"] - off) < 0.2, fit
        assert fit["slope_lr"] > 20
    failed = rng.random(sinr.size) < table(sinr - 1.0)
    fit = C.fit_correction(failed, sinr, table, pivot)
    assert fit["slope"] == 1.0 and abs(fit["offset_db"] + 1.0) < 0.15, fit


def test_slopes_stretch_about_the_pivot_and_load_from_files(tmp_path):
    cal = C.Calibration(key="k", scenario={}, mcs=[2, 10], packet_bits=[24, 2400],
                        offset_db=[[-2.0, -1.0], [0.0, 1.0]], slope=[[0.5, 1.0], [1.0, 2.0]])
    out = cal.corrected_db(2, [24, 24], np.array([3.0, 5.0]), np.array([3.0, 3.0]))
    np.testing.assert_allclose(out, [1.0, 2.0])      # at the pivot: the offset alone
    assert cal.slope_at(6, 24) == pytest.approx(0.75)
    back = C.Calibration.load(cal.save(tmp_path / "c.json"))
    assert back.slope == cal.slope
    old = C.Calibration(**dict(cal.to_dict(), slope=None))    # files from before slopes
    assert old.slope_at(6, 240) == 1.0
    for bad in ([[0.0, 1.0], [1.0, 1.0]], [[1.0]]):
        (tmp_path / "bad.json").write_text(json.dumps(dict(cal.to_dict(), slope=bad)))
        with pytest.raises(ValueError, match="not readable"):
            C.Calibration.load(tmp_path / "bad.json")


def test_the_link_applies_the_slope_as_the_fit_does():
    from channels import Link

    table, pivot = _table_24()
    link = Link(LS_AWGN, "abstraction")
    assert link.transport_format(24, 5).cb_size == 40
    cal = C.Calibration(key=C.scenario_key(LS_AWGN), scenario=LS_AWGN.to_dict(), mcs=[5],
                        packet_bits=[24], offset_db=[[-1.0]], slope=[[0.6]])
    s = np.array([pivot - 2, pivot, pivot + 3])
    got = link.packet_error_rate(24, 5, s, calibration=cal)
    np.testing.assert_allclose(got, table(C.stretched(s, -1.0, 0.6, pivot)), rtol=1e-5)


def test_a_flat_likelihood_is_flagged():
    fit = C.fit_offset(np.zeros(50, bool), np.full(50, 30.0), lambda x: np.zeros_like(x))
    assert not fit["informative"]


def test_every_scenario_field_changes_the_key():
    base = LS_AWGN.to_dict()
    key = C.scenario_key(LS_AWGN)
    assert C.scenario_key(Scenario.from_dict(dict(base, name="renamed"))) == key

    changes = {("channel", "model"): "TDL-A", ("channel", "delay_spread_ns"): 300,
               ("channel", "ue_speed_kmh"): 30, ("channel", "carrier_frequency_ghz"): 28.0,
               ("ofdm", "num_prbs"): 8, ("ofdm", "subcarrier_spacing_khz"): 60,
               ("ofdm", "pilot_ofdm_symbols"): [2, 7, 11], ("ofdm", "cyclic_prefix"): "extended",
               ("receiver", "channel_estimation"): "perfect", ("receiver", "interpolation"): "nn",
               ("receiver", "equalizer"): "zf", ("receiver", "early_stop"): False,
               ("receiver", "ldpc_iterations"): 10, ("mcs_table",): 2}
    leaves = {(k, f) for k, v in base.items() if isinstance(v, dict) for f in v}
    leaves |= {(k,) for k, v in base.items() if not isinstance(v, dict) and k != "name"}
    assert leaves == set(changes), "a scenario field without a test that it changes the key"
    for path, value in changes.items():
        d = json.loads(json.dumps(base))
        node = d
        for p in path[:-1]:
            node = node[p]
        assert node[path[-1]] != value, path
        node[path[-1]] = value
        if path == ("ofdm", "cyclic_prefix"):
            d["ofdm"]["subcarrier_spacing_khz"] = 60   # extended CP exists at 60 kHz only
        assert C.scenario_key(Scenario.from_dict(d)) != key, path


def test_changed_scenario_invalidates_its_calibration(tiny_cal, tmp_path):
    tiny_cal.save(C.user_dir() / tiny_cal.file_name)
    assert C.find_calibration(LS_AWGN) is not None
    other = Scenario.from_dict(dict(LS_AWGN.to_dict(), receiver={"channel_estimation": "ls",
                                                                "interpolation": "nn"}))
    assert C.find_calibration(other) is None
    with pytest.raises(ValueError, match="another scenario"):
        tiny_cal.check_scenario(other)
    with pytest.raises(ValueError, match="another scenario"):
        from channels import Link

        Link(other, "abstraction", calibration=tiny_cal)


def test_calibration_files_round_trip_and_reject_garbage(tiny_cal, tmp_path):
    path = tiny_cal.save(tmp_path / "c.json")
    back = C.Calibration.load(path)
    assert back.offset_db == tiny_cal.offset_db and back.key == tiny_cal.key
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(tiny_cal.to_dict(), offset_db=[[1.0, 2.0]])))
    with pytest.raises(ValueError, match="not readable"):
        C.Calibration.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not readable"):
        C.Calibration.load(bad)


def test_offsets_interpolate_and_clamp():
    cal = C.Calibration(key="k", scenario={}, mcs=[2, 10], packet_bits=[24, 2400],
                        offset_db=[[-2.0, -1.0], [0.0, 1.0]])
    assert cal.offset_db_at(2, 24) == pytest.approx(-2.0)
    assert cal.offset_db_at(6, 24) == pytest.approx(-1.0)
    assert cal.offset_db_at(2, 240) == pytest.approx(-1.5)          # half way in log size
    assert cal.offset_db_at(30, 10_000) == pytest.approx(1.0)       # clamped


def test_calibration_removes_the_ls_estimation_gap(tiny_cal):
    (c,) = tiny_cal.curves
    assert c["informative"] and not c["at_edge"]
    assert tiny_cal.offset_db[0][0] < -0.8, "the raw abstraction is optimistic with LS"
    assert abs(c["gap10_after_db"]) < abs(c["gap10_before_db"])


def test_a_wrong_correction_is_detected_against_bit_level(tiny_cal):
    right = C.validate(tiny_cal, LS_AWGN, seed=99)[0]
    wrong_cal = C.Calibration(**dict(tiny_cal.to_dict(),
                                     offset_db=[[tiny_cal.offset_db[0][0] + 3.0]]))
    wrong = C.validate(wrong_cal, LS_AWGN, seed=99)[0]
    assert right["gap10_db"] is not None and wrong["gap10_db"] is not None
    assert abs(right["gap10_db"]) < 0.6
    lo, hi = right["gap10_ci_db"]               # a paired bootstrap interval on fresh channels
    assert lo <= right["gap10_db"] <= hi and hi - lo > 0
    assert wrong["gap10_db"] < -2.0          # the +3 dB mistake shows as optimism of ~3 dB


def test_a_killed_calibration_resumes_without_redoing_points(tmp_path, monkeypatch):
    grid = C.CalibrationGrid(mcs=(5,), packet_bits=(24,), snr_points=4, slots=2,
                             max_packets_per_slot=2, seed=3)
    calls = []
    real = C.measure_point

    def counting(*a, **k):
        calls.append(a[-1])
        if len(calls) == 3:
            raise KeyboardInterrupt          # killed during the third point
        return real(*a, **k)

    monkeypatch.setattr(C, "measure_point", counting)
    with pytest.raises(KeyboardInterrupt):
        C.calibrate(LS_AWGN, grid, workdir=tmp_path, progress=False)
    assert len(list((tmp_path / "points").glob("*.json"))) == 2
    done = list(calls[:2])
    calls.clear()
    C.calibrate(LS_AWGN, grid, workdir=tmp_path, progress=False)
    assert len(calls) == 2 and not set(calls) & set(done)
    calls.clear()
    C.calibrate(LS_AWGN, grid, workdir=tmp_path, progress=False)
    assert not calls                         # everything reused


def test_a_rerun_with_another_grid_in_the_same_workdir_remeasures(tmp_path, monkeypatch):
    grid = C.CalibrationGrid(mcs=(5,), packet_bits=(24,), snr_points=3, slots=2,
                             max_packets_per_slot=2, seed=3)
    C.calibrate(LS_AWGN, grid, workdir=tmp_path, progress=False)
    calls = []
    real = C.measure_point

    def counting(*a, **k):
        calls.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(C, "measure_point", counting)
    for other in (dataclasses.replace(grid, slots=3), dataclasses.replace(grid, seed=4)):
        calls.clear()
        cal = C.calibrate(LS_AWGN, other, workdir=tmp_path, progress=False)
        # on AWGN the plan's SNR window does not depend on the channel seeds, so the old
        # grid's point files have the same names: none of them may be reused
        assert len(calls) == 3 and all(g == other for g in calls)
        assert all(len(c["bler_bit"]) == 3 for c in cal.curves)


def test_grid_refuses_absurd_values():
    with pytest.raises(ValueError, match="grid.slots"):
        C.CalibrationGrid(slots=1)
    with pytest.raises(ValueError, match="grid.packet_bits"):
        C.CalibrationGrid(packet_bits=(0,))
    with pytest.raises(ValueError, match="cannot be coded"):
        C.CalibrationGrid(mcs=(0,)).mcs_for(Scenario.from_dict({"mcs_table": 1}))


def test_shipped_calibrations_match_the_shipped_scenarios(monkeypatch):
    # an edited scenario file or a LINK_VERSION bump leaves its shipped calibration stale:
    # recalibrate (the command is in the message) rather than ship a file nothing uses
    from pathlib import Path

    from channels import load_scenario

    monkeypatch.undo()                          # the real shipped folder, not the test's
    root = Path(__file__).resolve().parents[3]
    keys = {C.scenario_key(load_scenario(f)): f.name
            for f in (root / "experiments" / "scenarios").glob("*.toml")}
    files = sorted((root / "channels" / "calibrations").glob("*.json"))
    assert files, "no shipped calibrations"
    for f in files:
        cal = C.Calibration.load(f)
        assert cal.key in keys, (f"{f.name} matches no scenario of experiments/scenarios: run "
                                 f"`sdgic calibrate experiments/scenarios/<its file> --out "
                                 f"channels/calibrations`")
        assert f.name.endswith(f"-{cal.key}.json")
