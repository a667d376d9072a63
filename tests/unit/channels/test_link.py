"""Bit-level and abstraction link: shapes, thresholds, seeds, Doppler, HARQ, errors.

One torch thread; the whole file runs in well under a minute on a busy CPU.
"""

import numpy as np
import pytest
import torch

from channels import Link, Scenario
from channels.fading import FadingChannel
from channels.transport import mcs_info, transport_format

torch.set_num_threads(1)

AWGN = Scenario.from_dict({"channel": {"model": "AWGN"},
                           "receiver": {"channel_estimation": "perfect"}})
MCS = 9  # QPSK, R = 0.66: 10 % BLER near 3.3 dB in AWGN


@pytest.fixture(scope="module")
def awgn_bit():
    return Link(AWGN, mode="bit")


@pytest.fixture(scope="module")
def awgn_abs():
    return Link(AWGN, mode="abstraction")


def _bler(link, snr_db, slots=4, sizes=(512, 512, 256), seed=0):
    st = link.new_state(seed)
    ok = [link.transmit(list(sizes), MCS, snr_db, s, st).success for s in range(slots)]
    return 1.0 - float(np.mean(ok))


def test_transport_format_sizes():
    q, r = mcs_info(MCS)
    assert (q, round(r, 3)) == (2, 0.663)
    for k in (1, 24, 100, 512, 3825, 9000):
        f = transport_format(k, MCS)
        assert f.tb_size >= k and f.num_coded_bits == f.num_re * q
        assert f.coderate <= 0.92 and f.num_cb == (1 if f.tb_size <= 3824 else f.num_cb)
    assert transport_format(9000, MCS).num_cb == 2
    with pytest.raises(ValueError, match=r"mcs_index = 29 .* \[0, 28\]"):
        transport_format(100, 29)


def test_bit_level_shapes_dtypes_and_exact_bits(awgn_bit):
    st = awgn_bit.new_state(3)
    sizes = [512, 100, 24, 7]
    payload = [torch.randint(0, 2, (k,)).float() for k in sizes]
    r = awgn_bit.transmit(sizes, MCS, 10.0, 0, st, bits=payload)
    assert r.success.dtype == bool and r.success.shape == (4,) and r.success.all()
    assert [b.shape for b in r.bits] == [(k,) for k in sizes]
    assert all(b.dtype == torch.float32 for b in r.bits)
    assert all(torch.equal(b, p) for b, p in zip(r.bits, payload))
    assert r.num_re == sum(f.num_re for f in r.formats) <= awgn_bit.num_data_re
    assert [h["llr"].shape for h in r.harq] == [(f.num_coded_bits,) for f in r.formats]


def test_awgn_bler_thresholds_bit_level(awgn_bit):
    assert _bler(awgn_bit, 7.0) == 0.0
    assert _bler(awgn_bit, -1.0) == 1.0


def test_awgn_bler_thresholds_abstraction(awgn_abs):
    assert _bler(awgn_abs, 7.0, slots=20) == 0.0
    assert _bler(awgn_abs, -1.0, slots=20) == 1.0
    r = awgn_abs.transmit([512], MCS, 5.0, 0, awgn_abs.new_state(0))
    assert r.bits is None and r.sinr_eff_db.shape == (1,) and r.sinr_eff_db[0] == pytest.approx(5.0, abs=0.01)
    assert r.tbler.dtype == np.float32


LS_TDL = Scenario.from_dict({"channel": {"model": "TDL-A", "ue_speed_kmh": 30},
                             "receiver": {"channel_estimation": "ls"}})


def _soft(res):
    """What a slot produced, to compare bit for bit: success and the soft outputs."""
    soft = [h["llr"].numpy() for h in res.harq] if res.bits is not None else res.sinr_eff_db
    return res.success.tolist(), np.asarray(soft).tolist()


