"""Packetizer and receiver: sizes within the budget, byte-exact reassembly, lost tokens."""

import numpy as np
import pytest

from benchmark.scenes import generate
from sim import make_policy
from sim.packetizer import Packetizer, max_payload_bits
from sim.receiver import ImageInFlight, Receiver


@pytest.fixture(scope="module")
def encoded(baseline_codec):
    image, scene = generate(3, seed=0, size=64)
    return baseline_codec.encode(image, caption=scene.caption)


def test_packets_fit_the_budget_and_carry_the_stream(awgn_link, encoded):
    pol = make_policy("uep")
    budget = 60                                   # tiny: the caption needs several packets
    pk = Packetizer(awgn_link, pol, budget, rsrt_tokens_per_packet=2)
    packets = pk.packetize(encoded, image_id=0, created=0.0, deadline=4.0)
    for p in packets:
        assert awgn_link.transport_format(p.size_bits, pol[p.stream].mcs).num_re <= budget
        assert p.priority == pol[p.stream].priority and p.deadline == 4.0
    cap = [p for p in packets if p.stream == "caption"]
    assert len(cap) > 1 and [p.seq for p in cap] == list(range(len(cap)))
    bits = np.concatenate([p.payload for p in cap])
    assert np.packbits(bits).tobytes() == encoded.stream_bytes("caption")
    rs = [p for p in packets if p.stream == "rsrt"]
    assert [p.tokens for p in rs] == [(0, 1), (2, 3), (4, 5), (6, 7), (8,)]
    assert max_payload_bits(awgn_link, 3, budget) < encoded.stream_bits("caption")


def test_budget_too_small_is_a_clear_error(awgn_link):
    with pytest.raises(ValueError, match=r"budget = 10 resource elements .* too small"):
        Packetizer(awgn_link, make_policy("eep"), 10)


def test_receiver_rebuilds_what_arrived(awgn_link, encoded):
    pk = Packetizer(awgn_link, make_policy("eep"), awgn_link.num_data_re,
                    rsrt_tokens_per_packet=3)
    packets = pk.packetize(encoded, 0, 0.0, 4.0)
    img = ImageInFlight(0, encoded, 0.0, 4.0, packets=packets)
    rx = Receiver()
    rx.expect(img)
    lost_group = next(p for p in packets if p.stream == "rsrt" and p.seq == 1)
    for p in packets:
        if p.stream == "hci" or p is lost_group:
            continue
        p.delivered_at = 2.0
        rx.put(p, 2.0)
    late = next(p for p in packets if p.stream == "hci")
    late.delivered_at = 5.0
    rx.put(late, 5.0)                                # after the deadline: not used
    rx.finalize(img, 4.5)
    got = img.received
    assert got.caption == encoded.caption and got.hci is None
    assert got.lost_tokens() == list(lost_group.tokens)
    assert [t for i, t in enumerate(got.rsrt_tokens) if i not in lost_group.tokens] == \
        [t for i, t in enumerate(encoded.rsrt_tokens) if i not in lost_group.tokens]
    assert rx.late == [late] and img.corrupted == []


def test_token_bits_round_trip_through_the_container_packing():
    from codec.container import pack_tokens
    from sim.packetizer import token_bits
    from sim.receiver import tokens_of

    rng = np.random.default_rng(0)
    for b in (1, 3, 9, 10, 17):
        tokens = [int(t) for t in rng.integers(0, 2 ** b, size=int(rng.integers(1, 12)))]
        bits = token_bits(tokens, b)
        assert len(bits) == len(tokens) * b
        assert np.packbits(bits).tobytes() == pack_tokens(tokens, b)[1]   # as the container
        assert tokens_of(bits, len(tokens), b) == tokens


def test_default_puts_all_tokens_in_one_packet(awgn_link, encoded):
    packets = Packetizer(awgn_link, make_policy("uep"), awgn_link.num_data_re).packetize(
        encoded, 0, 0.0, 4.0)
    rs = [p for p in packets if p.stream == "rsrt"]
    assert [p.tokens for p in rs] == [tuple(range(len(encoded.rsrt_tokens)))]
