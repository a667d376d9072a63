"""Slot scheduler: which packets go into a slot, under a resource-element budget.

Every slot carries packets of **one MCS** (``Link.transmit`` takes one MCS per slot, as one
NR PDSCH per slot does). Per slot ``t`` the scheduler

1. drops every queued packet whose deadline has passed (it could not be received by
   ``deadline``: a packet sent in slot ``t`` arrives at ``t + 1``);
2. orders the packets that are ready by ``t`` (``ready_at <= t``: created, and for a
   retransmission its HARQ round trip over) by :meth:`Packet.service_key`: priority (lower first),
   retransmissions before new packets of the same priority, earliest deadline, image, stream,
   sequence;
3. takes the MCS of the first packet as the slot's MCS (a link-adapted packet gets its MCS
   here, at its first transmission) and fills the slot in that order with packets of that
   MCS, first fit, while their resource elements stay within ``budget_re``.

A packet stays queued until it is acknowledged, has used its ``1 + max_retx`` transmissions,
or misses its deadline (:meth:`feedback`). HARQ round trip: a packet NACKed in slot ``t`` may
be retransmitted from slot ``t + harq_rtt_slots`` on (the NACK and the retransmission's
scheduling take that long; 1: the very next slot). A retransmission that could not be
received by the packet's deadline even if sent at that first chance (``t + harq_rtt_slots +
1 > deadline``) is dropped at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

from .packets import Packet

__all__ = ["SlotPlan", "SlotScheduler"]


@dataclass
class SlotPlan:
    """What one slot carries.

    Parameters
    ----------
    slot : int
    mcs : int or None
        MCS of the slot (`None` if the slot is empty).
    packets : list of Packet
        In service order; their REs sit consecutively in the slot in this order.
    num_re : list of int
        Resource elements of each packet.
    dropped : list of Packet
        Packets removed before this slot because their deadline passed.
    """

    slot: int
    mcs: Optional[int] = None
    packets: list = field(default_factory=list)
    num_re: list = field(default_factory=list)
    dropped: list = field(default_factory=list)

    @property
    def used_re(self) -> int:
        return int(sum(self.num_re))


class SlotScheduler:
    """Priority scheduler with a per-slot resource-element budget.

    Parameters
    ----------
    link : channels.Link
        Gives each packet's transport format (its REs at an MCS).
    budget_re : int
        Resource elements per slot, at most ``link.num_data_re``.
    select_mcs : callable (stream, size_bits) -> int, optional
        MCS of a link-adapted packet (``packet.mcs is None``) at its first transmission.
    harq_rtt_slots : int
        HARQ round-trip time [slots] from a NACKed transmission to the earliest
        retransmission, >= 1.
    """

    def __init__(self, link, budget_re: int, select_mcs: Optional[Callable] = None,
                 harq_rtt_slots: int = 4):
        if isinstance(budget_re, bool) or not isinstance(budget_re, int) or not \
                1 <= budget_re <= link.num_data_re:
            raise ValueError(f"budget_re = {budget_re!r} is not supported; allowed: an integer in "
                             f"[1, {link.num_data_re}] (the slot's data resource elements)")
        if isinstance(harq_rtt_slots, bool) or not isinstance(harq_rtt_slots, int) or \
                harq_rtt_slots < 1:
            raise ValueError(f"harq_rtt_slots = {harq_rtt_slots!r} is not supported; allowed: an "
                             f"integer >= 1")
        self.harq_rtt_slots = harq_rtt_slots
        self.link = link
        self.budget_re = budget_re
        self.select_mcs = select_mcs
        self.queue: list[Packet] = []

    def put(self, packet: Packet) -> None:
        """Queue a new packet."""
        self.queue.append(packet)

    def __len__(self) -> int:
        return len(self.queue)

    def occupancy(self, first_slot: int, horizon: int, max_priority: Optional[int] = None
                  ) -> tuple:
        """What the queued packets will take of slots ``first_slot .. first_slot + horizon -
        1`` ahead of a new packet of priority ``max_priority`` (the queued packets of that
        priority or a more important one; ``None``: all): per slot ``(mcs, resource
        elements)``, ``(None, 0)`` when free. A NACKed packet takes its REs from the slot its
        retransmission becomes ready; packets not yet sent fill the slots from ``first_slot``
        on in service order, first fit, one MCS per slot, as :meth:`schedule` would serve them.
        Packets whose MCS link adaptation picks later are left out. Trailing free slots are
        cut off."""
        mcs = [None] * horizon
        used = [0] * horizon
        # retransmissions first (pinned to their ready slot), then new packets fill around
        # them, each group in service order
        queued = sorted((p for p in self.queue if p.mcs is not None and
                         (max_priority is None or p.priority <= max_priority)),
                        key=lambda p: (not p.attempts, p.service_key()))
        for p in queued:
            n = self._num_re(p, p.mcs)
            t = max(0, math.ceil(max(p.created, p.ready_at)) - first_slot)
            while t < horizon and not (mcs[t] in (None, p.mcs) and used[t] + n <= self.budget_re):
                t += 1
            if t < horizon:
                mcs[t] = p.mcs
                used[t] += n
        while horizon and mcs[horizon - 1] is None:
            horizon -= 1
        return tuple(zip(mcs[:horizon], used[:horizon]))

    def _num_re(self, p: Packet, mcs: int) -> int:
        return self.link.transport_format(int(p.size_bits), int(mcs)).num_re

    def schedule(self, slot: int) -> SlotPlan:
        """Plan slot ``slot`` (see the module docstring)."""
        plan = SlotPlan(slot=slot)
        keep = []
        for p in self.queue:
            (plan.dropped if p.deadline < slot + 1 else keep).append(p)
        self.queue = keep
        ready = sorted((p for p in keep if p.created <= slot and p.ready_at <= slot),
                       key=Packet.service_key)
        if not ready:
            return plan
        adapted: dict = {}

        def mcs_of(p):
            if p.mcs is not None:
                return p.mcs
            if self.select_mcs is None:
                raise ValueError(f"packet {p.key} has no MCS and the scheduler has no link "
                                 f"adaptation (select_mcs)")
            if p.stream not in adapted:
                adapted[p.stream] = int(self.select_mcs(p.stream, p.size_bits))
            return adapted[p.stream]

        plan.mcs = mcs_of(ready[0])
        used = 0
        for p in ready:
            if mcs_of(p) != plan.mcs:
                continue
            n = self._num_re(p, plan.mcs)
            if used + n > self.budget_re:
                continue
            if p.mcs is None:
                p.mcs = plan.mcs          # fixed from now on (Chase combining needs the same MCS)
            plan.packets.append(p)
            plan.num_re.append(n)
            used += n
        return plan

    def feedback(self, plan: SlotPlan, success) -> list[tuple[Packet, str]]:
        """Apply the slot's ACK/NACKs (``packet.attempts`` already counts this slot's
        transmission). Acknowledged packets leave the queue; a NACKed packet waits
        ``harq_rtt_slots`` (its ``ready_at``), or leaves the queue if it is out of
        transmissions or its retransmission could not arrive by its deadline.

        Returns ``(packet, reason)`` for every packet dropped: ``"retx"`` (out of
        transmissions) or ``"deadline"`` (no time left for a retransmission)."""
        gone, dropped = set(), []
        for p, ok in zip(plan.packets, success):
            if ok:
                gone.add(id(p))
            elif p.attempts > p.max_retx:
                gone.add(id(p))
                dropped.append((p, "retx"))
            else:
                p.ready_at = float(plan.slot + self.harq_rtt_slots)
                if p.ready_at + 1 > p.deadline:
                    gone.add(id(p))
                    dropped.append((p, "deadline"))
        self.queue = [p for p in self.queue if id(p) not in gone]
        return dropped
