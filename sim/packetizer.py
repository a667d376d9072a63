"""Packetizer: splits an encoded image's streams into packets that fit a slot's budget.

* caption and HCI: the stream's bits (``EncodedImage.stream_bytes``) are cut into the fewest
  packets no larger than the largest payload that fits the per-slot budget at the stream's
  MCS, with sizes as equal as possible. An entropy-coded stream is usable only whole, so the
  receiver needs every packet of it. A sliced HCI (``EncodedImage.hci_slices``) is cut slice
  by slice (no packet holds two slices), so a lost packet loses only its slice.
* RSRT: tokens are sent in groups of ``rsrt_tokens_per_packet`` (0: as many as fit), each
  token as its ``rsrt_bits``-bit field; a lost packet loses only its tokens.

For a link-adapted stream (MCS ``None``) the size limit is the one of MCS 0, so the packet
fits at whatever MCS link adaptation picks later.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .packets import STREAMS, Packet

__all__ = ["Packetizer", "max_payload_bits", "token_bits"]


def max_payload_bits(link, mcs: int, budget_re: int) -> int:
    """Largest packet [bits] whose transport format needs at most ``budget_re`` REs at ``mcs``
    (0 if not even one bit fits)."""
    return _max_payload(link, int(mcs), int(min(budget_re, link.num_data_re)))


@lru_cache(maxsize=4096)
def _max_payload(link, mcs, limit):
    if link.transport_format(1, mcs).num_re > limit:
        return 0
    lo, hi = 1, 200_000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if link.transport_format(mid, mcs).num_re <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _bits_of(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))


def token_bits(tokens, bits: int) -> np.ndarray:
    """``len(tokens) * bits`` payload bits (0/1, MSB first) of RSRT tokens, packed as the
    container packs them (:func:`codec.container.pack_tokens`)."""
    from codec.container import pack_tokens

    fields = pack_tokens(tokens, bits)[1]
    return _bits_of(fields)[:len(tokens) * bits]


class Packetizer:
    """Streams of an :class:`~codec.container.EncodedImage` → :class:`~sim.packets.Packet` s.

    Parameters
    ----------
    link : channels.Link
        Gives transport formats (REs per packet).
    policy : ProtectionPolicy
        Priority, MCS and retransmission limit per stream.
    budget_re : int
        Resource elements per slot the scheduler may use.
    rsrt_tokens_per_packet : int
        RSRT tokens per packet; 0 (default): as many as fit one packet.
    """

    def __init__(self, link, policy, budget_re: int, rsrt_tokens_per_packet: int = 0):
        if isinstance(rsrt_tokens_per_packet, bool) or not isinstance(rsrt_tokens_per_packet, int) \
                or rsrt_tokens_per_packet < 0:
            raise ValueError(f"rsrt_tokens_per_packet = {rsrt_tokens_per_packet!r} is not "
                             f"supported; allowed: an integer >= 0 (0: as many as fit)")
        self.link, self.policy, self.budget_re = link, policy, int(budget_re)
        self.rsrt_tokens_per_packet = rsrt_tokens_per_packet
        self.limit = {}
        for s in STREAMS:
            mcs = policy[s].mcs if policy[s].mcs is not None else 0
            lim = max_payload_bits(link, mcs, self.budget_re)
            if lim < 1:
                raise ValueError(
                    f"budget = {self.budget_re} resource elements per slot is too small for "
                    f"one packet of stream {s!r} at MCS {mcs} (needs "
                    f"{link.transport_format(1, mcs).num_re}); raise the budget or the MCS")
            self.limit[s] = lim

    def _edges(self, stream: str, nbits: int) -> np.ndarray:
        """Packet boundaries [bits] of a whole stream of ``nbits`` bits: the fewest packets
        within the stream's size limit, sizes as equal as possible."""
        n = math.ceil(nbits / self.limit[stream])
        return np.linspace(0, nbits, n + 1).round().astype(int)

    def _mcs(self, stream: str) -> int:
        mcs = self.policy[stream].mcs
        if mcs is None:
            raise ValueError(f"stream {stream!r} is link-adapted (mcs = 'auto') under policy "
                             f"{self.policy.name!r}: its resource elements are not known before "
                             f"sending; give it a fixed MCS for a same_re bit budget")
        return int(mcs)

    def stream_re(self, stream: str, nbits: int) -> int:
        """Resource elements the packets of a whole ``nbits``-bit stream take at their first
        transmission (0 for an empty stream)."""
        if nbits <= 0:
            return 0
        mcs, e = self._mcs(stream), self._edges(stream, int(nbits))
        return int(sum(self.link.transport_format(int(b - a), mcs).num_re
                       for a, b in zip(e[:-1], e[1:])))

    def max_stream_bits(self, stream: str, num_re: int) -> int:
        """The most bits (a whole number of bytes) a whole stream may have and still take at
        most ``num_re`` resource elements at its first transmission."""
        lo, hi = 0, max(1, int(num_re))          # [bytes]: no MCS carries 8 bits per RE
        while lo < hi:                              # in bytes: files are whole bytes
            mid = (lo + hi + 1) // 2
            if self.stream_re(stream, 8 * mid) <= num_re:
                lo = mid
            else:
                hi = mid - 1
        return 8 * lo

    def image_re(self, encoded) -> int:
        """Resource elements all packets of ``encoded`` take at their first transmission."""
        return int(sum(self.link.transport_format(p.size_bits, self._mcs(p.stream)).num_re
                       for p in self.packetize(encoded, 0, 0.0, 1.0)))

    def _layout(self, encoded) -> list[tuple]:
        """Where each packet of ``encoded`` comes from, in packet order: ``(stream, seq,
        num_packets, slice, bits)`` with ``bits`` the payload bits (uint8 0/1) or, for RSRT,
        ``(tokens, token bits)``."""
        out: list = []
        for s in STREAMS:
            if s == "rsrt":
                tokens = encoded.rsrt_tokens
                if not tokens:
                    continue
                b = encoded.rsrt_bits
                if b > self.limit[s]:
                    raise ValueError(f"an RSRT token of {b} bits does not fit the budget "
                                     f"({self.limit[s]} bits per packet)")
                per = self.limit[s] // b
                if self.rsrt_tokens_per_packet:
                    per = min(per, self.rsrt_tokens_per_packet)
                groups = [tuple(range(i, min(i + per, len(tokens))))
                          for i in range(0, len(tokens), per)]
                out += [(s, seq, len(groups), -1, (g, b)) for seq, g in enumerate(groups)]
                continue
            if s == "hci" and encoded.hci_slices is not None:
                parts = [(i, v) for i, v in enumerate(encoded.hci_slices) if v]
            else:
                data = encoded.stream_bytes(s)
                parts = [(-1, data)] if data else []
            chunks = []
            for index, data in parts:
                bits = _bits_of(data)
                edges = self._edges(s, len(bits))
                chunks += [(index, bits[a:b]) for a, b in zip(edges[:-1], edges[1:])]
            out += [(s, seq, len(chunks), index, chunk) for seq, (index, chunk) in enumerate(chunks)]
        return out

    def packet_sizes(self, encoded) -> dict[str, list[int]]:
        """Payload bits of each packet of ``encoded``, per stream (what :meth:`packetize`
        makes, without building the packets)."""
        out: dict = {s: [] for s in STREAMS}
        for s, _, _, _, bits in self._layout(encoded):
            out[s].append(len(bits[0]) * bits[1] if s == "rsrt" else len(bits))
        return out

    def packetize(self, encoded, image_id: int, created: float, deadline: float) -> list[Packet]:
        """All packets of one image, caption first, then HCI, then RSRT."""
        out: list[Packet] = []
        for s, seq, n, index, bits in self._layout(encoded):
            sp = self.policy[s]
            common = dict(stream=s, image_id=image_id, priority=sp.priority, deadline=deadline,
                          created=created, mcs=sp.mcs, max_retx=sp.max_retx, seq=seq,
                          num_packets=n)
            if s == "rsrt":
                g, b = bits
                bits = token_bits([encoded.rsrt_tokens[i] for i in g], b)
                out.append(Packet(size_bits=len(bits), payload=bits, tokens=g, **common))
            else:
                out.append(Packet(size_bits=len(bits), payload=bits, slice=index, **common))
        return out
