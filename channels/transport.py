"""NR transport: MCS tables, transport-block sizing, CRC + LDPC segmentation.

* MCS -> (modulation order, target code rate): Sionna's
  :func:`~sionna.phy.nr.utils.decode_mcs_index`, PDSCH tables 1-4 of TS 38.214.
* Transport-block size: Sionna's :func:`~sionna.phy.nr.utils.calculate_tb_size`
  (TS 38.214 5.1.3.2). A packet of ``k`` bits is carried in one transport block
  whose size is the smallest NR TBS >= ``k`` (zero padded; the receiver strips
  the padding). The number of resource elements follows NR's rule
  ``N_info = N_RE * R * Q_m``: ``N_RE = ceil(TBS / (R * Q_m))``, raised if needed
  so that the code rate including CRCs stays <= 0.92.
* CRC (TB CRC16/CRC24A, CB CRC24B), code-block segmentation, 5G LDPC, rate
  matching and scrambling: Sionna's :class:`~sionna.phy.nr.TBEncoder` /
  :class:`~sionna.phy.nr.TBDecoder` (with an early-stopping LDPC decoder, see
  :mod:`channels.ldpc`).

Retransmissions (HARQ) use **Chase combining**: every retransmission sends the
same coded bits (redundancy version 0) and the receiver adds the LLRs of all
copies before decoding. Sionna's TB encoder has no redundancy-version input, so
incremental redundancy would need a re-implementation of the TB chain; Chase
combining keeps the real Sionna TB encoder/decoder. In abstraction mode the
combined effective SINR is the sum of the effective SINRs of the copies (the
MRC gain of Chase combining).
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from functools import lru_cache

from sionna.phy.nr import TBEncoder
from sionna.phy.nr.utils import calculate_tb_size, decode_mcs_index

from .fading import seeded_build
from .ldpc import EarlyStopTBDecoder

__all__ = ["MCS_TABLE_SIZES", "MIN_LDPC_CODERATE", "TransportFormat", "mcs_info",
           "transport_format", "TransportCoder"]

#: Valid MCS indices per PDSCH table (TS 38.214 Tables 5.1.3.1-1..4, reserved rows excluded).
MCS_TABLE_SIZES = {1: 29, 2: 28, 3: 29, 4: 27}
_MAX_RATE = 0.92
#: Lowest code rate Sionna's 5G LDPC encoder accepts. NR reaches lower rates by repetition in
#: rate matching, which Sionna does not implement: such formats exist in abstraction mode only.
MIN_LDPC_CODERATE = 0.2


def _check_mcs(mcs_index, mcs_table) -> None:
    if mcs_table not in MCS_TABLE_SIZES:
        raise ValueError(f"mcs_table = {mcs_table!r} is not supported; allowed: 1, 2, 3, 4")
    n = MCS_TABLE_SIZES[mcs_table]
    if isinstance(mcs_index, bool) or not isinstance(mcs_index, int) or not 0 <= mcs_index < n:
        raise ValueError(f"mcs_index = {mcs_index!r} is not supported; allowed: an integer in "
                         f"[0, {n - 1}] for MCS table {mcs_table}")


@lru_cache(maxsize=None)
def mcs_info(mcs_index: int, mcs_table: int = 1) -> tuple[int, float]:
    """Modulation order and target code rate of an NR PDSCH MCS.

    Output
    ------
    (modulation_order, target_coderate) : (int, float)
    """
    _check_mcs(mcs_index, mcs_table)
    q, r = decode_mcs_index(mcs_index, mcs_table, is_pusch=False)
    return int(q.reshape(-1)[0]), float(r.reshape(-1)[0])


@dataclass(frozen=True)
class TransportFormat:
    """How one packet is carried: TB size, resource elements and code blocks.

    Parameters
    ----------
    packet_bits : int
        Payload bits requested.
    mcs_index, mcs_table : int
        NR MCS.
    modulation_order : int
        Bits per QAM symbol.
    target_coderate : float
        MCS code rate R.
    tb_size : int
        NR transport-block size (>= ``packet_bits``; the difference is zero padding).
    num_re : int
        Resource elements used.
    num_coded_bits : int
        ``num_re * modulation_order``.
    cb_size : int
        Code-block size (information bits + CRCs per code block).
    num_cb : int
        Number of code blocks.
    """

    packet_bits: int
    mcs_index: int
    mcs_table: int
    modulation_order: int
    target_coderate: float
    tb_size: int
    num_re: int
    num_coded_bits: int
    cb_size: int
    num_cb: int

    @property
    def coderate(self) -> float:
        """Code rate including CRC bits."""
        return self.cb_size * self.num_cb / self.num_coded_bits

    @property
    def bit_level_ok(self) -> bool:
        """Whether the bit-level chain can encode it (code rate >= ``MIN_LDPC_CODERATE``)."""
        return self.coderate >= MIN_LDPC_CODERATE


def _tbs(q: int, r: float, target: int, n_coded: int):
    out = calculate_tb_size(q, r, target_tb_size=target, num_coded_bits=n_coded,
                            return_cw_length=False)
    return [int(v.reshape(-1)[0]) for v in out[:5]]


@lru_cache(maxsize=4096)
def transport_format(packet_bits: int, mcs_index: int, mcs_table: int = 1) -> TransportFormat:
    """The :class:`TransportFormat` of a ``packet_bits`` packet at an MCS."""
    if isinstance(packet_bits, bool) or not isinstance(packet_bits, int) or not (
            1 <= packet_bits <= 1_000_000):
        raise ValueError(f"packet size = {packet_bits!r} bits is not supported; allowed: an "
                         f"integer in [1, 1000000]")
    q, r = mcs_info(mcs_index, mcs_table)
    k = max(packet_bits, 24)
    target, tb = k, 0
    for _ in range(64):
        tb = _tbs(q, r, target, 10 ** 7)[0]
        if tb >= k:
            break
        target += max(1, k - tb)
    num_re = math.ceil(tb / (r * q))
    while True:
        tb2, cb, ncb, _, _ = _tbs(q, r, tb, num_re * q)
        if cb * ncb / (num_re * q) <= _MAX_RATE:
            break
        num_re += max(1, num_re // 50)
    assert tb2 == tb
    return TransportFormat(packet_bits, mcs_index, mcs_table, q, r, tb, num_re, num_re * q, cb, ncb)


class TransportCoder:
    r"""Cache of Sionna TB encoders/decoders, one per transport format.

    Parameters
    ----------
    num_bp_iter : int
        Maximum LDPC iterations.
    early_stop : bool
        Early-stopping LDPC decoder.
    precision, device
        Sionna precision and device.
    """

    def __init__(self, num_bp_iter: int = 20, early_stop: bool = True, precision=None, device=None):
        self._iter = num_bp_iter
        self._early = early_stop
        self._precision = precision
        self._device = device
        self._cache: dict = {}

    def get(self, fmt: TransportFormat):
        """Return ``(encoder, decoder)`` for ``fmt``.

        encoder : :class:`~sionna.phy.nr.TBEncoder`, input [..., tb_size] -> [..., num_coded_bits]
        decoder : :class:`~channels.ldpc.EarlyStopTBDecoder`, input [..., num_coded_bits]
        -> ([..., tb_size], [...] bool CRC status)
        """
        key = (fmt.tb_size, fmt.num_coded_bits, fmt.modulation_order, fmt.target_coderate)
        if not fmt.bit_level_ok:
            raise ValueError(
                f"MCS {fmt.mcs_index} (table {fmt.mcs_table}) codes a {fmt.packet_bits}-bit "
                f"packet at rate {fmt.coderate:.3f}, below the {MIN_LDPC_CODERATE} that Sionna's "
                f"5G LDPC encoder supports (it has no repetition); use a higher MCS or the "
                f"abstraction mode")
        if key not in self._cache:
            # any draw of a constructor is a fixed function of the format
            with seeded_build("tb", *key, device=self._device or "cpu"):
                with contextlib.redirect_stdout(io.StringIO()):   # TBEncoder prints notes
                    enc = TBEncoder(target_tb_size=fmt.tb_size, num_coded_bits=fmt.num_coded_bits,
                                    target_coderate=min(fmt.target_coderate, 948 / 1024),
                                    num_bits_per_symbol=fmt.modulation_order,
                                    channel_type="PDSCH", precision=self._precision,
                                    device=self._device)
                if enc.tb_size != fmt.tb_size:
                    raise RuntimeError(f"TB size mismatch {enc.tb_size} != {fmt.tb_size}")
                dec = EarlyStopTBDecoder(enc, num_bp_iter=self._iter, early_stop=self._early,
                                         precision=self._precision, device=self._device)
            self._cache[key] = (enc, dec)
        return self._cache[key]
