"""Per-scenario calibration of the PHY abstraction against the bit-level chain.

The abstraction (:class:`~channels.link.Link` in ``mode="abstraction"``) maps each packet's
effective SINR to a BLER through Sionna's tables, which were made for AWGN with ideal
receivers. On a given scenario the bit-level chain can need more (or less) SNR, and its
curve can be steeper or shallower: channel estimation on few pilots (a per-slot estimation
error spreads the curve), short packets, Doppler. A :class:`Calibration` stores, for one
scenario, per MCS and packet size an SNR offset and a slope that correct the effective SINR
before the table lookup::

    sinr' = sinr + offset + (slope - 1) * (sinr - pivot)

``pivot`` being the SINR where the table's BLER is 10 % for that packet (so ``offset`` is the
shift at 10 % BLER and ``slope`` stretches the curve about it), bilinear in MCS and log
packet size and clamped at the grid's edges, fitted by maximum likelihood to bit-level
outcomes on the *same* channel realizations::

    cal = calibrate(scenario)                 # bit level over an MCS x size x SNR grid
    cal.save(user_dir() / cal.file_name)
    link = Link(scenario, "abstraction", calibration=find_calibration(scenario))

Why by hand: Sionna's ``PHYAbstraction`` has no per-scenario correction; the fit needs its
tables, the link's own channels and the bit-level chain, which only this package has.

The fit is paired. For every grid point the same seeded channels go through both modes:
the bit level gives a success per packet, the abstraction the packet's effective SINR.
The offset maximises the Bernoulli likelihood of the bit-level outcomes under
``TBLER(sinr_eff + offset)`` (:func:`fit_offset`), so the channel-to-channel spread, which
dominates a fading BLER curve, is common to both and does not blur the fit; a slope other
than 1 is kept only where it raises that likelihood significantly (a likelihood-ratio test
at 5 %, :func:`fit_correction`), so noise does not buy a second parameter. The gap at 10 %
(and 1 %) BLER before and after comes with a 95 % bootstrap interval over channel
realizations; the offsets fitted on each half of the slots show how well it carries to fresh
channels, and :func:`validate` judges a stored calibration on new channels.

A calibration is keyed by :func:`scenario_key`: the scenario's content (every field but its
``name``), :data:`~channels.link.LINK_VERSION` and the Sionna version. Changing any of them
invalidates it. :func:`find_calibration` looks in ``$SDGIC_CALIBRATIONS`` (a path list),
the user directory :func:`user_dir` and the calibrations shipped in ``channels/calibrations``.

Work is resumable: each grid point is written to the work directory as it finishes
(``~/.cache/sdgic/calibration/KEY`` by default), and a rerun skips finished points.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .scenario import Scenario

__all__ = ["CalibrationGrid", "GRIDS", "Calibration", "calibrate", "find_calibration",
           "fit_offset", "fit_correction", "pivot_db", "stretched", "scenario_key", "snr_at_bler",
           "user_dir", "calibration_dirs", "SHIPPED_DIR", "validate"]

#: Calibrations shipped with the package (the shipped scenarios').
SHIPPED_DIR = Path(__file__).resolve().parent / "calibrations"
#: Offsets searched by the fit [dB] (abstraction SINR + offset).
OFFSET_RANGE_DB = (-12.0, 6.0)
_OFFSET_STEP_DB = 0.02
_P_FLOOR = 1e-4          # a model probability is never taken as exactly 0 or 1 in the fit
SLOPES = np.round(np.arange(0.2, 3.01, 0.05), 2)    # the slopes fit_correction tries
_LR_CRITICAL = 3.841     # chi-square(1) at 95 %: the likelihood-ratio test for a slope != 1


# ------------------------------------------------------------------------------------- keys
def scenario_key(scenario: Scenario) -> str:
    """16-hex key of what a calibration depends on: every field of ``scenario`` except
    ``name``, :data:`~channels.link.LINK_VERSION` and the Sionna version."""
    import sionna

    from .link import LINK_VERSION

    d = scenario.to_dict()
    d.pop("name", None)
    blob = json.dumps({"scenario": d, "link_version": LINK_VERSION,
                       "sionna": getattr(sionna, "__version__", "?")}, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def user_dir() -> Path:
    """Where ``sdgic calibrate`` stores calibrations: ``$XDG_DATA_HOME/sdgic/calibrations``
    (``~/.local/share/sdgic/calibrations``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "share")
    return Path(base) / "sdgic" / "calibrations"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sdgic" / "calibration"


def calibration_dirs() -> list[Path]:
    """Search order of :func:`find_calibration`: ``$SDGIC_CALIBRATIONS`` (``os.pathsep``
    separated), :func:`user_dir`, :data:`SHIPPED_DIR`."""
    env = [Path(p) for p in os.environ.get("SDGIC_CALIBRATIONS", "").split(os.pathsep) if p]
    return env + [user_dir(), SHIPPED_DIR]


