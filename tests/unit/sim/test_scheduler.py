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


def test_retransmission_limit(awgn_link):
    s = SlotScheduler(awgn_link, awgn_link.num_data_re)
    p = pkt(max_retx=1)
    s.put(p)
    for slot, expect_gone in ((0, False), (1, True)):
        plan = s.schedule(slot)
        assert plan.packets == [p]
        p.attempts += 1
        exhausted = s.feedback(plan, [False])
        assert (exhausted == [p]) == expect_gone
    assert len(s) == 0


def test_bad_budget_names_the_argument(awgn_link):
    with pytest.raises(ValueError, match="budget_re = 0 .*allowed"):
        SlotScheduler(awgn_link, 0)