@pytest.mark.parametrize("mode", ["bit", "abstraction"])
def test_same_seed_same_outcomes(mode):
    # two links built one after the other (the second after Sionna's global RNG moved on):
    # the same seed gives the same noise, pilots, estimates and soft outputs
    from sionna.phy import config

    runs = []
    for _ in range(2):
        link = Link(LS_TDL, mode=mode)
        st = link.new_state(11)
        runs.append([_soft(link.transmit([300, 300, 300], 4, 6.0, s, st)) for s in range(6)])
        torch.rand(3, generator=config.torch_rng("cpu"))
    assert runs[0] == runs[1]
    assert runs[0] != [_soft(link.transmit([300, 300, 300], 4, 6.0, s, link.new_state(12)))
                       for s in range(6)]


def test_link_leaves_global_rngs_alone():
    # Sionna draws the Kronecker pilots (random QPSK) when the grid is built; they must not
    # come from Sionna's per-process global RNG (seeded at random) nor advance it
    from sionna.phy import config

    def states():
        return [config.torch_rng("cpu").get_state(), torch.get_rng_state(),
                np.random.get_state()[1].copy()]

    a = Link(LS_TDL, mode="bit")
    torch.rand(3, generator=config.torch_rng("cpu"))
    before = states()
    b = Link(LS_TDL, mode="abstraction")
    st = b.new_state(0)
    for s in range(2):
        a.transmit([300, 200], 4 + s, 6.0, s, st)
        b.transmit([300, 200], 4 + s, 6.0, s, st)
    assert all(np.array_equal(x, y) for x, y in zip(before, states()))
    assert torch.equal(a.rg.pilot_pattern.pilots, b.rg.pilot_pattern.pilots)


def test_channel_correlation_between_slots_falls_with_speed():
    from scipy.special import j0

    def corr(speed, lag=2, seeds=40):
        sc = Scenario.from_dict({"channel": {"model": "TDL-A", "ue_speed_kmh": speed}})
        fc = FadingChannel(sc)
        c = []
        for s in range(seeds):
            st = fc.new_state(s)
            h0, h1 = fc(st, 0), fc(st, lag)
            c.append(float((h0.conj() * h1).mean().real / (h0.abs() ** 2).mean().sqrt()
                           / (h1.abs() ** 2).mean().sqrt()))
        theory = j0(2 * np.pi * sc.channel.max_doppler_hz * lag * sc.ofdm.slot_duration_s)
        return np.mean(c), theory
    res = [corr(v) for v in (0, 3, 30, 60, 120)]
    measured = [m for m, _ in res]
    assert measured[0] == pytest.approx(1.0, abs=1e-5)
    assert all(a > b for a, b in zip(measured, measured[1:]))
    for m, theory in res:            # Clarke/Jakes: correlation = J0(2 pi f_D dt)
        assert m == pytest.approx(theory, abs=0.12)
    # the state is a process: the same slot twice gives the same channel
    fc = FadingChannel(Scenario.from_dict({"channel": {"model": "CDL-B", "ue_speed_kmh": 60}}))
    st = fc.new_state(1)
    assert torch.equal(fc(st, 5), fc(st, 5)) and not torch.equal(fc(st, 5), fc(st, 6))


def test_chase_combining_helps(awgn_bit, awgn_abs):
    # 0 dB: one copy fails; two copies (3 dB combining gain) of the same packet decode
    for link in (awgn_bit, awgn_abs):
        st = link.new_state(5)
        r1 = link.transmit([512], MCS, 0.5, 0, st)
        assert not r1.success[0]
        r2 = link.transmit([512], MCS, 0.5, 1, st, harq=r1.harq)
        r3 = link.transmit([512], MCS, 0.5, 2, st, harq=r2.harq)
        assert r3.success[0]