def find_calibration(scenario: Scenario, dirs: Optional[Sequence[Path]] = None):
    """The :class:`Calibration` made for ``scenario`` (same :func:`scenario_key`), or `None`.
    The first directory of ``dirs`` (default :func:`calibration_dirs`) that holds one wins."""
    key = scenario_key(scenario)
    for d in (calibration_dirs() if dirs is None else [Path(p) for p in dirs]):
        for path in sorted(Path(d).glob(f"*{key}.json")) if Path(d).is_dir() else []:
            return Calibration.load(path)
    return None


# ------------------------------------------------------------------------------------- grid
@dataclass(frozen=True)
class CalibrationGrid:
    """What :func:`calibrate` measures.

    Parameters
    ----------
    mcs : tuple of int, or `None`
        MCS indices; `None`: ``num_mcs`` spread evenly over the MCS of the scenario's table
        that the bit-level chain can code (LDPC code rate >= 0.2).
    num_mcs : int
        Used when ``mcs`` is `None`.
    packet_bits : tuple of int
        Packet payload sizes [bits] (sizes that do not fit a slot at an MCS are skipped).
    snr_points : int
        SNR points per (MCS, size) curve, spread from 1.5 dB below the raw abstraction's 90 %
        BLER point to 4 dB above its 3 % point (the bit-level curve lies at or right of it).
    slots : int
        Independent channel realizations (one slot each) per SNR point.
    max_packets_per_slot : int
        Packets of the curve's size sent together in each slot (fewer if they do not fit).
    seed : int
        Seed of the channels, noise and payloads.
    """

    mcs: Optional[tuple] = None
    num_mcs: int = 6
    packet_bits: tuple = (24, 100, 400, 2000)
    snr_points: int = 7
    slots: int = 20
    max_packets_per_slot: int = 16
    seed: int = 2026

    def __post_init__(self):
        for k in ("num_mcs", "snr_points", "slots", "max_packets_per_slot"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100_000:
                raise ValueError(f"grid.{k} = {v!r} is not supported; allowed: an integer >= 1")
        if self.snr_points < 3:
            raise ValueError(f"grid.snr_points = {self.snr_points} is not supported; "
                             f"allowed: an integer >= 3")
        if self.slots < 2:
            raise ValueError(f"grid.slots = {self.slots} is not supported; allowed: an integer "
                             f">= 2 (the gap is measured by two-fold cross-fitting)")
        object.__setattr__(self, "packet_bits", tuple(sorted(int(b) for b in self.packet_bits)))
        if not self.packet_bits or any(b < 1 for b in self.packet_bits):
            raise ValueError(f"grid.packet_bits = {list(self.packet_bits)} is not supported; "
                             f"allowed: one or more sizes >= 1 bit")
        if self.mcs is not None:
            object.__setattr__(self, "mcs", tuple(sorted(int(m) for m in self.mcs)))

    def mcs_for(self, scenario: Scenario) -> list[int]:
        """The MCS indices measured on ``scenario``."""
        from .transport import MCS_TABLE_SIZES, MIN_LDPC_CODERATE, mcs_info

        n = MCS_TABLE_SIZES[scenario.mcs_table]
        ok = [m for m in range(n) if mcs_info(m, scenario.mcs_table)[1] >= MIN_LDPC_CODERATE]
        if self.mcs is not None:
            bad = [m for m in self.mcs if m not in ok]
            if bad:
                raise ValueError(f"grid.mcs = {list(self.mcs)}: MCS {bad} cannot be coded at bit "
                                 f"level on MCS table {scenario.mcs_table}; allowed: {ok}")
            return list(self.mcs)
        idx = np.unique(np.round(np.linspace(0, len(ok) - 1, min(self.num_mcs, len(ok)))))
        return [ok[int(i)] for i in idx]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["packet_bits"] = list(self.packet_bits)
        d["mcs"] = None if self.mcs is None else list(self.mcs)
        return d


#: ``default``: 6 MCS x 4 sizes x 7 SNRs x 20 slots (up to 16 packets each);
#: ``quick``: 3 MCS x 2 sizes x 6 SNRs x 12 slots (up to 8 packets).
GRIDS = {
    "default": CalibrationGrid(),
    "quick": CalibrationGrid(num_mcs=3, packet_bits=(24, 400), snr_points=6, slots=12,
                             max_packets_per_slot=8),
}


# -------------------------------------------------------------------------------- the fit
def _tbler(scenario: Scenario, mcs: int, cb_size: int, num_cb: int, sinr_eff_db) -> np.ndarray:
    from .link import transport_block_error

    s = np.asarray(sinr_eff_db, float)
    return transport_block_error(scenario.mcs_table, mcs, cb_size, num_cb,
                                 10.0 ** (s.reshape(-1) / 10.0)).reshape(s.shape)


@functools.lru_cache(maxsize=4096)
def pivot_db(mcs_table: int, mcs: int, cb_size: int, num_cb: int) -> float:
    """The effective SINR [dB] where the abstraction's (uncorrected) transport-block error
    probability falls through 10 % for this transport format (0.01 dB resolution)."""
    from .link import transport_block_error

    grid = np.arange(-30.0, 60.0, 0.01)
    p = transport_block_error(mcs_table, mcs, cb_size, num_cb, 10.0 ** (grid / 10.0))
    below = np.flatnonzero(p < 0.1)
    return float(round(grid[below[0]], 2)) if len(below) else float(grid[-1])


def fit_offset(failed, sinr_eff_db, tbler_fn: Callable[[np.ndarray], np.ndarray]) -> dict:
    """Maximum-likelihood SNR offset of a BLER model against observed outcomes.

    Parameters
    ----------
    failed : [n] array of bool
        Observed packet errors (bit level).
    sinr_eff_db : [n] array of float
        The abstraction's effective SINR [dB] of the same packets.
    tbler_fn : callable
        ``[m] SINR [dB] -> [m] error probability`` (the abstraction's table).

    Output
    ------
    dict
        ``offset_db`` (the maximiser over :data:`OFFSET_RANGE_DB`: a 0.25 dB grid, then
        0.02 dB within 0.5 dB of its best),
        ``stderr_db`` (from the likelihood's curvature; `None` when flat), ``at_edge``
        (the maximiser is at the searched range's edge: the data do not pin it down),
        ``informative`` (the outcomes are neither all failures nor all successes).
    """
    failed = np.asarray(failed, bool).reshape(-1)
    s = np.asarray(sinr_eff_db, float).reshape(-1)

    def loglik(offsets):
        p = tbler_fn((s[None, :] + offsets[:, None]).reshape(-1)).reshape(len(offsets), -1)
        p = np.clip(p, _P_FLOOR, 1 - _P_FLOOR)
        return np.where(failed[None, :], np.log(p), np.log1p(-p)).sum(1)

    lo, hi = OFFSET_RANGE_DB
    coarse = np.arange(lo, hi + 1e-9, 0.25)               # coarse, then fine around the best
    c = coarse[int(np.argmax(loglik(coarse)))]
    grid = np.arange(max(lo, c - 0.5), min(hi, c + 0.5) + 1e-9, _OFFSET_STEP_DB)
    ll = loglik(grid)
    i = int(np.argmax(ll))
    a = b = i                 # a flat top (e.g. no failures in range): take its middle
    while a > 0 and ll[a - 1] >= ll[i] - 1e-9:
        a -= 1
    while b < len(ll) - 1 and ll[b + 1] >= ll[i] - 1e-9:
        b += 1
    i = (a + b) // 2
    se = None
    if 0 < i < len(grid) - 1:
        curv = (ll[i - 1] - 2 * ll[i] + ll[i + 1]) / _OFFSET_STEP_DB ** 2
        se = float(1.0 / math.sqrt(-curv)) if curv < 0 else None
    return dict(offset_db=float(round(grid[i], 4)), stderr_db=se,
                at_edge=bool(grid[i] <= lo + 1e-9 or grid[i] >= hi - 1e-9),
                informative=bool(0 < failed.sum() < failed.size))


def _loglik(failed, p) -> float:
    p = np.clip(p, _P_FLOOR, 1 - _P_FLOOR)
    return float(np.where(failed, np.log(p), np.log1p(-p)).sum())


def stretched(sinr_db, offset_db, slope, pivot):
    """``sinr + offset + (slope - 1) * (sinr - pivot)`` [dB] (the calibration's correction)."""
    s = np.asarray(sinr_db, float)
    return s + offset_db + (np.asarray(slope, float) - 1.0) * (s - pivot)


def fit_correction(failed, sinr_eff_db, tbler_fn: Callable[[np.ndarray], np.ndarray],
                   pivot: float) -> dict:
    """Maximum-likelihood offset and slope (see the module docstring) of a BLER model against
    observed outcomes; the slope stays 1 unless it raises the log likelihood by more than
    half the 95 % chi-square(1) quantile (a likelihood-ratio test).

    Parameters as in :func:`fit_offset`; ``pivot`` [dB]: where the table's BLER is 10 %.

    Output
    ------
    dict
        :func:`fit_offset`'s keys for the chosen slope, plus ``slope``, ``slope_lr`` (twice
        the log-likelihood gain of the best slope over slope 1) and ``slope_at_edge``.
    """
    failed = np.asarray(failed, bool)
    s = np.asarray(sinr_eff_db, float)
    base = fit_offset(failed, s, tbler_fn)
    ll1 = _loglik(failed, tbler_fn(s + base["offset_db"]))
    best = (ll1, 1.0, base)
    if base["informative"]:
        for a in SLOPES:
            r = fit_offset(failed, stretched(s, 0.0, a, pivot), tbler_fn)
            ll = _loglik(failed, tbler_fn(stretched(s, r["offset_db"], a, pivot)))
            if ll > best[0]:
                best = (ll, float(a), r)
    lr = 2.0 * (best[0] - ll1)
    _, slope, r = best if lr > _LR_CRITICAL else (ll1, 1.0, base)
    return dict(r, slope=slope, slope_lr=round(lr, 3),
                slope_at_edge=bool(slope != 1.0 and slope in (SLOPES[0], SLOPES[-1])))


def snr_at_bler(snr_db, bler, target: float = 0.1) -> Optional[float]:
    """SNR [dB] where a BLER curve first falls through ``target`` (linear in the probit of
    the BLER between grid points), or `None` when the curve does not cross it."""
    from scipy.stats import norm

    snr = np.asarray(snr_db, float)
    b = np.clip(np.asarray(bler, float), 1e-6, 1 - 1e-6)
    z, zt = norm.ppf(b), norm.ppf(target)
    for i in range(len(snr) - 1):
        if b[i] >= target > b[i + 1]:
            return float(snr[i] + (zt - z[i]) / (z[i + 1] - z[i]) * (snr[i + 1] - snr[i]))
    return None


# ------------------------------------------------------------------------ the calibration
@dataclass
class Calibration:
    """SNR corrections of the abstraction on one scenario, per MCS and packet size.

    ``offset_db[i][j]`` [dB] is added to the effective SINR of a packet of ``packet_bits[j]``
    bits at MCS ``mcs[i]`` (negative: the abstraction was optimistic) and ``slope[i][j]``
    stretches the curve about the packet's 10 % point (see the module docstring; ``None``:
    all 1, as calibrations made before slopes were fitted). :meth:`offsets_db` and
    :meth:`slopes` interpolate linearly in MCS and in log packet size, clamped to the grid;
    :meth:`corrected_db` applies both. ``curves`` holds the per-curve diagnostics (fit, gaps
    at 10 % and 1 % BLER before and after with bootstrap intervals, packets); ``summary`` the
    worst gaps.
    """

    key: str
    scenario: dict
    mcs: list
    packet_bits: list
    offset_db: list
    slope: Optional[list] = None
    grid: dict = field(default_factory=dict)
    curves: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    link_version: str = ""
    sionna_version: str = ""
    command: str = ""
    seconds: float = 0.0
    created: str = ""

    @property
    def name(self) -> str:
        return str(self.scenario.get("name", "scenario"))

    @property
    def file_name(self) -> str:
        """``NAME-KEY.json`` (the key makes it findable; the name is for people)."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.name) or "scenario"
        return f"{safe}-{self.key}.json"

    def describe(self) -> str:
        """What records say: ``"tdl-a-30khz@9f2c...."``."""
        return f"{self.name}@{self.key}"

    def check_scenario(self, scenario: Scenario) -> None:
        """Raise if this calibration was not made for ``scenario``."""
        key = scenario_key(scenario)
        if key != self.key:
            raise ValueError(f"calibration {self.describe()} was made for another scenario or "
                             f"link version (key {self.key}, this scenario {key}); run "
                             f"'sdgic calibrate' on the scenario")

    def offsets_db(self, mcs_index: int, packet_bits) -> np.ndarray:
        """Offsets [dB] for packets of ``packet_bits`` (int or [n]) at ``mcs_index``."""
        return self._interpolate(self.offset_db, mcs_index, packet_bits)

    def slopes(self, mcs_index: int, packet_bits) -> np.ndarray:
        """Slopes for packets of ``packet_bits`` (int or [n]) at ``mcs_index``."""
        if self.slope is None:
            return np.ones(np.atleast_1d(np.asarray(packet_bits)).shape)
        return self._interpolate(self.slope, mcs_index, packet_bits)

    def corrected_db(self, mcs_index: int, packet_bits, sinr_db, pivot) -> np.ndarray:
        """Corrected effective SINRs [dB] of packets of ``packet_bits`` ([n]) at
        ``mcs_index`` with effective SINRs ``sinr_db`` [n] and 10 % points ``pivot`` [n] dB
        (:func:`pivot_db`)."""
        return stretched(sinr_db, self.offsets_db(mcs_index, packet_bits),
                         self.slopes(mcs_index, packet_bits), np.asarray(pivot, float))

    def _interpolate(self, values, mcs_index: int, packet_bits) -> np.ndarray:
        table = np.asarray(values, float)                               # [n_mcs, n_bits]
        m = np.asarray(self.mcs, float)
        lb = np.log(np.asarray(self.packet_bits, float))
        x = np.log(np.maximum(np.atleast_1d(np.asarray(packet_bits, float)), 1.0))
        # bilinear (clamped) in MCS and log size: the MCS axis first, then every packet at once
        at_mcs = np.array([np.interp(float(mcs_index), m, table[:, k])
                           for k in range(table.shape[1])])              # [n_bits]
        return np.interp(x, lb, at_mcs)

    def offset_db_at(self, mcs_index: int, packet_bits: int) -> float:
        return float(self.offsets_db(mcs_index, [packet_bits])[0])

    def slope_at(self, mcs_index: int, packet_bits: int) -> float:
        return float(self.slopes(mcs_index, [packet_bits])[0])

    # -- files ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "Calibration":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            cal = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
            tables = {"offset_db": cal.offset_db, "slope": cal.slope}
            for name, values in tables.items():
                if values is None and name == "slope":      # made before slopes: all 1
                    continue
                t = np.asarray(values, float)
                if t.shape != (len(cal.mcs), len(cal.packet_bits)) or not np.isfinite(t).all():
                    raise ValueError(f"{name} has shape {t.shape}, expected "
                                     f"({len(cal.mcs)}, {len(cal.packet_bits)}) finite values")
            if cal.slope is not None and (np.asarray(cal.slope, float) <= 0).any():
                raise ValueError("slope has values <= 0")
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ValueError(f"calibration file {str(path)!r} is not readable: {e}") from None
        return cal


# ---------------------------------------------------------------------------- measuring
_LINKS: dict = {}


def _links(scenario: Scenario):
    from .link import Link

    k = json.dumps(scenario.to_dict(), sort_keys=True)
    if k not in _LINKS:
        _LINKS[k] = (Link(scenario, "bit"), Link(scenario, "abstraction"))
    return _LINKS[k]


def _slot_seeds(grid: CalibrationGrid, mcs: int, bits: int) -> list[int]:
    from .fading import derive_seed

    return [derive_seed("calibration", grid.seed, mcs, bits, t) for t in range(grid.slots)]


def _packets_per_slot(link, grid: CalibrationGrid, mcs: int, bits: int) -> int:
    fmt = link.transport_format(bits, mcs)
    return min(grid.max_packets_per_slot, link.num_data_re // fmt.num_re)


def plan(scenario: Scenario, grid: CalibrationGrid) -> list[dict]:
    """The curves :func:`calibrate` measures: ``{mcs, packet_bits, packets_per_slot,
    snr_db: [...]}`` per (MCS, size) that fits a slot. The SNR window comes from the
    abstraction's mean BLER over the curve's channels (cheap), shifted with the SINR."""
    _, ab = _links(scenario)
    curves = []
    for mcs in grid.mcs_for(scenario):
        for bits in grid.packet_bits:
            k = _packets_per_slot(ab, grid, mcs, bits)
            if k < 1:
                continue
            fmt = ab.transport_format(bits, mcs)
            seeds = _slot_seeds(grid, mcs, bits)[:16]

            def sinr_at(snr):
                return np.array([ab.transmit([bits], mcs, float(snr), 0,
                                             ab.new_state(sd)).sinr_eff_db[0] for sd in seeds])

            ref = 10.0
            for _ in range(2):                   # the SINR is ~linear in SNR: refine once
                s = sinr_at(ref)
                shifts = np.arange(-30.0, 40.0, 0.1)
                p = _tbler(scenario, mcs, fmt.cb_size, fmt.num_cb,
                           s[None, :] + shifts[:, None]).mean(1)
                hi = shifts[np.argmax(p < 0.03)] if (p < 0.03).any() else shifts[-1]
                lo = shifts[np.flatnonzero(p > 0.9)[-1]] if (p > 0.9).any() else shifts[0]
                lo, hi = ref + lo, ref + hi
                ref = float(np.clip(round((lo + hi) / 2, 1), -45, 95))
            # the bit-level curve lies at or right of the raw abstraction's (up to ~5 dB for
            # short packets with estimated channels): the window reaches past it
            lo, hi = max(lo - 1.5, -45.0), min(hi + 4.0, 95.0)
            snrs = np.round(np.linspace(lo, hi, grid.snr_points), 2).tolist()
            curves.append(dict(mcs=int(mcs), packet_bits=int(bits), packets_per_slot=int(k),
                               cb_size=int(fmt.cb_size), num_cb=int(fmt.num_cb),
                               num_re=int(fmt.num_re), snr_db=snrs))
    return curves


def measure_point(scenario: Scenario, grid: CalibrationGrid, mcs: int, bits: int, k: int,
                  snr_db: float) -> dict:
    """Both modes on the curve's seeded channels at one SNR: ``failed`` [slots, k] bit-level
    errors, ``sinr_eff_db`` [slots, k] the abstraction's effective SINRs, seconds."""
    bit, ab = _links(scenario)
    t0 = time.time()
    failed, sinr = [], []
    for sd in _slot_seeds(grid, mcs, bits):
        r = bit.transmit([bits] * k, mcs, float(snr_db), 0, bit.new_state(sd))
        a = ab.transmit([bits] * k, mcs, float(snr_db), 0, ab.new_state(sd))
        failed.append((~r.success).tolist())
        sinr.append(np.round(a.sinr_eff_db.astype(float), 4).tolist())
    return dict(mcs=mcs, packet_bits=bits, snr_db=float(snr_db), failed=failed,
                sinr_eff_db=sinr, seconds=time.time() - t0, seed=grid.seed)


def _point_file(workdir: Path, mcs: int, bits: int, snr: float) -> Path:
    return workdir / "points" / f"m{mcs}_b{bits}_s{snr:+.2f}.json"


def _point_done(workdir: Path, grid: CalibrationGrid, curve: dict, snr: float) -> bool:
    """Whether the point's file exists and was measured on this grid's channels (same seed,
    slots and packets per slot): a rerun with another grid in the same workdir remeasures."""
    f = _point_file(workdir, curve["mcs"], curve["packet_bits"], snr)
    if not f.is_file():
        return False
    try:
        d = json.loads(f.read_text())
    except (OSError, ValueError):
        return False                                       # a torn write: measure again
    failed = d.get("failed") or []
    return (d.get("seed", GRIDS["default"].seed) == grid.seed and len(failed) == grid.slots
            and all(len(row) == curve["packets_per_slot"] for row in failed))


def _run_points(scenario, grid, todo, workdir, workers, address, bar):
    """Measure ``todo`` [(curve, snr)] and write each point's file as it finishes."""
    def store(res):
        f = _point_file(workdir, res["mcs"], res["packet_bits"], res["snr_db"])
        tmp = f.with_suffix(".tmp")
        tmp.write_text(json.dumps(res))
        tmp.replace(f)
        bar.update(1)

    if not workers or workers <= 1 and address is None:
        for c, snr in todo:
            store(measure_point(scenario, grid, c["mcs"], c["packet_bits"], c["packets_per_slot"],
                                snr))
        return
    from .parallel import ray_map

    ray_map(measure_point, [(scenario, grid, c["mcs"], c["packet_bits"], c["packets_per_slot"], s)
                            for c, s in todo], workers=workers, address=address, on_result=store)


def _gaps(snrs, failed, p_before, p_after) -> dict:
    """Abstraction minus bit-level SNR [dB] at 10 % and 1 % BLER, before and after, from
    [snr, slots, k] outcomes and model probabilities (`None` where a curve does not cross)."""
    b_bit = failed.mean(axis=(1, 2))
    out = {}
    for t, name in ((0.1, "10"), (0.01, "1")):
        sb = snr_at_bler(snrs, b_bit, t)
        for w, p in (("before", p_before), ("after", p_after)):
            sm = snr_at_bler(snrs, p.mean(axis=(1, 2)), t)
            out[f"gap{name}_{w}_db"] = None if sb is None or sm is None else sm - sb
    return out


def _curve_model(scenario, curve):
    """The curve's table ``[n] SINR [dB] -> TBLER`` and its 10 % point [dB]."""
    fn = functools.partial(_tbler, scenario, curve["mcs"], curve["cb_size"], curve["num_cb"])
    return fn, pivot_db(scenario.mcs_table, curve["mcs"], curve["cb_size"], curve["num_cb"])


def _gap_intervals(snrs, failed, p_before, p_after, boot: int = 300) -> dict:
    """95 % bootstrap intervals of :func:`_gaps`' values (``gap10_before_ci_db`` ...) over
    channel realizations: slots resampled, the same for both modes (paired); `None` where the
    curve does not cross in nearly every resample."""
    rng = np.random.default_rng(0)
    n = failed.shape[1]
    samples: dict = {}
    for _ in range(boot):
        i = rng.integers(0, n, n)
        for k, v in _gaps(snrs, failed[:, i], p_before[:, i], p_after[:, i]).items():
            samples.setdefault(k, [])
            if v is not None:
                samples[k].append(v)
    return {k.replace("_db", "_ci_db"): ([float(np.percentile(v, 2.5)),
                                          float(np.percentile(v, 97.5))]
                                         if len(v) >= 0.9 * boot else None)
            for k, v in samples.items()}


def _cross_fit(scenario, curve, pts, boot: int = 300) -> dict:
    """Fit one correction (offset and slope) on all the curve's packets; gaps at 10 % / 1 %
    BLER before and after, each with a 95 % bootstrap interval over channel realizations
    (slots resampled, the same for both modes: the comparison stays paired); and the offset
    fitted on each half of the slots at the chosen slope (their difference: how well the
    calibration carries to fresh channels)."""
    snrs = curve["snr_db"]
    failed = np.array([pts[s]["failed"] for s in snrs], bool)          # [snr, slots, k]
    sinr = np.array([pts[s]["sinr_eff_db"] for s in snrs], float)
    fn, pivot = _curve_model(scenario, curve)
    full = fit_correction(failed, sinr, fn, pivot)
    p0 = fn(sinr)
    p1 = fn(stretched(sinr, full["offset_db"], full["slope"], pivot))
    out = dict(curve, **full, pivot_db=pivot, packets=int(failed.size),
               bler_bit=failed.mean(axis=(1, 2)).round(5).tolist(),
               bler_before=p0.mean(axis=(1, 2)).round(5).tolist(),
               bler_after=p1.mean(axis=(1, 2)).round(5).tolist(),
               **_gaps(snrs, failed, p0, p1), **_gap_intervals(snrs, failed, p0, p1, boot))
    n = failed.shape[1]
    halves = [np.arange(n) % 2 == i for i in (0, 1)]
    out["offset_halves_db"] = [fit_offset(failed[:, h], stretched(sinr[:, h], 0.0, full["slope"],
                                                                  pivot), fn)["offset_db"]
                               for h in halves]
    return out


def _fill_table(mcs: list, bits: list, fitted: dict) -> list:
    """A [MCS][size] table of fitted values; a (MCS, size) with no usable fit takes the
    nearest fitted size at that MCS, else the nearest fitted MCS (packets that do not fit a
    slot are never sent)."""
    table = np.full((len(mcs), len(bits)), np.nan)
    for (m, b), off in fitted.items():
        table[mcs.index(m), bits.index(b)] = off
    if np.isnan(table).all():
        raise RuntimeError("no (MCS, packet size) of the grid could be fitted: every curve is "
                           "all failures or all successes; widen the grid")
    for i in range(len(mcs)):
        ok = np.flatnonzero(~np.isnan(table[i]))
        if len(ok):
            for j in np.flatnonzero(np.isnan(table[i])):
                table[i, j] = table[i, ok[np.argmin(np.abs(ok - j))]]
    rows = np.flatnonzero(~np.isnan(table[:, 0]))
    for i in np.flatnonzero(np.isnan(table[:, 0])):
        table[i] = table[rows[np.argmin(np.abs(rows - i))]]
    return np.round(table, 3).tolist()


def calibrate(scenario: Scenario, grid: CalibrationGrid | str = "default",
              workdir: Optional[Path] = None, workers: int = 1, address: Optional[str] = None,
              progress: bool = True, command: str = "") -> Calibration:
    """Measure both modes over ``grid`` on ``scenario`` and fit the offsets.

    Parameters
    ----------
    scenario : Scenario
    grid : CalibrationGrid or ``"default"`` | ``"quick"``
    workdir : Path, optional
        Finished grid points (reused by a rerun); default ``~/.cache/sdgic/calibration/KEY``.
    workers : int
        Local Ray workers (1: in this process).
    address : str, optional
        Ray cluster address (``"auto"``, ``"ray://host:10001"``).
    progress : bool
        tqdm bar over grid points.
    command : str
        Stored in the calibration (how it was made).

    Output
    ------
    Calibration
    """
    import sionna
    from tqdm import tqdm

    from .link import LINK_VERSION

    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ValueError(f"grid = {grid!r} is not supported; allowed: {', '.join(GRIDS)}")
        grid = GRIDS[grid]
    t0 = time.time()
    key = scenario_key(scenario)
    workdir = Path(workdir) if workdir is not None else _cache_dir() / key
    (workdir / "points").mkdir(parents=True, exist_ok=True)
    plan_file = workdir / "plan.json"
    saved = json.loads(plan_file.read_text()) if plan_file.is_file() else None
    if saved is not None and saved.get("grid") == grid.to_dict() and saved.get("key") == key:
        curves = saved["curves"]
    else:
        curves = plan(scenario, grid)
        plan_file.write_text(json.dumps(dict(key=key, grid=grid.to_dict(), curves=curves)))
    points = [(c, s) for c in curves for s in c["snr_db"]]
    todo = [(c, s) for c, s in points if not _point_done(workdir, grid, c, s)]
    bar = tqdm(total=len(points), initial=len(points) - len(todo), disable=not progress,
               desc=f"calibrate {scenario.name}", unit="point")
    try:
        _run_points(scenario, grid, todo, workdir, workers, address, bar)
    finally:
        bar.close()
    fitted, diag = {}, []
    for c in curves:
        pts = {s: json.loads(_point_file(workdir, c["mcs"], c["packet_bits"], s).read_text())
               for s in c["snr_db"]}
        d = _cross_fit(scenario, c, pts)
        d["seconds"] = float(sum(p["seconds"] for p in pts.values()))
        diag.append(d)
        if d["informative"] and not d["at_edge"]:
            fitted[(c["mcs"], c["packet_bits"])] = (d["offset_db"], d["slope"])
    mcs = sorted({c["mcs"] for c in curves})
    bits = sorted({c["packet_bits"] for c in curves})
    cal = Calibration(key=key, scenario=scenario.to_dict(), mcs=mcs, packet_bits=bits,
                      offset_db=_fill_table(mcs, bits, {k: v[0] for k, v in fitted.items()}),
                      slope=_fill_table(mcs, bits, {k: v[1] for k, v in fitted.items()}),
                      grid=grid.to_dict(),
                      curves=diag, summary=summarize(diag), link_version=LINK_VERSION,
                      sionna_version=getattr(sionna, "__version__", "?"), command=command,
                      seconds=round(time.time() - t0, 1),
                      created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return cal


def summarize(curves: list, tolerance_db: float = 0.5) -> dict:
    """Worst and mean absolute gaps [dB] over the curves, before and after; how many curves'
    gaps after are within ``tolerance_db``, and how many are within it or have a 95 %
    interval that reaches into it (not distinguishable from within it)."""
    out = {}
    for k in ("gap10_before_db", "gap10_after_db", "gap1_before_db", "gap1_after_db"):
        v = np.abs([c[k] for c in curves if c.get(k) is not None])
        out[k.replace("_db", "_max_abs_db")] = float(v.max()) if len(v) else None
        out[k.replace("_db", "_mean_abs_db")] = float(v.mean()) if len(v) else None
        out[k.replace("_db", "_curves")] = int(len(v))
    for t in ("10", "1"):
        got = [c for c in curves if c.get(f"gap{t}_after_db") is not None]
        out[f"gap{t}_after_within_tolerance"] = int(sum(abs(c[f"gap{t}_after_db"]) <= tolerance_db
                                                     for c in got))
        out[f"gap{t}_after_within_tolerance_or_ci"] = int(sum(
            abs(c[f"gap{t}_after_db"]) <= tolerance_db
            or (c.get(f"gap{t}_after_ci_db") is not None
                and c[f"gap{t}_after_ci_db"][0] <= tolerance_db
                and c[f"gap{t}_after_ci_db"][1] >= -tolerance_db) for c in got))
    out["tolerance_db"] = tolerance_db
    out["curves"] = len(curves)
    out["curves_fitted"] = int(sum(c["informative"] and not c["at_edge"] for c in curves))
    return out

def validate(calibration: Calibration, scenario: Scenario, seed: int = 7, slots: int = 0,
             curves: Optional[Sequence[tuple]] = None, progress: bool = False) -> list[dict]:
    """Judge ``calibration`` against the bit-level chain on *fresh* channels.

    Every curve of the calibration (or only the ``(mcs, packet_bits)`` in ``curves``) is
    measured again in both modes with another ``seed``, and the abstraction is corrected with
    the calibration's stored tables (:meth:`Calibration.corrected_db`), as the simulator does.

    Output
    ------
    list of dict
        Per curve: ``mcs``, ``packet_bits``, ``snr_db``, ``bler_bit``, ``bler_raw``,
        ``bler_calibrated`` [snr], ``gap10_raw_db``, ``gap10_db``, ``gap1_raw_db``, ``gap1_db``
        (abstraction minus bit level at 10 % / 1 % BLER; `None` where a curve does not cross)
        and ``gap10_ci_db``, ``gap1_ci_db`` (95 % bootstrap intervals over the realizations).
    """
    from dataclasses import replace

    from tqdm import tqdm

    calibration.check_scenario(scenario)
    grid = CalibrationGrid(**{k: (tuple(v) if isinstance(v, list) else v)
                              for k, v in calibration.grid.items()}) \
        if calibration.grid else CalibrationGrid()
    grid = replace(grid, seed=int(seed), slots=int(slots) or grid.slots)
    todo = [c for c in calibration.curves
            if curves is None or (c["mcs"], c["packet_bits"]) in set(map(tuple, curves))]
    out = []
    bar = tqdm(total=sum(len(c["snr_db"]) for c in todo), disable=not progress,
               desc=f"validate {calibration.name}", unit="point")
    for c in todo:
        pts = []
        for snr in c["snr_db"]:
            pts.append(measure_point(scenario, grid, c["mcs"], c["packet_bits"],
                                     c["packets_per_slot"], snr))
            bar.update(1)
        failed = np.array([p["failed"] for p in pts], bool)             # [snr, slots, k]
        sinr = np.array([p["sinr_eff_db"] for p in pts], float)
        off = calibration.offset_db_at(c["mcs"], c["packet_bits"])
        slope = calibration.slope_at(c["mcs"], c["packet_bits"])
        fn, pivot = _curve_model(scenario, c)
        b_bit = failed.mean(axis=(1, 2))
        p_raw, p_cal = fn(sinr), fn(stretched(sinr, off, slope, pivot))
        b_raw = p_raw.mean(axis=(1, 2))
        b_cal = p_cal.mean(axis=(1, 2))
        row = dict(mcs=c["mcs"], packet_bits=c["packet_bits"], snr_db=c["snr_db"],
                   offset_db=off, slope=slope, packets=int(failed.size),
                   bler_bit=b_bit.round(5).tolist(), bler_raw=b_raw.round(5).tolist(),
                   bler_calibrated=b_cal.round(5).tolist())
        for t, name in ((0.1, "10"), (0.01, "1")):
            sb, s0, s1 = (snr_at_bler(c["snr_db"], b, t) for b in (b_bit, b_raw, b_cal))
            row[f"gap{name}_raw_db"] = None if sb is None or s0 is None else s0 - sb
            row[f"gap{name}_db"] = None if sb is None or s1 is None else s1 - sb
        ci = _gap_intervals(c["snr_db"], failed, p_raw, p_cal)
        row.update(gap10_ci_db=ci["gap10_after_ci_db"], gap1_ci_db=ci["gap1_after_ci_db"])
        out.append(row)
    bar.close()
    return out
