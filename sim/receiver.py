"""Receiver: reassembles each image's streams and, at its deadline, rebuilds what arrived.

Packets arrive through :meth:`Receiver.put` (wired as the channel process's ``out``). At an
image's deadline ``D`` (the process :meth:`Receiver.run` wakes at ``D + 1/2``, after every
delivery at time ``D``) the receiver builds an :class:`~codec.container.EncodedImage` from the
packets delivered by ``D``:

* caption / HCI: present only if every packet of the stream arrived (an entropy-coded stream
  is unusable in part); its bytes are the received bits (bit level: the bits the LDPC decoder
  output; abstraction: the sent bits). A sliced HCI is rebuilt slice by slice: a slice is
  present when all of its packets arrived, the others are marked lost;
* RSRT: the tokens of the packets that arrived; the others are marked lost; no token at all
  means no RSRT stream.

Decoding and metrics run after the event loop (:func:`sim.simulation.simulate`): the simulated clock
does not depend on decoding time, and batching the decoder is much faster.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .packets import STREAMS, Packet

__all__ = ["ImageInFlight", "Receiver"]


@dataclass
class ImageInFlight:
    """Everything the simulator knows about one image.

    ``encoded`` is what was sent, ``received`` what the receiver rebuilt at the deadline
    (set by :meth:`Receiver.finalize`), ``decoded`` what the decoder used: ``received``
    without the streams it rejected (set when decoding, see
    :func:`sim.simulation.usable_streams`).
    """

    image_id: int
    encoded: Any
    arrival: float
    deadline: float
    meta: dict = field(default_factory=dict)
    packets: list = field(default_factory=list)
    delivered: list = field(default_factory=list)
    dropped: list = field(default_factory=list)     # (packet, reason)
    received: Any = None
    corrupted: list = field(default_factory=list)   # streams whose bits differ (undetected errors)
    finalized_at: Optional[float] = None
    decoded: Any = None


def _bytes_of(bits: np.ndarray) -> bytes:
    return np.packbits(bits.astype(np.uint8)).tobytes()


class Receiver:
    """Per-image reassembly (see the module docstring)."""

    def __init__(self):
        self.images: dict[int, ImageInFlight] = {}
        self.late: list = []      # packets that arrived after their image was finalized

    def expect(self, image: ImageInFlight) -> None:
        self.images[image.image_id] = image

    def put(self, packet: Packet, time: float) -> None:
        img = self.images[packet.image_id]
        if img.finalized_at is not None or time > img.deadline:
            self.late.append(packet)
            return
        img.delivered.append(packet)

    def drop(self, packet: Packet, reason: str, time: float) -> None:
        self.images[packet.image_id].dropped.append((packet, reason))

    def run(self, env, image_id: int):
        """SimPy process: finalize ``image_id`` just after its deadline."""
        img = self.images[image_id]
        yield env.timeout(max(0.0, img.deadline + 0.5 - env.now))
        self.finalize(img, env.now)

    def finalize(self, img: ImageInFlight, now: float) -> None:
        enc = img.encoded
        got = {s: {} for s in STREAMS}
        for p in img.delivered:
            if p.delivered_at is not None and p.delivered_at <= img.deadline:
                got[p.stream][p.seq] = p
        changes: dict = {}
        if enc.hci_slices is not None:
            changes["hci_slices"] = _slice_bytes(img, enc, got["hci"])
        for s in ("caption", "hci"):
            if s == "hci" and enc.hci_slices is not None:
                continue
            n = next((p.num_packets for p in img.packets if p.stream == s), 0)
            if n == 0:                   # empty, or not sent (the semantic policy's choice)
                if enc.has(s):
                    changes[s] = None
                continue
            if len(got[s]) < n:
                changes[s] = None
                continue
            bits = np.concatenate([_rx_bits(got[s][i]) for i in range(n)])
            data = _bytes_of(bits)
            if data != enc.stream_bytes(s):
                img.corrupted.append(s)
            changes[s] = data
        if enc.rsrt_tokens is not None:
            b = enc.rsrt_bits
            tokens: list = [None] * len(enc.rsrt_tokens)
            for p in got["rsrt"].values():
                for t, v in zip(p.tokens, tokens_of(_rx_bits(p), len(p.tokens), b)):
                    tokens[t] = v
            if any(t != enc.rsrt_tokens[i] for i, t in enumerate(tokens) if t is not None):
                img.corrupted.append("rsrt")
            changes["rsrt_tokens"] = None if all(t is None for t in tokens) else tuple(tokens)
        img.received = dataclasses.replace(enc, **changes)
        img.finalized_at = now


def _slice_bytes(img, enc, got: dict) -> tuple:
    """The HCI slices rebuilt from the delivered packets ``got`` (seq -> packet): a slice
    is present when every packet of it arrived, else ``None``."""
    out = []
    for i, sent in enumerate(enc.hci_slices):
        packets = sorted((p for p in img.packets if p.stream == "hci" and p.slice == i),
                         key=lambda p: p.seq)
        if sent is None or not packets or any(p.seq not in got for p in packets):
            out.append(None)
            continue
        data = _bytes_of(np.concatenate([_rx_bits(got[p.seq]) for p in packets]))
        if data != sent and "hci" not in img.corrupted:
            img.corrupted.append("hci")
        out.append(data)
    return tuple(out)


def tokens_of(bits: np.ndarray, k: int, b: int) -> list[int]:
    """The ``k`` tokens of ``b`` bits each in a packet's payload bits (inverse of
    :func:`sim.packetizer.token_bits`; :func:`codec.container.unpack_tokens`)."""
    from codec.container import unpack_tokens

    fields = _bytes_of(np.asarray(bits[:k * b]))
    return unpack_tokens(b"\xff" * ((k + 7) // 8), fields, k, b)


def _rx_bits(p: Packet) -> np.ndarray:
    return p.received_bits if p.received_bits is not None else p.payload