def test_clear_errors(awgn_bit):
    st = awgn_bit.new_state(0)
    with pytest.raises(ValueError, match=r"payload too large for one slot.*1584.*largest single packet"):
        awgn_bit.transmit([2000, 2000], MCS, 10.0, 0, st)
    with pytest.raises(ValueError, match="slot = -1"):
        awgn_bit.transmit([100], MCS, 10.0, -1, st)
    with pytest.raises(ValueError, match="snr_db"):
        awgn_bit.transmit([100], MCS, float("nan"), 0, st)
    with pytest.raises(TypeError, match="ChannelState"):
        awgn_bit.transmit([100], MCS, 10.0, 0, None)
    other = Link(Scenario.from_dict({"channel": {"model": "TDL-C"}}), mode="abstraction")
    with pytest.raises(ValueError, match="state was made for channel model 'AWGN'"):
        other.transmit([100], MCS, 10.0, 0, st)
    with pytest.raises(ValueError, match="mode = 'fast'"):
        Link(AWGN, mode="fast")
    with pytest.raises(ValueError, match="channel.model = 'TDL-Z'"):
        Link(Scenario.from_dict({"channel": {"model": "TDL-Z"}}))
    assert awgn_bit.transport_format(awgn_bit.max_payload_bits(MCS), MCS).num_re <= awgn_bit.num_data_re
    assert not transport_format(600, 0).bit_level_ok and transport_format(600, 3).bit_level_ok
    with pytest.raises(ValueError, match=r"MCS 0 \(table 1\).*rate 0\.12.*below the 0\.2"):
        awgn_bit.transmit([300], 0, 10.0, 0, st)


def test_lmmse_works_on_cdl_with_sampled_covariances():
    # CDL has no closed-form covariances: the link estimates them from channel draws
    sc = {"channel": {"model": "CDL-C", "delay_spread_ns": 100, "ue_speed_kmh": 120},
          "ofdm": {"num_prbs": 8, "pilot_ofdm_symbols": [2, 11]}}
    lmmse = Link(Scenario.from_dict({**sc, "receiver": {"channel_estimation": "lmmse"}}), "bit")
    ct, cf = lmmse.channel.sampled_covariances(num_draws=64)
    for c in (ct, cf):
        assert torch.allclose(c, c.conj().T, atol=1e-5)                 # Hermitian
        assert torch.linalg.eigvalsh(c.to(torch.complex128)).min() > -1e-4   # PSD
    assert 0.7 < ct.diagonal().real.mean() < 1.3                        # unit mean power
    assert abs(ct[0, 13]) < abs(ct[0, 1])                               # Doppler decorrelates
    ls = Link(Scenario.from_dict({**sc, "receiver": {"channel_estimation": "ls",
                                                     "interpolation": "lin"}}), "bit")
    ok = {n: sum(link.transmit([256, 256], 9, 6.0, 0, link.new_state(s)).success.sum()
                 for s in range(12)) for n, link in (("lmmse", lmmse), ("ls", ls))}
    assert ok["lmmse"] >= ok["ls"] and ok["lmmse"] > 0, ok
    ab = Link(lmmse.scenario, "abstraction")           # the abstraction builds it too
    assert np.isfinite(ab.transmit([256], 9, 6.0, 0, ab.new_state(0)).sinr_eff_db).all()


def test_effective_sinr_samples_match_the_abstraction(awgn_abs):
    # AWGN with perfect CSI: every draw, slot and MCS sees exactly the SNR
    eff = awgn_abs.effective_sinr_db(3.0, [3, 9], num_draws=4, slots=(0, 4))
    assert eff.shape == (4, 2, 2) and np.allclose(eff, 3.0, atol=1e-4)
    # a fading link: the draws spread, the mean over them is the abstraction's own error rate
    link = Link(Scenario.from_dict({"channel": {"model": "TDL-A", "ue_speed_kmh": 30}}),
                mode="abstraction")
    eff = link.effective_sinr_db(6.0, [MCS], num_draws=200, slots=(0,))[:, 0, 0]
    assert eff.std() > 1.0
    predicted = link.packet_error_rate(np.full(eff.size, 512), MCS, eff).mean()
    errors = [1.0 - link.transmit([512], MCS, 6.0, 0, link.new_state(s)).success[0]
              for s in range(200)]
    assert abs(predicted - np.mean(errors)) < 3 * np.sqrt(predicted * (1 - predicted) / 200) + 0.03
    with pytest.raises(ValueError, match="num_re"):
        link.effective_sinr_db(6.0, [MCS], num_re=0)
