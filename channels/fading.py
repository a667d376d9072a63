"""Time-correlated fading over slots: the channel process and its state.

Sionna's TDL and CDL generators draw fresh random parameters on every call and
restart time at ``t = 0``; a link simulator needs one channel *process* per
link that continues from slot to slot with its Doppler. So the random
parameters are drawn once per :class:`ChannelState` (seeded), and the channel
is evaluated at the absolute time of each OFDM symbol of the requested slot:

* ``TDL-*`` and ``RAYLEIGH``: the sum-of-sinusoids model that Sionna's
  :class:`~sionna.phy.channel.tr38901.TDL` implements (same equations, same
  tap powers/delays, read from the Sionna TDL object). It is re-written here
  (about 20 lines) only because Sionna's ``__call__`` has no time offset.
  ``RAYLEIGH`` is its single-tap case, held constant over a slot (block fading).
* ``CDL-*``: Sionna's :class:`~sionna.phy.channel.tr38901.CDL` ray generation
  and its channel-coefficient generator (step 11 of TR 38.901), called with the
  stored rays, topology and phases and the slot's absolute sample times.
* ``AWGN``: a unit channel.

The channel frequency response comes from Sionna's
:func:`~sionna.phy.channel.cir_to_ofdm_channel` (no inter-carrier interference:
the scenario checks that the channel's delays fit inside the cyclic prefix).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from sionna.phy import config
from sionna.phy.object import Object
from sionna.phy.channel import cir_to_ofdm_channel, subcarrier_frequencies

from .scenario import Scenario

__all__ = ["ChannelState", "FadingChannel", "derive_seed", "use_generator", "seeded_build"]

_NUM_SINUSOIDS = 20


def derive_seed(*parts) -> int:
    """Stable 63-bit seed from any printable parts (independent of call order
    and of Python's hash randomization)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


@contextlib.contextmanager
def use_generator(generator: torch.Generator, device: str = "cpu"):
    """Make Sionna blocks draw from ``generator`` inside the ``with`` block.

    Sionna blocks take their randomness from ``config.torch_rng(device)``; there is
    no per-call generator argument, so the configured generator is swapped for
    the link's own seeded one and restored afterwards.
    """
    rngs = config._torch_rngs  # pylint: disable=protected-access
    old = rngs.get(device)
    rngs[device] = generator
    try:
        yield generator
    finally:
        if old is None:
            rngs.pop(device, None)
        else:
            rngs[device] = old


@contextlib.contextmanager
def seeded_build(*label, device: str = "cpu"):
    """Build Sionna blocks whose constructors draw random numbers from a generator seeded
    by ``label`` (:func:`derive_seed`), through :func:`use_generator`.

    Sionna's global generator is seeded at random in every process and moves on with every
    draw, so a block built from it (the random QPSK pilots of a ``"kronecker"`` pilot
    pattern) would differ between processes, Ray workers and rebuilt links. Built here, such
    a block is a fixed function of its label.
    """
    g = torch.Generator(device="cpu").manual_seed(derive_seed("build", *label))
    with use_generator(g, device):
        yield g


@dataclass
class ChannelState:
    """The state of one link's channel process.

    Create it with :meth:`FadingChannel.new_state` (or ``Link.new_state``); pass it
    with every transmission on that link. The fading is a deterministic function
    of ``(seed, slot)``; the noise, data bits and Bernoulli draws come from
    ``generator``, which advances with each call (so the same seed and the same
    sequence of calls give identical outcomes).

    Parameters
    ----------
    seed : int
        Seed of this link.
    params : dict
        Random parameters of the fading process (model specific).
    generator : torch.Generator
        Per-call randomness (noise, filler bits, Bernoulli draws).
    last_slot : int or None
        Slot of the last transmission (for information).
    """

    seed: int
    params: dict = field(repr=False)
    generator: torch.Generator = field(repr=False)
    last_slot: Optional[int] = None


class FadingChannel(Object):
    r"""Slot-by-slot channel frequency response of a scenario's channel model.

    Parameters
    ----------
    scenario : Scenario
        Provides the channel model and the OFDM numerology.
    precision : `None` (default) | "single" | "double"
        Sionna precision.
    device : `None` (default) | str
        Sionna device.

    Input
    -----
    state : ChannelState
        From :meth:`new_state`.
    slot : int
        Slot index (>= 0); time is ``slot * slot_duration``.

    Output
    ------
    h_freq : [num_ofdm_symbols, fft_size], `torch.complex`
        Channel frequency response on every resource element of the slot
        (average power 1).
    """

    def __init__(self, scenario: Scenario, precision=None, device=None):
        super().__init__(precision=precision, device=device)
        self._sc = scenario
        ch, of = scenario.channel, scenario.ofdm
        self._family = ch.family
        self._freqs = subcarrier_frequencies(of.fft_size, of.subcarrier_spacing_hz,
                                             precision=precision, device=self.device)
        self._sym_times = torch.arange(of.num_ofdm_symbols, dtype=torch.float64) \
            * of.ofdm_symbol_duration_s
        self._omega_d = 2 * np.pi * ch.max_doppler_hz
        speed = ch.ue_speed_kmh / 3.6
        fc = ch.carrier_frequency_ghz * 1e9
        if self._family == "tdl":
            from sionna.phy.channel.tr38901 import TDL
            tdl = TDL(ch.profile, delay_spread=ch.delay_spread_ns * 1e-9, carrier_frequency=fc,
                      min_speed=speed, precision=precision, device=self.device)
            self._tap_delays = tdl.delays.double().cpu()
            powers = tdl.mean_powers.double().cpu()
            self._los_power = float(tdl.mean_power_los) if tdl.los else 0.0
            powers[0] = powers[0] - self._los_power
            self._nlos_powers = powers
        elif self._family == "rayleigh":
            self._tap_delays = torch.zeros(1, dtype=torch.float64)
            self._nlos_powers = torch.ones(1, dtype=torch.float64)
            self._los_power = 0.0
        elif self._family == "cdl":
            from sionna.phy.channel.tr38901 import CDL, AntennaArray
            arr = dict(num_rows=1, num_cols=1, polarization="single", polarization_type="V",
                       antenna_pattern="omni", carrier_frequency=fc,
                       precision=precision, device=self.device)
            self._cdl = CDL(ch.profile, ch.delay_spread_ns * 1e-9, fc,
                            ut_array=AntennaArray(**arr), bs_array=AntennaArray(**arr),
                            direction="downlink", min_speed=speed, max_speed=speed,
                            precision=precision, device=self.device)
        self._cdl_norm = None

    @property
    def scenario(self) -> Scenario:
        return self._sc

    def new_state(self, seed: int) -> ChannelState:
        """Draw the random parameters of a new channel process from ``seed``."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {seed!r}")
        seed = int(seed)
        g = torch.Generator(device="cpu").manual_seed(derive_seed("fading", seed))
        params: dict = {}
        if self._family in ("tdl", "rayleigh"):
            n_taps, s = len(self._nlos_powers), _NUM_SINUSOIDS
            # Same draws as Sionna's TDL: AoA per sinusoid, initial phases, LoS phase
            alpha_c = 2 * np.pi / s * torch.arange(1, s + 1, dtype=torch.float64)
            theta = torch.rand(n_taps, s, generator=g, dtype=torch.float64) \
                * (2 * np.pi / s) - np.pi / s
            params["cos_alpha"] = torch.cos(alpha_c + theta)
            params["phi"] = torch.rand(n_taps, s, generator=g, dtype=torch.float64) * 2 * np.pi - np.pi
            params["phi_los"] = float(torch.rand(1, generator=g, dtype=torch.float64)) * 2 * np.pi - np.pi
        elif self._family == "cdl":
            cdl = self._cdl
            with use_generator(g, "cpu"):
                velocity = cdl._get_velocity(1)          # pylint: disable=protected-access
                params["topology"] = cdl._create_topology(1, velocity)  # pylint: disable=protected-access
                params["rays"] = cdl._create_rays(1)     # pylint: disable=protected-access
                params["k_factor"] = cdl._get_k_factor(1)  # pylint: disable=protected-access
                params["phi"] = cdl._cir_gen._step_10(params["rays"].aoa.shape)  # pylint: disable=protected-access
        noise_gen = torch.Generator(device="cpu").manual_seed(derive_seed("noise", seed))
        return ChannelState(seed=seed, params=params, generator=noise_gen)

    def cir(self, state: ChannelState, slot: int):
        """Channel impulse response of a slot.

        Output
        ------
        a : [1, 1, 1, 1, 1, num_paths, num_ofdm_symbols], `torch.complex`
            Path coefficients at each OFDM symbol.
        tau : [1, 1, 1, num_paths], `torch.float`
            Path delays [s].
        """
        t = self._sym_times + float(slot) * self._sc.ofdm.slot_duration_s
        if self._family == "rayleigh":
            t = torch.full_like(t, float(slot) * self._sc.ofdm.slot_duration_s)  # block fading
        p = state.params
        if self._family in ("tdl", "rayleigh"):
            # [taps, time, sinusoids]
            arg = self._omega_d * t[None, :, None] * p["cos_alpha"][:, None, :] + p["phi"][:, None, :]
            h = torch.polar(torch.ones_like(arg), arg).sum(-1) / np.sqrt(_NUM_SINUSOIDS)
            h = torch.sqrt(self._nlos_powers)[:, None] * h
            if self._los_power > 0:
                arg0 = self._omega_d * t * np.cos(np.arccos(0.7)) + p["phi_los"]
                h[0] = h[0] + np.sqrt(self._los_power) * torch.polar(torch.ones_like(arg0), arg0)
            a = h.to(self.cdtype).reshape(1, 1, 1, 1, 1, h.shape[0], h.shape[1])
            tau = self._tap_delays.to(self.dtype).reshape(1, 1, 1, -1)
            return a, tau
        if self._family == "cdl":
            cg = self._cdl._cir_gen  # pylint: disable=protected-access
            h, delays = cg._step_11(p["phi"], p["topology"], p["k_factor"], p["rays"],  # pylint: disable=protected-access
                                    t.to(self.dtype), None)
            a = h.permute(0, 2, 4, 1, 5, 3, 6)
            tau = delays.permute(0, 2, 1, 3)
            return a, tau
        raise RuntimeError("AWGN has no impulse response")

    def __call__(self, state: ChannelState, slot: int) -> torch.Tensor:
        if isinstance(slot, bool) or not isinstance(slot, (int, np.integer)) or slot < 0:
            raise ValueError(f"slot = {slot!r} is not supported; allowed: an integer >= 0")
        of = self._sc.ofdm
        if self._family == "awgn":
            return torch.ones(of.num_ofdm_symbols, of.fft_size, dtype=self.cdtype, device=self.device)
        a, tau = self.cir(state, slot)
        h = cir_to_ofdm_channel(self._freqs, a, tau, normalize=False)
        # [1,1,1,1,1,num_ofdm_symbols,fft_size] -> [num_ofdm_symbols, fft_size]
        h = h.reshape(of.num_ofdm_symbols, of.fft_size)
        if self._family == "cdl":
            # CDL gains include antenna patterns; normalize to unit mean power
            # (computed once over many draws so that fading is preserved).
            h = h / self._cdl_scale()
        return h

    def sampled_covariances(self, num_draws: int = 256):
        """Time and frequency covariance matrices of the channel, estimated from
        ``num_draws`` independent realizations (one slot each, fixed seeds), as Sionna's
        channel-estimation tutorial does for models without closed-form covariances (CDL).

        Output
        ------
        cov_time : [num_ofdm_symbols, num_ofdm_symbols], `torch.complex64`
            ``E[h[:, f] h[:, f]^H]`` averaged over subcarriers.
        cov_freq : [fft_size, fft_size], `torch.complex64`
            ``E[h[t, :]^H h[t, :]]`` averaged over OFDM symbols (Sionna's convention).
        """
        of = self._sc.ofdm
        ct = torch.zeros(of.num_ofdm_symbols, of.num_ofdm_symbols, dtype=torch.complex128)
        cf = torch.zeros(of.fft_size, of.fft_size, dtype=torch.complex128)
        for i in range(int(num_draws)):
            h = self(self.new_state(derive_seed("covariance", i)), 0).to(torch.complex128)
            cf += h.conj().T @ h                     # [fft, fft]
            ct += h @ h.conj().T                     # [sym, sym]
        cf /= num_draws * of.num_ofdm_symbols
        ct /= num_draws * of.fft_size
        return ct.to(torch.complex64), cf.to(torch.complex64)

    def _cdl_scale(self) -> float:
        if self._cdl_norm is None:
            g = torch.Generator().manual_seed(12345)
            acc = 0.0
            with use_generator(g, "cpu"):
                hh, _ = self._cdl(64, 1, 1.0)
            acc = float((hh.abs() ** 2).sum(dim=5).mean())
            self._cdl_norm = float(np.sqrt(acc))
        return self._cdl_norm
