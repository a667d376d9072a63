"""The link as a SimPy process: one ``Link.transmit`` per slot over one channel state.

:class:`ChannelProcess` holds the :class:`channels.Link` and the link's
:class:`channels.ChannelState` (the time-correlated fading process, drawn once per run) and
runs slot by slot: at the end of slot ``t`` (time ``t + 1``) it asks the scheduler for the
slot's packets (created by ``t``), sends them in one ``transmit`` call at slot index ``t``,
hands acknowledged packets to ``out`` (the receiver) stamped ``delivered_at = t + 1``, and
feeds HARQ ACK/NACK (and, in abstraction mode, the effective SINR) back to the scheduler (which
holds a NACKed packet for the HARQ round-trip time) and link adaptation. Empty slots cost
nothing (no ``transmit`` call).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

__all__ = ["ChannelProcess"]


class ChannelProcess:
    """Slot loop of one link.

    Parameters
    ----------
    env : simpy.Environment
    link : channels.Link
    state : channels.ChannelState
        From ``link.new_state(seed)``.
    snr_db : float
        Es/N0 per resource element [dB].
    scheduler : SlotScheduler
    out : callable (packet, time) -> None
        Receives every acknowledged packet.
    link_adaptation : StreamLinkAdaptation, optional
        Gets HARQ feedback of first transmissions.
    on_drop : callable (packet, reason, time) -> None, optional
        Told about packets dropped at a deadline or with no time left for a retransmission
        (``"deadline"``) or after their last transmission (``"retx"``).
    trace : list, optional
        If given, one dict per packet transmission is appended.
    on_result : callable (packet, ack, mcs) -> None, optional
        Told the HARQ outcome of every transmission (``packet.attempts`` counts it).
    """

    def __init__(self, env, link, state, snr_db: float, scheduler, out: Callable,
                 link_adaptation=None, on_drop: Optional[Callable] = None,
                 trace: Optional[list] = None, on_result: Optional[Callable] = None):
        self.env, self.link, self.state = env, link, state
        self.snr_db = float(snr_db)
        self.scheduler = scheduler
        self.out = out
        self.la = link_adaptation
        self.on_drop = on_drop
        self.trace = trace
        self.on_result = on_result
        self.slots_used = 0
        self.re_used = 0
        self.max_re_in_slot = 0

    def run(self, env, until: float):
        """SimPy process: serve slots ``0, 1, ...`` while slot end <= ``until``."""
        slot = 0
        while slot + 1 <= until:
            yield env.timeout(slot + 1 - env.now)
            self.step(slot)
            slot += 1

    def step(self, slot: int):
        """Plan, transmit and acknowledge slot ``slot`` (called at time ``slot + 1``)."""
        plan = self.scheduler.schedule(slot)
        for p in plan.dropped:
            if self.on_drop:
                self.on_drop(p, "deadline", slot)
        if not plan.packets:
            return plan
        pk = plan.packets
        bits = [p.payload for p in pk] if self.link.mode == "bit" else None
        harq = [p.harq for p in pk]
        res = self.link.transmit([int(p.size_bits) for p in pk], int(plan.mcs), self.snr_db,
                                 int(slot), self.state, bits=bits,
                                 harq=harq if any(h is not None for h in harq) else None)
        self.slots_used += 1
        self.re_used += plan.used_re
        self.max_re_in_slot = max(self.max_re_in_slot, plan.used_re)
        t_rx = slot + 1
        for i, p in enumerate(pk):
            p.attempts += 1
            ok = bool(res.success[i])
            p.harq = res.harq[i] if res.harq else None
            sinr = None if res.sinr_eff_db is None else float(res.sinr_eff_db[i])
            if self.la is not None and p.attempts == 1 and self.la.adapts(p.stream):
                self.la.feedback(p.stream, ok, sinr)
            if self.on_result is not None:
                self.on_result(p, ok, int(plan.mcs))
            if self.trace is not None:
                self.trace.append(dict(slot=slot, image_id=p.image_id, stream=p.stream, seq=p.seq,
                                       size_bits=int(p.size_bits), mcs=int(plan.mcs),
                                       num_re=int(plan.num_re[i]), attempt=p.attempts,
                                       priority=p.priority, deadline=float(p.deadline),
                                       success=ok, sinr_eff_db=sinr))
            if ok:
                p.delivered_at = float(t_rx)
                p.harq = None
                if res.bits is not None:
                    p.received_bits = (np.asarray(res.bits[i]).reshape(-1) > 0.5).astype(np.uint8)
                self.out(p, float(t_rx))
        for p, reason in self.scheduler.feedback(plan, res.success):
            p.harq = None
            if self.on_drop:
                self.on_drop(p, reason, slot)
        return plan
