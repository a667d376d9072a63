"""Slot scheduler: service order, budget, deadlines, one MCS per slot, retransmissions."""

import numpy as np
import pytest

from sim.packets import Packet
from sim.scheduler import SlotScheduler


def pkt(stream="hci", image=0, seq=0, bits=40, prio=1, deadline=10.0, created=0.0, mcs=5,
        max_retx=1):
    return Packet(stream=stream, image_id=image, seq=seq, size_bits=bits, priority=prio,
                  deadline=deadline, created=created, payload=np.zeros(bits, np.uint8), mcs=mcs,
                  max_retx=max_retx)


def test_priority_order_within_a_slot(awgn_link):
    s = SlotScheduler(awgn_link, awgn_link.num_data_re)
    low = pkt("hci", seq=0, prio=2)
    high = pkt("caption", seq=0, prio=0)
    mid = pkt("rsrt", seq=0, prio=1)
    for p in (low, high, mid):
        s.put(p)
    plan = s.schedule(0)
    assert plan.packets == [high, mid, low]


def test_retransmission_before_new_packet_of_same_priority(awgn_link):
    s = SlotScheduler(awgn_link, awgn_link.num_data_re)
    new = pkt(image=0, seq=0)
    old = pkt(image=1, seq=0)
    old.attempts = 1                      # already sent once, NACKed
    urgent = pkt("caption", image=2, prio=0)
    for p in (new, old, urgent):
        s.put(p)
    assert s.schedule(0).packets == [urgent, old, new]


def test_budget_is_never_exceeded_and_space_is_filled(awgn_link):
    rng = np.random.default_rng(0)
    for trial in range(30):
        budget = int(rng.integers(150, awgn_link.num_data_re + 1))
        s = SlotScheduler(awgn_link, budget)
        for i in range(int(rng.integers(1, 25))):
            s.put(pkt(image=i, bits=int(rng.integers(8, 400)), prio=int(rng.integers(0, 3)),
                      mcs=5))
        plan = s.schedule(0)
        assert plan.used_re <= budget
        assert plan.used_re == sum(awgn_link.transport_format(p.size_bits, 5).num_re
                                   for p in plan.packets)
        # first fit: nothing left behind would still have fitted
        left = budget - plan.used_re
        for p in s.queue:
            if p not in plan.packets:
                assert awgn_link.transport_format(p.size_bits, 5).num_re > left


def test_one_mcs_per_slot_from_the_most_important_packet(awgn_link):
    s = SlotScheduler(awgn_link, awgn_link.num_data_re)
    a = pkt("caption", prio=0, mcs=3)
    b = pkt("hci", prio=2, mcs=9)
    c = pkt("rsrt", prio=1, mcs=3)
    for p in (a, b, c):
        s.put(p)
    plan = s.schedule(0)
    assert plan.mcs == 3 and plan.packets == [a, c]
    s.feedback(plan, [True, True])
    plan = s.schedule(1)
    assert plan.mcs == 9 and plan.packets == [b]


def test_deadline_drops_and_not_yet_created(awgn_link):
    s = SlotScheduler(awgn_link, awgn_link.num_data_re)
    expired = pkt(deadline=3.0)
    ok = pkt(image=1, deadline=4.0)
    future = pkt(image=2, created=3.5)
    for p in (expired, ok, future):
        s.put(p)
    plan = s.schedule(3)                   # sent in slot 3, received at 4
    assert plan.dropped == [expired]
    assert plan.packets == [ok]            # `future` arrives during slot 3: next slot
    assert future in s.queue


class Recorder:
    """Receiver stand-in: what the channel process delivered and dropped, and when."""

    def __init__(self):
        self.delivered, self.dropped = [], []

    def put(self, p, t):
        self.delivered.append((p, t))

    def drop(self, p, reason, t):
        self.dropped.append((p, reason, t))


def run_slots(link, scheduler, snr_db, slots, trace):
    """Drive the real ChannelProcess (it counts attempts and feeds the scheduler back)."""
    from sim.channel_process import ChannelProcess

    rec = Recorder()
    chan = ChannelProcess(None, link, link.new_state(0), snr_db, scheduler, out=rec.put,
                          on_drop=rec.drop, trace=trace)
    for slot in range(slots):
        chan.step(slot)
    return rec


