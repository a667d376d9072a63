"""Link adaptation of a protection policy's adaptive streams, and the MCS checks.

The outer loop itself is :class:`channels.link_adaptation.LinkAdaptation` (Sionna SYS OLLA,
see there for the feedback it uses); this module maps a
:class:`~sim.policy.ProtectionPolicy` onto it: one loop per stream whose MCS is ``None``, with
the stream's BLER target and the policy's ``olla_delta_up``.
"""

from __future__ import annotations

from channels.link_adaptation import LinkAdaptation, abstraction_mcs_range

from .packets import STREAMS

__all__ = ["StreamLinkAdaptation", "abstraction_mcs_range", "check_policy_mcs"]


def check_policy_mcs(policy, mode: str, mcs_table: int) -> None:
    """Raise if a fixed MCS of ``policy`` has no BLER data in abstraction mode."""
    if mode != "abstraction":
        return
    lo, hi = abstraction_mcs_range(mcs_table)
    for s in STREAMS:
        m = policy[s].mcs
        if m is not None and not lo <= m <= hi:
            raise ValueError(
                f"policy {policy.name!r}: {s}.mcs = {m} is not supported in abstraction mode "
                f"with MCS table {mcs_table}; allowed: {lo}..{hi} (Sionna's PDSCH BLER tables "
                f"have no data outside it); use mode = 'bit' or an MCS in {lo}..{hi}")


class StreamLinkAdaptation(LinkAdaptation):
    """OLLA of the adaptive streams of ``policy`` (``mcs=None``) on ``link``, starting from
    the nominal ``snr_db``."""

    def __init__(self, policy, link, snr_db: float):
        super().__init__(link, {s: policy[s].bler_target for s in STREAMS
                                if policy[s].mcs is None}, snr_db,
                         delta_up=policy.olla_delta_up)
