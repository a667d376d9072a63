"""Packets: one piece of one stream of one image, as the scheduler and the link see it.

Times are in **slots** (the SimPy clock ticks once per NR slot; ``scenario.ofdm.slot_duration_s``
converts to seconds). Slot ``t`` occupies ``[t, t + 1)``: a packet sent in slot ``t`` is known
to the receiver at time ``t + 1``. A packet whose deadline is ``D`` may be sent in slot ``t``
only if ``t + 1 <= D``.

Priorities follow SimPy: a **lower number is more important**.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = ["STREAMS", "Packet"]

#: The codec's streams, in the order the packetizer numbers them.
STREAMS = ("caption", "hci", "rsrt")


@dataclass(eq=False)
class Packet:
    """One packet of one stream of one image.

    Parameters
    ----------
    stream : "caption" | "hci" | "rsrt"
        Which stream the payload belongs to.
    image_id : int
        Image number within the run (0, 1, ...).
    seq : int
        Sequence number of the packet within its stream (0, 1, ...).
    size_bits : int
        Payload size [bits] (what ``Link.transmit`` carries).
    priority : int
        Scheduling priority; lower is more important.
    deadline : float
        Time [slots] by which the packet must be received; it is not sent after ``deadline - 1``.
    created : float
        Time [slots] the packet was handed to the scheduler.
    payload : [size_bits] np.ndarray of uint8 (0/1)
        The stream's real bits carried by this packet.
    mcs : int or None
        NR MCS index; fixed by the protection policy (or by link adaptation at the first
        transmission; retransmissions keep it for Chase combining).
    max_retx : int
        Retransmissions allowed after the first transmission.
    tokens : tuple of int
        RSRT token indices the payload holds (empty for caption and HCI).
    num_packets : int
        Packets the stream was split into (to know when it is complete).
    slice : int
        HCI slice the payload belongs to (a sliced HCI, ``EncodedImage.hci_slices``: each
        slice in its own packets); -1 otherwise.
    ready_at : float or None
        Earliest slot the packet may be (re)sent: ``created`` at first, then the slot of its
        last NACKed transmission plus the HARQ round-trip time (``None``: ``created``).
    """

    stream: str
    image_id: int
    seq: int
    size_bits: int
    priority: int
    deadline: float
    created: float
    payload: np.ndarray = field(repr=False)
    mcs: Optional[int] = None
    max_retx: int = 0
    tokens: tuple = ()
    num_packets: int = 1
    slice: int = -1
    ready_at: Optional[float] = None
    attempts: int = 0                    # transmissions so far
    harq: Any = field(default=None, repr=False)   # LinkResult.harq entry of the last attempt
    delivered_at: Optional[float] = None
    received_bits: Optional[np.ndarray] = field(default=None, repr=False)

    def __post_init__(self):
        if self.stream not in STREAMS:
            raise ValueError(f"stream = {self.stream!r} is not supported; allowed: "
                             f"{', '.join(STREAMS)}")
        if int(self.size_bits) < 1:
            raise ValueError(f"size_bits = {self.size_bits!r} is not supported; allowed: >= 1")
        if len(self.payload) != self.size_bits:
            raise ValueError(f"payload has {len(self.payload)} bits, size_bits = {self.size_bits}")
        if self.ready_at is None:
            self.ready_at = self.created

    @property
    def key(self) -> tuple:
        """``(image_id, stream, seq)``: unique within a run."""
        return (self.image_id, self.stream, self.seq)

    @property
    def is_retransmission(self) -> bool:
        return self.attempts > 0

    def service_key(self) -> tuple:
        """Order of service: priority, then retransmissions before new packets, then
        earliest deadline, then image, stream and sequence (a total, deterministic order)."""
        return (self.priority, 0 if self.attempts else 1, self.deadline, self.image_id,
                STREAMS.index(self.stream), self.seq)
