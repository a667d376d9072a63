"""Outer-loop link adaptation with Sionna SYS, one loop per named flow.

One :class:`~sionna.sys.OuterLoopLinkAdaptation` (OLLA) per flow (the simulator: per stream
whose protection leaves the MCS open), each with its own BLER target. OLLA keeps the
last effective-SINR report and an offset that grows by ``delta_up`` on a NACK and shrinks by
``delta_up * target / (1 - target)`` on an ACK. The MCS of a packet is the highest whose
TBLER at ``SINR_eff - offset`` meets the target, from Sionna's PHYAbstraction BLER tables at
the packet's own code-block size (Sionna's inner loop sizes the transport block from a number
of allocated REs instead; here the packet size is fixed and the REs follow from the MCS).

Feedback: every first transmission's HARQ ACK/NACK, and in abstraction mode the effective
SINR the link measured in that slot (a CQI report one slot old). The bit-level link reports
no SINR, so there OLLA runs on HARQ feedback alone, starting from the nominal SNR.
If even the lowest MCS misses the target, the lowest MCS is used: in abstraction mode the
lowest with BLER data in Sionna's tables (:func:`abstraction_mcs_range`); at bit level the
lowest whose format for the packet the LDPC encoder can code (rate >= 1/5).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["LinkAdaptation", "abstraction_mcs_range"]

_MCS_CATEGORY_PDSCH = 1


@lru_cache(maxsize=None)
def abstraction_mcs_range(mcs_table: int = 1) -> tuple[int, int]:
    """Lowest and highest MCS with BLER data in Sionna's PDSCH table ``mcs_table``.

    Sionna's tables start above MCS 0 (table 1: MCS 3..28; 2: 2..27; 3: 9..28; 4: 2..26);
    below that the abstraction's BLER is undefined and ``channels.Link`` counts every packet
    as lost, so the simulator refuses such MCS in abstraction mode."""
    import json
    import os

    import sionna.sys

    path = os.path.join(os.path.dirname(sionna.sys.__file__), "bler_tables",
                        f"PDSCH_table{int(mcs_table)}.json")
    with open(path) as f:
        data = json.load(f)
    keys = sorted(int(k) for k in data["category"]["1"]["index"][str(int(mcs_table))]["MCS"])
    return keys[0], keys[-1]


class LinkAdaptation:
    """OLLA state of the adapted flows of one link.

    Parameters
    ----------
    link : channels.Link
        Gives the MCS table, the transport formats and the PHY abstraction tables.
    bler_targets : dict of str to float
        The adapted flows (e.g. streams) and the transport-block error target of each.
    snr_db : float
        Nominal SNR [dB]: the initial effective-SINR estimate.
    delta_up : float
        Outer-loop step [dB] after a NACK.
    """

    def __init__(self, link, bler_targets: dict, snr_db: float, delta_up: float = 1.0):
        from sionna.sys import OuterLoopLinkAdaptation

        from .link import phy_abstraction

        self._link = link
        self._table = link.scenario.mcs_table
        # Sionna's OLLA runs the PHY abstraction, which draws HARQ outcomes that OLLA
        # discards: they come from this generator, not Sionna's global one
        self._scratch = torch.Generator(device="cpu").manual_seed(0)
        self._pa = phy_abstraction(self._table)
        self._olla = {}
        if link.mode == "abstraction":
            self._min_mcs, self._max_mcs = abstraction_mcs_range(self._table)
        else:
            self._min_mcs, self._max_mcs = 0, {1: 28, 2: 27, 3: 28, 4: 26}[self._table]
        for s, target in bler_targets.items():
            self._olla[s] = OuterLoopLinkAdaptation(
                self._pa, num_ut=1, bler_target=target, delta_up=delta_up,
                sinr_eff_init=10.0 ** (float(snr_db) / 10.0))

    def adapts(self, stream: str) -> bool:
        return stream in self._olla

    def select(self, stream: str, size_bits: int) -> int:
        """MCS for a new ``size_bits`` packet of ``stream``: the highest MCS whose TBLER at
        this packet's code-block size and ``SINR_eff - offset`` meets the stream's target."""
        olla = self._olla[stream]
        sinr_db = float(olla.sinr_eff_db_last.reshape(-1)[0] - olla.offset.reshape(-1)[0])
        mcs = list(range(self._min_mcs, self._max_mcs + 1))
        fmts = [self._link.transport_format(int(size_bits), m) for m in mcs]
        if self._link.mode == "bit":   # formats the LDPC encoder cannot code are not options
            keep = [i for i, f in enumerate(fmts) if f.bit_level_ok]
            mcs, fmts = [mcs[i] for i in keep], [fmts[i] for i in keep]
        from .link import transport_block_error

        tbler = torch.as_tensor(transport_block_error(
            self._table, mcs, [f.cb_size for f in fmts], [f.num_cb for f in fmts],
            np.full(len(mcs), 10.0 ** (sinr_db / 10.0))))
        ok = torch.nonzero(tbler <= float(olla.bler_target)).reshape(-1)
        return mcs[int(ok[-1])] if len(ok) else mcs[0]

    def feedback(self, stream: str, ack: bool, sinr_eff_db: float | None = None) -> None:
        """HARQ feedback (and optionally an effective-SINR report) of one first transmission."""
        if stream not in self._olla:
            return
        s = torch.tensor([10.0 ** (sinr_eff_db / 10.0)]) if sinr_eff_db is not None \
            and math.isfinite(sinr_eff_db) else None
        from .fading import use_generator

        with use_generator(self._scratch):
            self._olla[stream](torch.tensor([1]), torch.tensor([1 if ack else 0]), s,
                               mcs_table_index=self._table, mcs_category=_MCS_CATEGORY_PDSCH)

    def offset_db(self, stream: str) -> float:
        return float(self._olla[stream].offset.reshape(-1)[0])