def test_retransmission_limit(awgn_link):
    # -30 dB: every transmission is NACKed; 1 + max_retx transmissions, then a "retx" drop
    s = SlotScheduler(awgn_link, awgn_link.num_data_re, harq_rtt_slots=1)
    p = pkt(max_retx=2, deadline=50.0)
    s.put(p)
    trace = []
    rec = run_slots(awgn_link, s, -30.0, 10, trace)
    assert [(t["slot"], t["attempt"], t["success"]) for t in trace] == \
        [(0, 1, False), (1, 2, False), (2, 3, False)]
    assert p.attempts == 3 and rec.delivered == []
    assert rec.dropped == [(p, "retx", 2)] and len(s) == 0


@pytest.mark.parametrize("rtt", [1, 3, 4])
def test_retransmissions_wait_the_harq_round_trip(awgn_link, rtt):
    s = SlotScheduler(awgn_link, awgn_link.num_data_re, harq_rtt_slots=rtt)
    p = pkt(max_retx=3, deadline=100.0)
    other = pkt(image=1, prio=2, deadline=100.0)        # keeps the slots in between busy
    s.put(p)
    s.put(other)
    trace = []
    run_slots(awgn_link, s, -30.0, 30, trace)
    slots = [t["slot"] for t in trace if t["image_id"] == 0]
    assert len(slots) == 4
    assert np.diff(slots).tolist() == [rtt] * 3            # gap = RTT, never less


def test_retransmission_that_cannot_meet_the_deadline_is_dropped(awgn_link):
    # RTT 3, deadline 8: sent at 0 and 3; NACK at 3 -> ready at 6, arrives 7 <= 8: sent at 6;
    # NACK at 6 -> ready at 9, would arrive at 10 > 8: dropped at once, not kept queued
    s = SlotScheduler(awgn_link, awgn_link.num_data_re, harq_rtt_slots=3)
    p = pkt(max_retx=5, deadline=8.0)
    s.put(p)
    trace = []
    rec = run_slots(awgn_link, s, -30.0, 12, trace)
    assert [t["slot"] for t in trace] == [0, 3, 6]
    assert rec.dropped == [(p, "deadline", 6)] and len(s) == 0


def test_not_ready_retransmission_leaves_room_for_others(awgn_link):
    s = SlotScheduler(awgn_link, awgn_link.num_data_re, harq_rtt_slots=4)
    nacked = pkt("caption", prio=0)
    nacked.attempts, nacked.ready_at = 1, 4.0          # NACKed in slot 0
    new = pkt(image=1, prio=2)
    s.put(nacked)
    s.put(new)
    assert s.schedule(1).packets == [new]
    assert s.schedule(4).packets[0] is nacked


def test_bad_harq_rtt_names_the_argument(awgn_link):
    with pytest.raises(ValueError, match=r"harq_rtt_slots = 0 is not supported; allowed: an "
                                         r"integer >= 1"):
        SlotScheduler(awgn_link, 100, harq_rtt_slots=0)


def test_bad_budget_names_the_argument(awgn_link):
    with pytest.raises(ValueError, match="budget_re = 0 .*allowed"):
        SlotScheduler(awgn_link, 0)


def test_occupancy_pins_retransmissions_and_fills_new_packets_from_the_front(awgn_link):
    re = {m: awgn_link.transport_format(40, m).num_re for m in (3, 5)}
    budget = 2 * re[5] + 1                 # two MCS-5 packets fit a slot, not three
    assert re[3] <= budget < re[3] + re[5]
    s = SlotScheduler(awgn_link, budget, harq_rtt_slots=4)
    nacked = pkt("caption", image=0, prio=0, mcs=3)
    nacked.attempts, nacked.ready_at = 1, 6.0        # NACKed in slot 2, ready from slot 6
    fresh = [pkt("hci", image=1, seq=i, prio=1, mcs=5) for i in range(3)]
    late = pkt("rsrt", image=1, prio=2, mcs=3)
    for p in (nacked, *fresh, late):
        s.put(p)
    occ = s.occupancy(3, 8)
    # from slot 3: two MCS-5 packets fill a slot, the third the next, the MCS-3 packet the
    # slot after (one MCS per slot); the retransmission sits in its ready slot 6 (index 3)
    assert occ == ((5, 2 * re[5]), (5, re[5]), (3, re[3]), (3, re[3]))
    # ahead of a priority-0 packet only the caption's retransmission counts
    assert s.occupancy(3, 8, max_priority=0) == ((None, 0),) * 3 + ((3, re[3]),)
    assert s.occupancy(3, 8, max_priority=1) == ((5, 2 * re[5]), (5, re[5]), (None, 0),
                                                 (3, re[3]))
    assert s.occupancy(3, 2) == ((5, 2 * re[5]), (5, re[5]))     # cut at the horizon
    assert SlotScheduler(awgn_link, budget).occupancy(0, 5) == ()
