"""Channel scenarios as plain data: dataclasses that load from TOML.

A :class:`Scenario` bundles three parts:

* :class:`ChannelConfig` -- the propagation model (AWGN, Rayleigh block fading,
  3GPP TR 38.901 TDL-A..E and CDL-A..E), delay spread, carrier frequency and
  UE speed (Doppler);
* :class:`OFDMConfig` -- the numerology: subcarrier spacing (15 kHz .. 960 kHz),
  number of PRBs, cyclic prefix and pilot pattern;
* :class:`ReceiverConfig` -- channel estimation (perfect, LS, LMMSE), the LS
  interpolator, the equalizer, the number of LDPC iterations and the early stop.

Every field is validated when the object is built; an error names the key, its
value and the allowed range or values, e.g.
``ValueError: channel.model = 'TDL-F' is not supported; allowed: AWGN, RAYLEIGH, TDL-A, ...``.

Example TOML (see ``experiments/scenarios/*.toml``)::

    name = "tdl-a-30khz"
    [channel]
    model = "TDL-A"
    delay_spread_ns = 100
    carrier_frequency_ghz = 3.5
    ue_speed_kmh = 3
    [ofdm]
    subcarrier_spacing_khz = 30
    num_prbs = 11
    cyclic_prefix = "normal"
    pilot_ofdm_symbols = [2, 11]
    [receiver]
    channel_estimation = "ls"
    interpolation = "lin"
    equalizer = "lmmse"
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CHANNEL_MODELS",
    "SUBCARRIER_SPACINGS_KHZ",
    "ChannelConfig",
    "OFDMConfig",
    "ReceiverConfig",
    "Scenario",
    "load_scenario",
]

#: Channel models understood by :class:`ChannelConfig` (upper case).
CHANNEL_MODELS = ("AWGN", "RAYLEIGH",
                  "TDL-A", "TDL-B", "TDL-C", "TDL-D", "TDL-E",
                  "CDL-A", "CDL-B", "CDL-C", "CDL-D", "CDL-E")
#: Subcarrier spacings [kHz]: NR numerologies mu = 0..6 (480/960 kHz are FR2-2 / 6G).
SUBCARRIER_SPACINGS_KHZ = (15, 30, 60, 120, 240, 480, 960)
CYCLIC_PREFIXES = ("normal", "extended")
CHANNEL_ESTIMATORS = ("perfect", "ls", "lmmse")
INTERPOLATIONS = ("nn", "lin", "lin_time_avg")
EQUALIZERS = ("lmmse", "zf", "mf")

# Normalized largest tap delay of the TR 38.901 TDL/CDL profiles (Tables 7.7.2-1..5
# and 7.7.1-1..5); used to check the cyclic prefix against the channel's delay spread.
_MAX_NORM_DELAY = {"A": 9.6586, "B": 4.7834, "C": 8.6523, "D": 12.5226, "E": 20.6519}


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{key} = {value!r} is not supported; allowed: {allowed}")


def _check_range(key: str, value: Any, lo: float, hi: float, kind=float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and not float(value).is_integer()):
        _fail(key, value, f"{'an integer' if kind is int else 'a number'} in [{lo}, {hi}]")
    if not (lo <= value <= hi):
        _fail(key, value, f"[{lo}, {hi}]")


def _check_keys(section: str, data: dict, cls) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            raise ValueError(f"unknown key {section}{k!r}; allowed keys: {', '.join(sorted(names))}")


@dataclass(frozen=True)
class ChannelConfig:
    """Propagation model.

    Parameters
    ----------
    model : str
        One of :data:`CHANNEL_MODELS` (case-insensitive; ``"TDL-A"``, ``"tdl_a"``
        and ``"TDLA"`` are the same). ``RAYLEIGH`` is flat Rayleigh fading, constant
        over a slot and evolving from slot to slot with the Doppler of ``ue_speed_kmh``
        (Clarke/Jakes correlation); at speed 0 it is quasi-static.
    delay_spread_ns : float
        RMS delay spread [ns] of the TDL/CDL profile, in [1, 3000]. Ignored for AWGN and RAYLEIGH.
    carrier_frequency_ghz : float
        Carrier frequency [GHz], in [0.4, 100].
    ue_speed_kmh : float
        UE speed [km/h], in [0, 500]; sets the maximum Doppler shift.
    """

    model: str = "TDL-A"
    delay_spread_ns: float = 100.0
    carrier_frequency_ghz: float = 3.5
    ue_speed_kmh: float = 3.0

    def __post_init__(self):
        if not isinstance(self.model, str):
            _fail("channel.model", self.model, ", ".join(CHANNEL_MODELS))
        m = self.model.strip().upper().replace("_", "-")
        if len(m) == 4 and m[:3] in ("TDL", "CDL"):
            m = m[:3] + "-" + m[3]
        if m not in CHANNEL_MODELS:
            _fail("channel.model", self.model, ", ".join(CHANNEL_MODELS))
        object.__setattr__(self, "model", m)
        _check_range("channel.delay_spread_ns", self.delay_spread_ns, 1.0, 3000.0)
        _check_range("channel.carrier_frequency_ghz", self.carrier_frequency_ghz, 0.4, 100.0)
        _check_range("channel.ue_speed_kmh", self.ue_speed_kmh, 0.0, 500.0)

    @property
    def family(self) -> str:
        """``"awgn"``, ``"rayleigh"``, ``"tdl"`` or ``"cdl"``."""
        return self.model.split("-")[0].lower()

    @property
    def profile(self) -> str | None:
        """TDL/CDL profile letter (``"A"``..``"E"``) or `None`."""
        return self.model.split("-")[1] if "-" in self.model else None

    @property
    def max_doppler_hz(self) -> float:
        """Maximum Doppler shift :math:`f_D = v f_c / c` [Hz]."""
        return self.ue_speed_kmh / 3.6 * self.carrier_frequency_ghz * 1e9 / 299_792_458.0

    @property
    def max_delay_s(self) -> float:
        """Largest tap delay [s] of the profile (0 for AWGN and RAYLEIGH)."""
        if self.profile is None:
            return 0.0
        return _MAX_NORM_DELAY[self.profile] * self.delay_spread_ns * 1e-9


@dataclass(frozen=True)
class OFDMConfig:
    """OFDM numerology and pilots.

    Parameters
    ----------
    subcarrier_spacing_khz : int
        One of :data:`SUBCARRIER_SPACINGS_KHZ` (15 .. 960 kHz).
    num_prbs : int
        Number of physical resource blocks (12 subcarriers each), in [1, 275].
    cyclic_prefix : str
        ``"normal"`` (14 OFDM symbols per slot, CP = 144/2048 of the symbol) or
        ``"extended"`` (12 symbols, CP = 512/2048; NR allows it at 60 kHz only).
    pilot_ofdm_symbols : tuple of int
        OFDM symbols carrying pilots on every subcarrier (Sionna's Kronecker
        pattern). Each in [0, num_ofdm_symbols-1]; at least one, at most half the slot.
    """

    subcarrier_spacing_khz: int = 30
    num_prbs: int = 11
    cyclic_prefix: str = "normal"
    pilot_ofdm_symbols: tuple = (2, 11)

    def __post_init__(self):
        if self.subcarrier_spacing_khz not in SUBCARRIER_SPACINGS_KHZ:
            _fail("ofdm.subcarrier_spacing_khz", self.subcarrier_spacing_khz,
                  ", ".join(map(str, SUBCARRIER_SPACINGS_KHZ)))
        _check_range("ofdm.num_prbs", self.num_prbs, 1, 275, int)
        if self.cyclic_prefix not in CYCLIC_PREFIXES:
            _fail("ofdm.cyclic_prefix", self.cyclic_prefix, ", ".join(CYCLIC_PREFIXES))
        if self.cyclic_prefix == "extended" and self.subcarrier_spacing_khz != 60:
            raise ValueError(f"ofdm.cyclic_prefix = 'extended' is not supported with "
                             f"ofdm.subcarrier_spacing_khz = {self.subcarrier_spacing_khz}; "
                             f"NR defines the extended CP for 60 kHz only")
        p = tuple(int(i) for i in self.pilot_ofdm_symbols)
        object.__setattr__(self, "pilot_ofdm_symbols", p)
        n = self.num_ofdm_symbols
        if not (1 <= len(p) <= n // 2) or len(set(p)) != len(p) or any(not 0 <= i < n for i in p):
            _fail("ofdm.pilot_ofdm_symbols", list(p),
                  f"1 to {n // 2} distinct symbol indices in [0, {n - 1}]")

    @property
    def num_ofdm_symbols(self) -> int:
        return 14 if self.cyclic_prefix == "normal" else 12

    @property
    def fft_size(self) -> int:
        """Number of used subcarriers (12 per PRB; no guard band is simulated)."""
        return 12 * self.num_prbs

    @property
    def subcarrier_spacing_hz(self) -> float:
        return self.subcarrier_spacing_khz * 1e3

    @property
    def cp_duration_s(self) -> float:
        ratio = 144 / 2048 if self.cyclic_prefix == "normal" else 512 / 2048
        return ratio / self.subcarrier_spacing_hz

    @property
    def ofdm_symbol_duration_s(self) -> float:
        """OFDM symbol duration including the cyclic prefix [s]."""
        return 1.0 / self.subcarrier_spacing_hz + self.cp_duration_s

    @property
    def slot_duration_s(self) -> float:
        """NR slot duration: 1 ms / 2^mu."""
        return 1e-3 * 15 / self.subcarrier_spacing_khz

    @property
    def num_data_re(self) -> int:
        """Data resource elements per slot (all REs minus the pilot symbols)."""
        return (self.num_ofdm_symbols - len(self.pilot_ofdm_symbols)) * self.fft_size


@dataclass(frozen=True)
class ReceiverConfig:
    """Receiver processing.

    Parameters
    ----------
    channel_estimation : str
        ``"perfect"``, ``"ls"`` (Sionna :class:`~sionna.phy.ofdm.LSChannelEstimator`)
        or ``"lmmse"`` (Sionna :class:`~sionna.phy.ofdm.LMMSEChannelEstimator`, with the
        TDL covariance matrices; for CDL, covariances estimated from 256 channel realizations).
    interpolation : str
        LS interpolator: ``"nn"``, ``"lin"``, ``"lin_time_avg"``.
    equalizer : str
        ``"lmmse"``, ``"zf"`` or ``"mf"`` (Sionna OFDM equalizers).
    ldpc_iterations : int
        Maximum number of BP iterations, in [1, 100].
    early_stop : bool
        Stop iterating on codewords whose parity checks hold (bit-level mode).
    """

    channel_estimation: str = "ls"
    interpolation: str = "lin"
    equalizer: str = "lmmse"
    ldpc_iterations: int = 20
    early_stop: bool = True

    def __post_init__(self):
        if self.channel_estimation not in CHANNEL_ESTIMATORS:
            _fail("receiver.channel_estimation", self.channel_estimation, ", ".join(CHANNEL_ESTIMATORS))
        if self.interpolation not in INTERPOLATIONS:
            _fail("receiver.interpolation", self.interpolation, ", ".join(INTERPOLATIONS))
        if self.equalizer not in EQUALIZERS:
            _fail("receiver.equalizer", self.equalizer, ", ".join(EQUALIZERS))
        _check_range("receiver.ldpc_iterations", self.ldpc_iterations, 1, 100, int)
        if not isinstance(self.early_stop, bool):
            _fail("receiver.early_stop", self.early_stop, "true or false")


@dataclass(frozen=True)
class Scenario:
    """A channel scenario: channel, numerology, receiver and MCS table.

    Parameters
    ----------
    name : str
        Free label.
    channel, ofdm, receiver
        See :class:`ChannelConfig`, :class:`OFDMConfig`, :class:`ReceiverConfig`.
    mcs_table : int
        NR PDSCH MCS table of TS 38.214 (1: up to 64-QAM, 2: 256-QAM,
        3: low spectral efficiency, 4: 1024-QAM), in [1, 4]. The abstraction's
        BLER tables cover all four.
    """

    name: str = "default"
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    ofdm: OFDMConfig = field(default_factory=OFDMConfig)
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    mcs_table: int = 1

    def __post_init__(self):
        _check_range("mcs_table", self.mcs_table, 1, 4, int)
        # The link is simulated in the frequency domain (no ISI), which is only
        # faithful when the channel's delays fit inside the cyclic prefix.
        if self.channel.max_delay_s > self.ofdm.cp_duration_s:
            raise ValueError(
                f"ofdm.subcarrier_spacing_khz = {self.ofdm.subcarrier_spacing_khz} is not supported "
                f"with channel.model = {self.channel.model!r} and channel.delay_spread_ns = "
                f"{self.channel.delay_spread_ns}: the largest tap delay "
                f"({self.channel.max_delay_s * 1e9:.0f} ns) exceeds the cyclic prefix "
                f"({self.ofdm.cp_duration_s * 1e9:.0f} ns); lower the delay spread to at most "
                f"{self.ofdm.cp_duration_s * 1e9 / (self.channel.max_delay_s / (self.channel.delay_spread_ns * 1e-9)):.0f} ns "
                f"or use a smaller subcarrier spacing")

    @classmethod
    def from_dict(cls, data: dict) -> "Scenario":
        """Build from a nested dict (as read from TOML); unknown keys are errors."""
        if not isinstance(data, dict):
            raise TypeError(f"scenario data must be a dict, got {type(data).__name__}")
        _check_keys("", data, cls)
        kw = dict(data)
        for key, sub in (("channel", ChannelConfig), ("ofdm", OFDMConfig),
                         ("receiver", ReceiverConfig)):
            if key in kw:
                if not isinstance(kw[key], dict):
                    raise ValueError(f"[{key}] must be a table, got {kw[key]!r}")
                _check_keys(f"{key}.", kw[key], sub)
                kw[key] = sub(**kw[key])
        return cls(**kw)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["ofdm"]["pilot_ofdm_symbols"] = list(self.ofdm.pilot_ofdm_symbols)
        return d

    def replace(self, **sections) -> "Scenario":
        """Copy with fields changed; nested sections by dict,
        e.g. ``s.replace(channel={"ue_speed_kmh": 120})``."""
        kw = {}
        for k, v in sections.items():
            cur = getattr(self, k)
            kw[k] = dataclasses.replace(cur, **v) if isinstance(v, dict) else v
        return dataclasses.replace(self, **kw)


def load_scenario(path: str | Path) -> Scenario:
    """Read a :class:`Scenario` from a TOML file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"scenario file {str(p)!r} does not exist")
    with open(p, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{p}: not valid TOML ({e})") from None
    try:
        return Scenario.from_dict(data)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{p}: {e}") from None
