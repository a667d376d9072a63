"""One link API, two modes: the real Sionna chain (bit level) or PHY abstraction.

A :class:`Link` is built from a :class:`~channels.scenario.Scenario`. The caller
(``sim/``) creates one :class:`~channels.fading.ChannelState` per link with
:meth:`Link.new_state` and then, slot by slot, calls :meth:`Link.transmit` with
the packets scheduled in that slot::

    link = Link(scenario, mode="bit")            # or mode="abstraction"
    state = link.new_state(seed=7)
    res = link.transmit([512, 200, 64], mcs_index=9, snr_db=8.0, slot=0, state=state)
    res.success           # [num_packets] bool
    res.bits              # bit level: list of decoded payloads [packet_bits] float32

Resource mapping: packets take consecutive data resource elements of the slot
in Sionna's resource-grid order (subcarriers first, then OFDM symbols, pilots
skipped). Packet ``i`` needs ``transport_format(size_i, mcs).num_re`` REs; the
slot has ``scenario.ofdm.num_data_re`` of them. Unused REs carry random QAM
symbols (so the channel estimate sees a full grid).

Bit-level mode: NR TB encoding (CRC, segmentation, LDPC, rate matching,
scrambling), QAM mapping, OFDM resource grid with pilots, the slot's channel
frequency response, AWGN, LS/LMMSE/perfect channel estimation, LMMSE/ZF/MF
equalization, APP demapping, TB decoding (early-stopping LDPC) and the TB CRC.
All packets of a slot share one grid and one channel realization; the LDPC
decoding is batched over the packets that share a transport format.

Abstraction mode: the same channel realization gives each RE's post-equalization
SINR: ``1 / no_eff`` of the link's equalizer on the true channel with the error variance
of the link's LS/LMMSE channel estimate counted as noise (|h|^2 / N0 with perfect CSI,
|h|^2 / (N0 + err_var) with estimation and the LMMSE equalizer), so estimation loss is
included. Sionna's EESM gives each packet's
effective SINR over its REs, Sionna's PHYAbstraction BLER tables (interpolated on the
probit of the BLER, :class:`ProbitInterpolation`) give the code-block error rate at the
packet's code-block size, and a Bernoulli draw decides the transport block.
Calibration against the bit-level chain: ``experiments/channels_calibration.py``.

SNR is Es/N0 per resource element for a channel of unit average power.

Randomness: every draw of a slot (noise, filler bits, Bernoulli draws) comes from the
state's generator (:func:`~channels.fading.use_generator` around the whole slot); blocks whose
constructors draw (the random QPSK pilots of the Kronecker pilot pattern) are built with
:func:`~channels.fading.seeded_build`. Nothing comes from Sionna's or torch's global
generators, so a link built in any process, before or after others, gives the same outcomes
for the same seed and sequence of calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
import torch

from sionna.phy.mapping import Demapper, Mapper
from sionna.phy.mimo import StreamManagement
from sionna.phy.ofdm import (LMMSEChannelEstimator, LMMSEEqualizer,
                             LSChannelEstimator,
                             MFEqualizer, ResourceGrid, ResourceGridMapper, ZFEqualizer,
                             tdl_freq_cov_mat, tdl_time_cov_mat)
from sionna.phy.channel import ApplyOFDMChannel
from sionna.phy.utils import SplineGriddataInterpolation

from .fading import ChannelState, FadingChannel, seeded_build, use_generator
from .scenario import Scenario
from .transport import TransportCoder, TransportFormat, transport_format

__all__ = ["Link", "LinkResult", "LINK_VERSION", "MODES", "ProbitInterpolation",
           "phy_abstraction", "transport_block_error"]

MODES = ("bit", "abstraction")
#: Version of the link's numerics (bit-level chain and abstraction). A calibration
#: (:mod:`channels.calibration`) is keyed by it: bump it whenever a change to this package
#: moves a BLER curve of either mode, so that stale calibrations are no longer used.
LINK_VERSION = "2026.12.2"
_MCS_CATEGORY_PDSCH = 1


class ProbitInterpolation(SplineGriddataInterpolation):
    """Sionna's (CBS, SNR) -> BLER table interpolation, done on the probit of the BLER.

    Sionna's PDSCH BLER tables are sampled every 1.79 dB in SNR, so a waterfall often has a
    single point between BLER ~1 and ~0.01. Sionna interpolates ``log10(BLER)`` linearly,
    which puts the 10 % point up to 0.7 dB too low there (against this project's bit-level
    chain in AWGN, 240 packets per 0.25 dB: MCS 9 and 16 were 0.7 dB optimistic, 0.25 dB
    with this interpolation; ``tests/unit/channels/test_abstraction_calibration.py``). A coded BLER waterfall is close to
    ``Q((snr_db - a) / b)`` in dB, i.e. linear in ``probit(BLER) = Phi^-1(BLER)``, so the
    same table points are interpolated linearly in that domain (BLER clipped to
    ``[1e-6, 1 - 1e-6]`` first). The table data are unchanged.
    """

    _CLIP = 1e-6

    def struct(self, z, x, y, x_interp, y_interp, spline_degree: int = 1, **kwargs):
        from scipy.interpolate import RectBivariateSpline
        from scipy.stats import norm
        z = np.clip(np.asarray(z, float), self._CLIP, 1 - self._CLIP)
        if len(x) <= spline_degree:
            raise ValueError("Too few points for interpolation")
        f = RectBivariateSpline(x, y, norm.ppf(z), kx=spline_degree, ky=spline_degree)
        out = norm.cdf(f(x_interp, y_interp))
        out[out <= 2 * self._CLIP] = 0.0
        return out


@lru_cache(maxsize=None)
def phy_abstraction(mcs_table: int = 1):
    """Sionna :class:`~sionna.sys.PHYAbstraction` with the PDSCH BLER table of
    ``mcs_table`` only (loading all tables takes ~30 s on a busy CPU; one takes ~6 s),
    interpolated with :class:`ProbitInterpolation`. Cached per process."""
    import os
    import sionna.sys
    from sionna.sys import PHYAbstraction
    path = os.path.join(os.path.dirname(sionna.sys.__file__), "bler_tables",
                        f"PDSCH_table{mcs_table}.json")
    with seeded_build("phy_abstraction", mcs_table):
        return PHYAbstraction(interp_fun=ProbitInterpolation(), load_bler_tables_from=[path])


@lru_cache(maxsize=None)
def _table_top_db(mcs_table: int) -> dict:
    """The highest SNR [dB] of each MCS's BLER table (Sionna's tables stop at 20 dB)."""
    import json
    import os

    import sionna.sys
    path = os.path.join(os.path.dirname(sionna.sys.__file__), "bler_tables",
                        f"PDSCH_table{mcs_table}.json")
    d = json.loads(open(path).read())["category"][str(_MCS_CATEGORY_PDSCH)]["index"]
    return {int(m): float(max(v["SNR_db"])) for idx in d.values() for m, v in idx["MCS"].items()}


def _code_block_error(mcs_table: int, mcs, cbs, sinr_eff) -> torch.Tensor:
    bler = phy_abstraction(mcs_table).get_bler(mcs, mcs_table, _MCS_CATEGORY_PDSCH, cbs, sinr_eff)
    return torch.nan_to_num(bler.float(), nan=1.0, posinf=1.0).clamp(0, 1)


def transport_block_error(mcs_table: int, mcs_index, cb_size, num_cb, sinr_eff) -> np.ndarray:
    """Transport-block error probability from Sionna's BLER tables.

    Above a table's highest SNR (20 dB), where the highest MCS are still in their waterfall
    (MCS 28 of table 1: BLER 0.02-0.12 at 20 dB), Sionna holds the last value, an error floor
    the bit-level chain does not have; here the waterfall continues: the probit of the BLER
    is extended linearly with the slope of the table's last decibel.

    Parameters
    ----------
    mcs_table : int
    mcs_index, cb_size, num_cb : int or [n] array-like
        Per packet: MCS index, code-block size [bits], number of code blocks.
    sinr_eff : [n] array-like, float
        Effective SINR (linear).

    Output
    ------
    tbler : [n] np.ndarray, float
        ``1 - (1 - BLER_cb)^num_cb``.
    """
    from scipy.stats import norm

    sinr_eff = torch.as_tensor(np.asarray(sinr_eff, np.float32)).reshape(-1)
    n = sinr_eff.numel()
    mcs_np = np.broadcast_to(np.asarray(mcs_index, np.int32), (n,)).copy()
    mcs = torch.as_tensor(mcs_np)
    cbs = torch.as_tensor(np.broadcast_to(np.asarray(cb_size, np.int32), (n,)).copy())
    ncb = torch.as_tensor(np.broadcast_to(np.asarray(num_cb, np.float32), (n,)).copy())
    tops = _table_top_db(mcs_table)
    lut = np.full(max(tops) + 1, np.inf, np.float32)
    lut[list(tops)] = list(tops.values())
    top = torch.as_tensor(np.where((mcs_np >= 0) & (mcs_np < len(lut)),
                                   lut[np.clip(mcs_np, 0, len(lut) - 1)], np.inf)
                          .astype(np.float32))
    s_db = 10.0 * torch.log10(sinr_eff.clamp_min(1e-30))
    bler = _code_block_error(mcs_table, mcs, cbs, sinr_eff)
    above = torch.nonzero(s_db > top).reshape(-1)
    if len(above):
        t = top[above]
        b_top = _code_block_error(mcs_table, mcs[above], cbs[above], 10.0 ** (t / 10.0))
        b_below = _code_block_error(mcs_table, mcs[above], cbs[above], 10.0 ** ((t - 1.0) / 10.0))
        z_top = norm.ppf(np.clip(b_top.numpy(), 1e-6, 1 - 1e-6))
        slope = np.minimum(z_top - norm.ppf(np.clip(b_below.numpy(), 1e-6, 1 - 1e-6)), 0.0)
        z = z_top + slope * (s_db[above] - t).numpy()
        b = norm.cdf(z)
        b[b <= 2e-6] = 0.0
        bler[above] = torch.as_tensor(b, dtype=bler.dtype)
    return (1.0 - (1.0 - bler) ** ncb).numpy()


@dataclass
class LinkResult:
    """Outcome of one slot.

    Parameters
    ----------
    success : [num_packets] np.ndarray of bool
        `True` where the packet's transport block passed the CRC (bit level) or
        the Bernoulli draw (abstraction).
    bits : list of [packet_bits] torch.float32, or `None`
        Decoded payloads (bit level only; hard decisions also for failed packets).
    formats : list of TransportFormat
        How each packet was carried.
    num_re : int
        Resource elements used in the slot.
    sinr_eff_db : [num_packets] np.ndarray of float, or `None`
        Effective SINR [dB] per packet after combining and after the calibration's
        offset (abstraction only).
    tbler : [num_packets] np.ndarray of float, or `None`
        Transport-block error probability the Bernoulli draw used (abstraction only).
    harq : list
        Per-packet soft buffer to pass back (``harq=``) when the packet is
        retransmitted: ``{"llr": [num_coded_bits] combined LLRs, "bits": payload}``
        (bit level) or the combined linear effective SINR (abstraction).
    ldpc_iterations : [num_packets] np.ndarray of float, or `None`
        Mean LDPC iterations per code block (bit level).
    """

    success: np.ndarray
    bits: Optional[list]
    formats: list
    num_re: int
    sinr_eff_db: Optional[np.ndarray] = None
    tbler: Optional[np.ndarray] = None
    harq: list = field(default_factory=list)
    ldpc_iterations: Optional[np.ndarray] = None


class Link:
    r"""A point-to-point NR link over a scenario's channel.

    Parameters
    ----------
    scenario : Scenario
        Channel, numerology, receiver and MCS table.
    mode : "bit" | "abstraction"
        Bit-level Sionna chain or Sionna PHY abstraction.
    precision : `None` (default) | "single" | "double"
        Sionna precision.
    device : `None` (default) | str
        Sionna device, e.g. ``"cpu"``.
    calibration : `None` (default) | :class:`~channels.calibration.Calibration`
        Abstraction mode: SNR offsets fitted against the bit-level chain on this scenario
        (``sdgic calibrate``), added to each packet's effective SINR before the BLER lookup.
        Must have been made for this scenario; ignored in bit-level mode.

    Input (:meth:`transmit`)
    ------------------------
    packet_sizes_bits : list of int
        Payload sizes [bits] of the packets sent in this slot.
    mcs_index : int
        NR MCS index (table ``scenario.mcs_table``).
    snr_db : float
        Es/N0 per resource element [dB].
    slot : int
        Slot index (>= 0); the channel is evaluated at ``slot * slot_duration``.
    state : ChannelState
        From :meth:`new_state`.
    bits : list of [packet_bits] tensors/arrays of 0/1, optional
        Payloads (bit level). Random bits from ``state`` if omitted.
    harq : list of soft buffers or `None`, optional
        Per packet: `None` for a first transmission, or the ``LinkResult.harq`` entry
        of the previous attempt of the same packet (Chase combining).

    Output
    ------
    LinkResult
    """

    def __init__(self, scenario: Scenario, mode: str = "bit", precision=None, device=None,
                 calibration=None):
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a channels.Scenario, got {type(scenario).__name__}; "
                            f"build one with Scenario(...) or load_scenario(path)")
        if mode not in MODES:
            raise ValueError(f"mode = {mode!r} is not supported; allowed: {', '.join(MODES)}")
        self.scenario = scenario
        self.mode = mode
        if calibration is not None:
            calibration.check_scenario(scenario)
        self.calibration = calibration if mode == "abstraction" else None
        self._precision = precision
        self._device = device or "cpu"
        with seeded_build("link", device=self._device):
            self._build(scenario, precision)

    # ------------------------------------------------------------------ setup
    def _build(self, scenario, precision):
        """The channel, the resource grid (its pilots are random QPSK: built under
        :func:`seeded_build`), the transport coder and the receiver blocks."""
        of, rx = scenario.ofdm, scenario.receiver
        self.channel = FadingChannel(scenario, precision=precision, device=self._device)
        perfect = rx.channel_estimation == "perfect"
        self.rg = ResourceGrid(num_ofdm_symbols=of.num_ofdm_symbols, fft_size=of.fft_size,
                               subcarrier_spacing=of.subcarrier_spacing_hz, num_tx=1,
                               num_streams_per_tx=1,
                               cyclic_prefix_length=int(round(of.cp_duration_s * of.fft_size
                                                              * of.subcarrier_spacing_hz)),
                               pilot_pattern="kronecker",
                               pilot_ofdm_symbol_indices=list(of.pilot_ofdm_symbols),
                               precision=precision, device=self._device)
        # Perfect CSI keeps the pilots (same overhead as LS/LMMSE: comparable rates).
        del perfect
        type_grid = self.rg.build_type_grid().reshape(-1)
        self._data_idx = torch.nonzero(type_grid == 0).squeeze(-1)   # flat [sym*fft] indices
        self.num_data_re = int(self._data_idx.numel())
        assert self.num_data_re == of.num_data_re
        self._coder = TransportCoder(rx.ldpc_iterations, rx.early_stop, precision, self._device)
        self._blocks: dict = {}
        self._build_receiver()

    def _build_receiver(self):
        rx, of, ch = self.scenario.receiver, self.scenario.ofdm, self.scenario.channel
        kw = dict(precision=self._precision, device=self._device)
        self._rg_mapper = ResourceGridMapper(self.rg, **kw)
        self._apply = ApplyOFDMChannel(**kw)
        sm = StreamManagement(np.ones([1, 1], int), 1)
        if rx.channel_estimation == "ls":
            self._estimator = LSChannelEstimator(self.rg, interpolation_type=rx.interpolation, **kw)
        elif rx.channel_estimation == "lmmse":
            if ch.family == "tdl":
                cf = tdl_freq_cov_mat(ch.profile, of.subcarrier_spacing_hz, of.fft_size,
                                      ch.delay_spread_ns * 1e-9, **kw)
                ct = tdl_time_cov_mat(ch.profile, ch.ue_speed_kmh / 3.6, ch.carrier_frequency_ghz * 1e9,
                                      of.ofdm_symbol_duration_s, of.num_ofdm_symbols, **kw)
            elif ch.family == "cdl":  # no closed form: estimated from channel samples
                ct, cf = self.channel.sampled_covariances()
            else:  # flat Rayleigh or AWGN, constant over the slot
                cf = torch.ones(of.fft_size, of.fft_size, dtype=torch.complex64)
                ct = torch.ones(of.num_ofdm_symbols, of.num_ofdm_symbols, dtype=torch.complex64)
            self._estimator = LMMSEChannelEstimator(self.rg, ct, cf, order="f-t", **kw)
        else:
            self._estimator = None
        eq = {"lmmse": LMMSEEqualizer, "zf": ZFEqualizer, "mf": MFEqualizer}[rx.equalizer]
        self._equalizer = eq(self.rg, sm, **kw)

    def _qam(self, q: int):
        if q not in self._blocks:
            kw = dict(precision=self._precision, device=self._device)
            with seeded_build("qam", q, device=self._device):
                self._blocks[q] = (Mapper("qam", q, **kw), Demapper("app", "qam", q, **kw))
        return self._blocks[q]

    # ------------------------------------------------------------------ public
    def new_state(self, seed: int) -> ChannelState:
        """A new channel process for one link, drawn from ``seed``."""
        st = self.channel.new_state(seed)
        st.params["model"] = self.scenario.channel.model
        return st

    def transport_format(self, packet_bits: int, mcs_index: int) -> TransportFormat:
        """How a ``packet_bits`` packet is carried at ``mcs_index`` (REs, TBS, code blocks)."""
        return transport_format(packet_bits, mcs_index, self.scenario.mcs_table)

    def packet_error_rate(self, packet_bits, mcs_index, sinr_db, calibration=None
                          ) -> np.ndarray:
        """The abstraction's error probability of packets of ``packet_bits`` (int or [n]) at
        ``mcs_index`` (int or [n]) and effective SINR ``sinr_db`` (float or [n], dB): Sionna's
        BLER tables at each packet's code-block size, after ``calibration``'s correction
        (default: this link's own; a :class:`~channels.calibration.Calibration` to model a
        link as a transmitter would, whatever the mode). Returns float [n]."""
        bits, mcs, sinr_db = (a.copy() for a in np.broadcast_arrays(
            np.atleast_1d(np.asarray(packet_bits, int)), np.asarray(mcs_index, int),
            np.asarray(sinr_db, float)))
        cal = calibration if calibration is not None else self.calibration
        keys, inverse = np.unique(bits.astype(np.int64) * 1024 + mcs, return_inverse=True)
        fmts = [self.transport_format(int(k // 1024), int(k % 1024)) for k in keys]
        cb_size = np.array([f.cb_size for f in fmts])[inverse.reshape(-1)]
        num_cb = np.array([f.num_cb for f in fmts])[inverse.reshape(-1)]
        if cal is not None:
            pivots = np.array([self._pivot_db(f) for f in fmts])[inverse.reshape(-1)]
            for m in np.unique(mcs):
                at = mcs == m
                sinr_db[at] = cal.corrected_db(int(m), bits[at], sinr_db[at], pivots[at])
        return transport_block_error(self.scenario.mcs_table, mcs, cb_size, num_cb,
                                     10.0 ** (sinr_db / 10.0))

    def effective_sinr_db(self, snr_db: float, mcs_indices, num_re: int | None = None,
                          num_draws: int = 64, slots=(0,), seed: int = 0) -> np.ndarray:
        """Effective SINRs [dB] of a packet over the first ``num_re`` data REs of a slot
        (default: all), as the abstraction computes them (equalizer SINR with the
        channel-estimation error as noise, then EESM), on ``num_draws`` independent channel
        realizations at ``snr_db``, each seen at the given ``slots`` (so that copies sent a
        HARQ round trip apart fade as the scenario's Doppler has them): the scenario's
        fading statistics, not any run's channel. Returns float
        [num_draws, len(slots), len(mcs_indices)] (uncalibrated; on AWGN all the same)."""
        from .fading import derive_seed

        mcs = torch.as_tensor(np.atleast_1d(np.asarray(mcs_indices, int)), dtype=torch.int32)
        num_re = self.num_data_re if num_re is None else int(num_re)
        if not 1 <= num_re <= self.num_data_re:
            raise ValueError(f"num_re = {num_re} is not supported; allowed: 1..{self.num_data_re}")
        slots = [int(t) for t in slots]
        key = (float(snr_db), tuple(mcs.tolist()), num_re, int(num_draws), tuple(slots), seed)
        cache = self._blocks.setdefault("effective_sinr", {})
        if key in cache:              # (the points of a sweep share their link)
            return cache[key].copy()
        eesm = self._eesm()
        no = 10.0 ** (-float(snr_db) / 10.0)
        out = np.empty((int(num_draws), len(slots), len(mcs)))
        for d in range(int(num_draws)):
            state = self.new_state(derive_seed("effective-sinr", seed, d))
            for k, t in enumerate(slots):
                with use_generator(state.generator, self._device):
                    h = self.channel(state, t)
                sinr_re = self._re_sinr(h, no, state)[:num_re]
                sinr = sinr_re.reshape(1, num_re, 1, 1).expand(1, num_re, len(mcs), 1)
                eff = eesm(sinr, mcs_index=mcs, mcs_table_index=self.scenario.mcs_table,
                           mcs_category=_MCS_CATEGORY_PDSCH, per_stream=False)
                out[d, k] = 10 * np.log10(np.maximum(eff.reshape(-1).double().numpy(), 1e-30))
        if len(cache) > 64:
            cache.clear()
        cache[key] = out
        return out.copy()

    def max_payload_bits(self, mcs_index: int) -> int:
        """Largest single packet [bits] that fits in one slot at ``mcs_index``."""
        lo, hi = 1, 1_000_000
        if self.transport_format(1, mcs_index).num_re > self.num_data_re:
            return 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.transport_format(mid, mcs_index).num_re <= self.num_data_re:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def transmit(self, packet_sizes_bits: Sequence[int], mcs_index: int, snr_db: float, slot: int,
                 state: ChannelState, bits: Optional[list] = None,
                 harq: Optional[list] = None) -> LinkResult:
        fmts = self._validate(packet_sizes_bits, mcs_index, snr_db, slot, state, bits, harq)
        harq = harq if harq is not None else [None] * len(fmts)
        state.last_slot = int(slot)
        if not fmts:
            return LinkResult(np.zeros(0, bool), [] if self.mode == "bit" else None, [], 0,
                              harq=[])
        no = 10.0 ** (-float(snr_db) / 10.0)
        offsets = np.concatenate([[0], np.cumsum([f.num_re for f in fmts])])
        with use_generator(state.generator, self._device):   # every draw of the slot
            h = self.channel(state, int(slot))            # [num_ofdm_symbols, fft_size]
            if self.mode == "abstraction":
                return self._abstraction(fmts, offsets, h, no, state, harq)
            return self._bit_level(fmts, offsets, h, no, state, bits, harq)

    # ------------------------------------------------------------------ checks
    def _validate(self, sizes, mcs_index, snr_db, slot, state, bits, harq):
        if isinstance(sizes, (int, np.integer)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"packet_sizes_bits must be a list of ints, got {sizes!r}")
        fmts = [self.transport_format(int(s) if isinstance(s, (np.integer,)) else s, mcs_index)
                for s in sizes]
        used = sum(f.num_re for f in fmts)
        if used > self.num_data_re:
            raise ValueError(
                f"payload too large for one slot: packets of {list(sizes)} bits need {used} resource "
                f"elements at MCS {mcs_index} (table {self.scenario.mcs_table}), the slot has "
                f"{self.num_data_re} ({self.scenario.ofdm.num_prbs} PRBs x "
                f"{self.scenario.ofdm.num_ofdm_symbols - len(self.scenario.ofdm.pilot_ofdm_symbols)} "
                f"data symbols); send fewer bits per slot, raise the MCS or ofdm.num_prbs "
                f"(largest single packet at this MCS: {self.max_payload_bits(mcs_index)} bits)")
        if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float, np.floating, np.integer)) \
                or not math.isfinite(snr_db) or not -50 <= snr_db <= 100:
            raise ValueError(f"snr_db = {snr_db!r} is not supported; allowed: a number in [-50, 100]")
        if isinstance(slot, bool) or not isinstance(slot, (int, np.integer)) or slot < 0:
            raise ValueError(f"slot = {slot!r} is not supported; allowed: an integer >= 0")
        if not isinstance(state, ChannelState):
            raise TypeError(f"state must be a ChannelState from Link.new_state(seed), got "
                            f"{type(state).__name__}")
        if state.params.get("model") != self.scenario.channel.model:
            raise ValueError(f"state was made for channel model {state.params.get('model')!r}, this "
                             f"link uses {self.scenario.channel.model!r}; create it with "
                             f"this link's new_state(seed)")
        if bits is not None:
            if self.mode != "bit":
                raise ValueError("bits= is only used in mode='bit'; the abstraction decodes no bits")
            if len(bits) != len(fmts):
                raise ValueError(f"bits has {len(bits)} payloads for {len(fmts)} packets")
            for i, (b, f) in enumerate(zip(bits, fmts)):
                if int(np.prod(np.shape(b))) != f.packet_bits:
                    raise ValueError(f"bits[{i}] has {int(np.prod(np.shape(b)))} bits, "
                                     f"packet_sizes_bits[{i}] = {f.packet_bits}")
        if harq is not None and len(harq) != len(fmts):
            raise ValueError(f"harq has {len(harq)} entries for {len(fmts)} packets; pass None "
                             f"for first transmissions")
        return fmts

    # ------------------------------------------------------------------ modes
    def _bit_level(self, fmts, offsets, h, no, state, bits, harq):
        q = fmts[0].modulation_order
        mapper, demapper = self._qam(q)
        gen = state.generator
        n_total = self.num_data_re * q
        payload = []
        for i, f in enumerate(fmts):
            if bits is None and harq[i] is not None:
                b = harq[i]["bits"]            # a retransmission carries the same payload
            elif bits is None:
                b = torch.randint(0, 2, (f.packet_bits,), generator=gen).float()
            else:
                b = torch.as_tensor(np.asarray(bits[i]), dtype=torch.float32).reshape(-1)
            payload.append(b)
        # Filler bits for unused REs, then each packet's coded bits at its RE offset
        coded = torch.randint(0, 2, (n_total,), generator=gen).float()
        groups: dict = {}
        for i, f in enumerate(fmts):
            groups.setdefault((f.tb_size, f.num_coded_bits), []).append(i)
        for idx in groups.values():
            enc, _ = self._coder.get(fmts[idx[0]])
            tb = torch.zeros(len(idx), enc.k)
            for r, i in enumerate(idx):
                tb[r, :fmts[i].packet_bits] = payload[i]
            c = enc(tb)
            for r, i in enumerate(idx):
                coded[offsets[i] * q:offsets[i + 1] * q] = c[r]
        x = mapper(coded.reshape(1, 1, 1, n_total))               # [1,1,1,num_data_re]
        x_rg = self._rg_mapper(x)                                  # [1,1,1,sym,fft]
        h7 = h.reshape(1, 1, 1, 1, 1, *h.shape)
        no_t = torch.tensor(no, dtype=torch.float32)
        y = self._apply(x_rg, h7, no_t)                            # [1,1,1,sym,fft]
        if self._estimator is None:
            h_hat, err_var = h7, torch.zeros((), dtype=torch.float32)
        else:
            h_hat, err_var = self._estimator(y, no_t)
        x_hat, no_eff = self._equalizer(y, h_hat, err_var, no_t)  # [1,1,1,num_data_re]
        llr = demapper(x_hat, no_eff).reshape(-1)                  # [num_data_re*q]
        success = np.zeros(len(fmts), bool)
        out_bits: list = [None] * len(fmts)
        iters = np.zeros(len(fmts))
        soft = [None] * len(fmts)
        for idx in groups.values():
            f0 = fmts[idx[0]]
            _, dec = self._coder.get(f0)
            l = torch.stack([llr[offsets[i] * q:offsets[i + 1] * q] for i in idx])
            for r, i in enumerate(idx):
                if harq[i] is not None:
                    prev = torch.as_tensor(harq[i]["llr"])
                    if prev.shape != l[r].shape:
                        raise ValueError(f"harq[{i}] holds {tuple(prev.shape)} LLRs, packet {i} "
                                         f"has {f0.num_coded_bits} coded bits; retransmit with the "
                                         f"same size and MCS")
                    l[r] = l[r] + prev
            b_hat, ok = dec(l)
            it = dec.ldpc_decoder.last_iterations
            it = it.reshape(len(idx), -1).float().mean(-1) if it is not None else None
            for r, i in enumerate(idx):
                success[i] = bool(ok[r])
                out_bits[i] = b_hat[r, :fmts[i].packet_bits].clone()
                soft[i] = {"llr": l[r].clone(), "bits": payload[i]}
                if it is not None:
                    iters[i] = float(it[r])
        return LinkResult(success, out_bits, fmts, int(offsets[-1]), harq=soft, ldpc_iterations=iters)

    def _err_var(self, no: float) -> torch.Tensor:
        """Error variance of the link's channel estimate on every RE, [1,1,1,1,1,sym,fft].

        Sionna's LS and LMMSE estimators give an error variance that depends on N0 (and
        the pilots, covariances and interpolator) only, not on the received signal, so it
        is computed once per N0 (from an all-zero grid) and cached."""
        cache = self._blocks.setdefault("err_var", {})
        if no not in cache:
            if len(cache) > 256:
                cache.clear()
            of = self.scenario.ofdm
            y0 = torch.zeros(1, 1, 1, of.num_ofdm_symbols, of.fft_size, dtype=torch.complex64)
            _, ev = self._estimator(y0, torch.tensor(no, dtype=torch.float32))
            cache[no] = ev.float().expand(1, 1, 1, 1, 1, of.num_ofdm_symbols, of.fft_size).clone()
        return cache[no]

    def _re_sinr(self, h, no, state):
        """Post-equalization SINR of every data RE of the slot, [num_data_re] float32.

        The SINR of the link's equalizer on the true channel with the channel-estimation
        error counted as noise: ``1 / no_eff`` of the equalizer given ``(h, err_var, N0)``,
        where ``err_var`` is the error variance of the link's LS/LMMSE estimate
        (:meth:`_err_var`). For the LMMSE equalizer this is ``|h|^2 / (N0 + err_var)``; with
        perfect CSI (err_var = 0) and the LMMSE or ZF equalizer, ``|h|^2 / N0`` (computed
        directly, the fast path). Measured against the bit-level chain on TDL-A (LS and
        LMMSE, MCS 4 and 16) in ``experiments/channels_calibration.py``: the SINR the
        equalizer reports from the noisy estimate itself, ``|h_hat|^2 / (N0 + err_var)``,
        was up to 4 dB optimistic with LS at low SNR (``|h_hat|^2`` of an unbiased noisy
        estimate is ``|h|^2 + err_var`` on average); counting the error as noise on the
        true gain gave 10 % points within 0.9 dB of bit level (LS, MCS 4) and 0.45 dB
        (the other three).
        """
        if self._estimator is None and self.scenario.receiver.equalizer in ("lmmse", "zf"):
            return (h.reshape(-1)[self._data_idx].abs() ** 2 / no).float().clamp_min(1e-12)
        h7 = h.reshape(1, 1, 1, 1, 1, *h.shape)
        no_t = torch.tensor(no, dtype=torch.float32)
        err_var = torch.zeros((), dtype=torch.float32) if self._estimator is None else self._err_var(no)
        y0 = torch.zeros(1, 1, 1, *h.shape, dtype=h.dtype)   # no_eff does not depend on y
        _, no_eff = self._equalizer(y0, h7, err_var, no_t)    # [1,1,1,num_data_re]
        return (1.0 / no_eff.reshape(-1).float().clamp_min(1e-12)).clamp_min(1e-12)

    def _eesm(self):
        """Sionna's EESM block (built once per link)."""
        from sionna.sys import EESM
        if "eesm" not in self._blocks:
            with seeded_build("eesm", device=self._device):
                self._blocks["eesm"] = EESM(precision=self._precision, device=self._device)
        return self._blocks["eesm"]

    def _pivot_db(self, fmt: TransportFormat) -> float:
        from .calibration import pivot_db

        return pivot_db(self.scenario.mcs_table, fmt.mcs_index, fmt.cb_size, fmt.num_cb)

    def _abstraction(self, fmts, offsets, h, no, state, harq):
        eesm = self._eesm()
        n = len(fmts)
        sinr_re = self._re_sinr(h, no, state)                               # [num_data_re]
        sinr = torch.zeros(1, self.num_data_re, n, 1)
        for i in range(n):
            sinr[0, offsets[i]:offsets[i + 1], i, 0] = sinr_re[offsets[i]:offsets[i + 1]]
        mcs = torch.full((n,), fmts[0].mcs_index, dtype=torch.int32)
        sinr_eff = eesm(sinr, mcs_index=mcs, mcs_table_index=self.scenario.mcs_table,
                        mcs_category=_MCS_CATEGORY_PDSCH, per_stream=False).reshape(n)
        for i in range(n):
            if harq[i] is not None:
                sinr_eff[i] = sinr_eff[i] + float(harq[i])   # Chase combining (MRC of copies)
        harq_out = [float(s) for s in sinr_eff]               # combining uses uncorrected SINRs
        if self.calibration is not None:
            s_db = 10 * np.log10(np.maximum(sinr_eff.detach().numpy().astype(float), 1e-30))
            s_db = self.calibration.corrected_db(fmts[0].mcs_index, [f.packet_bits for f in fmts],
                                                 s_db, [self._pivot_db(f) for f in fmts])
            sinr_eff = torch.as_tensor(10.0 ** (s_db / 10.0), dtype=sinr_eff.dtype)
        tbler = torch.as_tensor(transport_block_error(
            self.scenario.mcs_table, fmts[0].mcs_index, [f.cb_size for f in fmts],
            [f.num_cb for f in fmts], sinr_eff.detach()))
        u = torch.rand(n, generator=state.generator)
        success = (u >= tbler).numpy()
        sinr_db = 10 * torch.log10(sinr_eff.clamp_min(1e-30))
        return LinkResult(success, None, fmts, int(offsets[-1]), sinr_eff_db=sinr_db.numpy(),
                          tbler=tbler.numpy(), harq=harq_out)
