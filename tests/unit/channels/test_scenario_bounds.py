"""Scenarios (validation, TOML) and finite-blocklength bounds. Fast: no Sionna chain."""

import numpy as np
import pytest

from channels import Scenario, load_scenario
from channels.bounds import (awgn_capacity, ppv_awgn_error, ppv_max_rate, ppv_rayleigh_error,
                             ppv_snr_db, rayleigh_outage)


def test_defaults_and_derived_numerology():
    s = Scenario()
    assert s.channel.model == "TDL-A"
    assert s.ofdm.fft_size == 132 and s.ofdm.num_ofdm_symbols == 14
    assert s.ofdm.num_data_re == 12 * 132
    assert s.ofdm.slot_duration_s == pytest.approx(0.5e-3)
    assert Scenario.from_dict({"channel": {"model": "tdl_b"}}).channel.model == "TDL-B"


def test_toml_round_trip(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('name = "x"\n[channel]\nmodel = "CDL-D"\ndelay_spread_ns = 30\nue_speed_kmh = 60\n'
                 '[ofdm]\nsubcarrier_spacing_khz = 60\nnum_prbs = 4\npilot_ofdm_symbols = [3]\n')
    s = load_scenario(p)
    assert (s.name, s.channel.model, s.channel.ue_speed_kmh) == ("x", "CDL-D", 60)
    assert s.ofdm.pilot_ofdm_symbols == (3,)
    assert Scenario.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("data, words", [
    ({"channel": {"model": "TDL-F"}}, ["channel.model", "TDL-F", "TDL-A"]),
    ({"ofdm": {"subcarrier_spacing_khz": 45}}, ["ofdm.subcarrier_spacing_khz", "45", "960"]),
    ({"ofdm": {"num_prbs": 300}}, ["ofdm.num_prbs", "300", "275"]),
    ({"ofdm": {"cyclic_prefix": "extended"}}, ["extended", "60 kHz"]),
    ({"ofdm": {"pilot_ofdm_symbols": [14]}}, ["ofdm.pilot_ofdm_symbols", "[0, 13]"]),
    ({"channel": {"ue_speed_kmh": -1}}, ["channel.ue_speed_kmh", "-1", "500"]),
    ({"receiver": {"channel_estimation": "magic"}}, ["receiver.channel_estimation", "lmmse"]),
    ({"channel": {"speed": 3}}, ["channel.'speed'", "ue_speed_kmh"]),
    ({"mcs_table": 5}, ["mcs_table", "5", "4"]),
])
def test_validation_names_key_value_and_range(data, words):
    with pytest.raises(ValueError) as e:
        Scenario.from_dict(data)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_unsupported_numerology_cp_shorter_than_channel():
    # TDL-A 300 ns has taps up to ~2.9 us; the 120 kHz CP is ~0.59 us
    with pytest.raises(ValueError, match=r"exceeds the cyclic prefix .* at most 61 ns"):
        Scenario.from_dict({"channel": {"model": "TDL-A", "delay_spread_ns": 300},
                            "ofdm": {"subcarrier_spacing_khz": 120}})
    # shorter delay spread at 960 kHz is fine
    Scenario.from_dict({"channel": {"model": "TDL-A", "delay_spread_ns": 5},
                        "ofdm": {"subcarrier_spacing_khz": 960}})


def test_ppv_approaches_capacity_and_is_monotone():
    rates = [ppv_max_rate(n, 5.0, 1e-3) for n in (100, 1000, 10_000, 100_000)]
    c = float(awgn_capacity(5.0))
    assert all(r1 < r2 for r1, r2 in zip(rates, rates[1:]))
    assert c - rates[-1] < 0.02 and c - rates[0] > 0.15
    e = ppv_awgn_error(400, 500, np.linspace(-2, 8, 21))
    assert np.all(np.diff(e) <= 0) and e[0] > 0.99 and e[-1] < 1e-6
    # more bits in the same block: harder
    assert ppv_awgn_error(400, 600, 3.0) > ppv_awgn_error(400, 500, 3.0)


def test_rayleigh_outage_matches_monte_carlo_and_exceeds_awgn():
    rng = np.random.default_rng(0)
    g = rng.exponential(size=200_000)
    n, k, snr_db = 200, 200, 10.0
    mc = np.mean(np.log2(1 + 10 ** (snr_db / 10) * g) < k / n)
    assert rayleigh_outage(n, k, snr_db) == pytest.approx(mc, abs=0.003)
    assert ppv_rayleigh_error(n, k, snr_db) == pytest.approx(rayleigh_outage(n, k, snr_db), rel=0.3)
    assert ppv_snr_db(n, k, 0.1, "rayleigh_outage") > ppv_snr_db(n, k, 0.1, "awgn") + 5
    with pytest.raises(ValueError, match="n = 0"):
        ppv_awgn_error(0, 10, 1.0)


def test_a_broken_scenario_file_names_itself(tmp_path):
    from channels import load_scenario

    p = tmp_path / "broken.toml"
    p.write_text("name = [\n")
    with pytest.raises(ValueError, match=r"broken\.toml: not valid TOML"):
        load_scenario(p)
