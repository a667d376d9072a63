"""The semantic policy: per image, the protection that maximises the expected metric.

For each image the transmitter knows its streams' sizes, the SNR report (the point's nominal
SNR), the link's BLER model (the abstraction's tables, corrected by the scenario's calibration
when it has one), the slot budget, the deadline and what each subset of streams is worth (the
codec's subset table, :mod:`benchmark.subset_table`). It chooses per stream whether to send it,
its MCS, its retransmission limit and the order of the streams, to maximise

    E[metric] = Σ_A P(A arrives by the deadline) · metric(A),

with P(A) = Π_{s∈A} p_s · Π_{s∉A} (1 - p_s). Streams are taken as independent (exact where
slots fail independently, as on AWGN; an approximation under slow fading). ``p_s`` is the
product over the stream's packets of ``1 - E_h[Π_{k=1..T} BLER_k(h)]``: ``BLER_k(h)`` at the
effective SINR of k Chase-combined copies (+10·log10 k dB) in the fade ``h``, ``T`` the
transmissions the packet can get before the deadline (its retransmission limit + 1, fewer when
its first transmission is late: one HARQ round trip, ``harq_rtt_slots``, per retransmission).
The fades are ``fading_draws`` channel realizations of the scenario at the reported SNR
(:meth:`channels.Link.effective_sinr_db`: fading, channel-estimation loss and EESM, as the
abstraction has them), each followed over the HARQ round trips so that a packet's copies
fade together as the scenario's Doppler has them. With ``fading_draws = 0`` the report is every
packet's effective SINR, which on fading links predicts near-certain delivery at high SNR and
sends the highest MCS without retransmissions.

Schedule model (slots counted from the image's first slot, as :mod:`sim.scheduler` serves
them): streams in priority order, consecutive streams at one MCS share slots, packets placed
first fit within the resource-element budget, around what other images' queued packets take
ahead of each stream (:meth:`~sim.scheduler.SlotScheduler.occupancy` per priority: NACKed
packets in the slot their retransmission is ready, packets not yet sent from the front; a slot
another MCS holds is closed). Images that arrive later are not foreseen: their more important
packets go first, so on a link that is busy past the next arrival the last-ranked stream
arrives less often than predicted. This image's retransmissions are taken not to delay its
later streams (rare at the chosen MCS). A stream whose first transmissions cannot be received
by the deadline is not sent.

Outer loop: the model's SNR is the report minus an offset learned from HARQ feedback; after
each transmission ``offset += step · (error - predicted error probability)`` [dB], which drifts
only while predictions are off (it absorbs fading, channel estimation and model error).

Search: for each priority order, coordinate ascent over the streams (each: not sent, or any
MCS × retransmission limit) from every stream off; the best over orders wins. Ties go to the
decision with fewer slots, then fewer resource elements, so a stream worth nothing is never
sent. Decisions are
cached by the packet sizes, the model SNR (0.1 dB) and the slots left; BLERs by packet size,
MCS and SNR (0.1 dB), each new batch in one call of the link's model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .packets import STREAMS
from .policy import ProtectionPolicy, StreamProtection

__all__ = ["StreamChoice", "Decision", "SemanticPlanner"]

# Ties go to the decision with fewer slots (so fewer MCS changes, which other images' traffic
# would otherwise starve: a slot carries one MCS), then fewer resource elements.
_TIE_SLOT = 1e-6   # metric units per slot
_TIE_RE = 1e-9     # metric units per resource element
_SAFE = 1e-4       # a packet error probability below this counts as safe


@dataclass(frozen=True)
class StreamChoice:
    """One stream's protection in a decision (``sent=False``: the stream stays home)."""

    sent: bool
    mcs: int | None = None
    max_retx: int = 0
    priority: int = 0


@dataclass(frozen=True)
class Decision:
    """The planner's choice for one image.

    ``choices``: per stream; ``expected``: E[metric] the model predicts; ``arrival``: each
    stream's predicted probability of arriving by the deadline (0 when not sent); ``num_re``:
    resource elements of the first transmissions; ``snr_db``: the model SNR used.
    """

    choices: dict
    expected: float
    arrival: dict
    num_re: int
    snr_db: float

    def policy(self, name: str = "semantic") -> ProtectionPolicy:
        """A :class:`ProtectionPolicy` carrying the choices (unsent streams get placeholder
        protection; :meth:`SemanticPlanner.packets` leaves them out)."""
        sent = [c for c in self.choices.values() if c.sent]
        fallback = sent[0] if sent else StreamChoice(True, 5, 0, 0)
        return ProtectionPolicy(name, **{
            s: StreamProtection(priority=c.priority, mcs=c.mcs, max_retx=c.max_retx)
            if c.sent else StreamProtection(priority=99, mcs=fallback.mcs, max_retx=0)
            for s, c in self.choices.items()})

    def record(self) -> dict:
        """Columns for the image's record."""
        out = {"semantic_expected": self.expected, "semantic_snr_db": self.snr_db,
               "semantic_re": self.num_re}
        for s, c in self.choices.items():
            out[f"semantic_{s}_mcs"] = c.mcs if c.sent else None
            out[f"semantic_{s}_retx"] = c.max_retx if c.sent else None
            out[f"semantic_{s}_p"] = self.arrival[s]
        return out


class SemanticPlanner:
    """Per-image protection decisions (see the module docstring).

    Parameters
    ----------
    link : channels.Link
        Transport formats and the BLER tables.
    values : float (8,)
        The metric of each arriving subset, indexed by ``caption·1 + hci·2 + rsrt·4``
        (:meth:`benchmark.subset_table.SubsetTable.values`).
    budget_re : int
        Resource elements per slot.
    snr_db : float
        The SNR report [dB].
    harq_rtt_slots : int
    calibration : channels.calibration.Calibration or None
        Correction of the BLER tables (the transmitter's model of the link).
    mcs : sequence of int
        MCS indices the search may use.
    max_retx : int
        Largest retransmission limit the search may choose.
    step_db : float
        Outer-loop step [dB] per unit of prediction error.
    rsrt_tokens_per_packet : int
        As :class:`~sim.packetizer.Packetizer`.
    fading_draws : int
        Channel realizations the link model averages over (0: none, the report is the
        effective SINR).
    """

    def __init__(self, link, values, budget_re: int, snr_db: float, harq_rtt_slots: int = 1,
                 calibration=None, mcs=None, max_retx: int = 3, step_db: float = 0.5,
                 rsrt_tokens_per_packet: int = 0, fading_draws: int = 128):
        from channels.link_adaptation import abstraction_mcs_range

        self.link, self.budget_re = link, int(budget_re)
        self.values = np.asarray(values, float).reshape(1 << len(STREAMS))
        self._values = [float(v) for v in self.values]   # (plain floats: faster to combine)
        self.snr_db, self.rtt = float(snr_db), int(harq_rtt_slots)
        self.calibration = calibration
        lo, hi = abstraction_mcs_range(link.scenario.mcs_table)
        self.mcs = [int(m) for m in (mcs if mcs is not None else range(lo, hi + 1))]
        bad = [m for m in self.mcs if not lo <= m <= hi]
        if bad:
            raise ValueError(f"semantic policy: MCS {bad} have no BLER data (table "
                             f"{link.scenario.mcs_table}: {lo}..{hi})")
        self.max_retx, self.step_db = int(max_retx), float(step_db)
        self.offset_db = 0.0
        self.rsrt_tokens_per_packet = rsrt_tokens_per_packet
        self._packetizers: dict = {}
        self.fading_draws = int(fading_draws)
        if self.fading_draws > 0:   # the link's fading and estimation loss at the report
            eff = link.effective_sinr_db(
                self.snr_db, self.mcs, num_re=min(self.budget_re, link.num_data_re),
                num_draws=self.fading_draws,
                slots=[k * self.rtt for k in range(self.max_retx + 1)])   # [D, K, M]
            # effective SINR of k Chase-combined copies (linear sum), relative to the report
            comb = 10 * np.log10(np.cumsum(10 ** (eff / 10), axis=1)) - self.snr_db
            self._fade = {m: comb[:, :, i] for i, m in enumerate(self.mcs)}
        else:                       # the report taken as every packet's effective SINR
            copies = 10 * np.log10(np.arange(1, self.max_retx + 2))
            self._fade = {m: copies[None, :] for m in self.mcs}
        self._fail: dict = {}
        self._re: dict = {}
        self._decisions: dict = {}
        self._layouts: dict = {}
        self._packet_makers: dict = {}
        self.decisions = 0

    # -- the link model ----------------------------------------------------------------------

    @property
    def searches(self) -> int:
        """Decisions searched so far (the rest came from the cache)."""
        return len(self._decisions)

    def model_snr_db(self) -> float:
        return self.snr_db - self.offset_db

    def fail(self, bits: int, mcs: int, snr_db: float) -> np.ndarray:
        """Predicted probability that a ``bits`` packet at ``mcs`` is still lost after
        T = 1..max_retx+1 Chase-combined copies, at model SNR ``snr_db`` (dB, rounded to
        0.1 dB): float [max_retx+1], averaged over the fading draws."""
        key = (int(bits), int(mcs), round(float(snr_db), 1))
        if key not in self._fail:
            self._fill([key])
        return self._fail[key]

    def error_probability(self, bits: int, mcs: int, attempt: int) -> float:
        """Predicted error probability of the ``attempt``-th copy of a packet (1: the first),
        given that the earlier copies failed, at the current model SNR."""
        f = self.fail(bits, mcs, self.model_snr_db())
        k = min(max(1, int(attempt)), len(f))
        if k == 1:
            return float(f[0])
        return float(f[k - 1] / f[k - 2]) if f[k - 2] > 0 else 0.0

    def _fill(self, keys) -> None:
        """Compute the missing (bits, mcs, snr) entries of ``keys`` in one call of the link's
        model: every fading draw and number of copies of each."""
        new = sorted({k for k in keys if k not in self._fail})
        if not new:
            return
        b, m, x = [], [], []
        for bits, mcs, snr in new:
            sinr = snr + self._fade[mcs]                                  # [D, K] dB
            b.append(np.full(sinr.size, bits))
            m.append(np.full(sinr.size, mcs))
            x.append(sinr.ravel())
        bler = self.link.packet_error_rate(np.concatenate(b), np.concatenate(m),
                                           np.concatenate(x), self.calibration)
        at = 0
        for key in new:
            per = bler[at:at + self._fade[key[1]].size].reshape(self._fade[key[1]].shape)
            at += per.size
            self._fail[key] = np.cumprod(per, axis=1).mean(axis=0)

    def num_re(self, bits: int, mcs: int) -> int:
        key = (int(bits), int(mcs))
        if key not in self._re:
            self._re[key] = int(self.link.transport_format(int(bits), int(mcs)).num_re)
        return self._re[key]

    def feedback(self, bits: int, mcs: int, attempt: int, ok: bool) -> None:
        """HARQ feedback of one transmission (``attempt``: 1 for the first, k for the k-th
        Chase-combined copy): moves the outer-loop offset."""
        if self.step_db == 0:
            return
        p = self.error_probability(bits, mcs, attempt)
        self.offset_db += self.step_db * ((0.0 if ok else 1.0) - p)

    # -- packets -----------------------------------------------------------------------------

    def _packetizer(self, mcs: int):
        from .packetizer import Packetizer
        from .policy import make_policy

        if mcs not in self._packetizers:
            try:
                self._packetizers[mcs] = Packetizer(self.link, make_policy("eep", mcs=mcs),
                                                    self.budget_re, self.rsrt_tokens_per_packet)
            except ValueError:        # not even one packet fits the budget at this MCS
                self._packetizers[mcs] = None
        return self._packetizers[mcs]

    def _sizes(self, encoded) -> dict:
        """{mcs: {stream: [packet bits]}} of ``encoded`` at every usable MCS (cached by the
        streams' bit counts, which fix the packets)."""
        key = (encoded.stream_bits("caption"), encoded.stream_bits("hci"),
               tuple(len(v) if v else 0 for v in (encoded.hci_slices or ())),
               len(encoded.rsrt_tokens or ()), encoded.rsrt_bits)
        if key not in self._layouts:
            self._layouts[key] = {m: pz.packet_sizes(encoded) for m in self.mcs
                                  if (pz := self._packetizer(m)) is not None}
        return self._layouts[key]

    def packets(self, encoded, decision: Decision, image_id: int, created: float,
                deadline: float) -> list:
        """The packets of ``encoded`` under ``decision`` (unsent streams left out)."""
        from .packetizer import Packetizer

        key = tuple(decision.choices.items())    # one packetizer per distinct choice
        if key not in self._packet_makers:
            self._packet_makers[key] = Packetizer(self.link, decision.policy(), self.budget_re,
                                                  self.rsrt_tokens_per_packet)
        pz = self._packet_makers[key]
        return [p for p in pz.packetize(encoded, image_id, created, deadline)
                if decision.choices[p.stream].sent]

    # -- deciding ----------------------------------------------------------------------------

    def decide(self, encoded, slots: int, busy: tuple = ()) -> Decision:
        """The decision for ``encoded`` with ``slots`` slots left before its deadline (the
        last one must still be received in time). ``busy[k]``: the slots other images' queued
        packets take ahead of a packet of priority ``k`` (one per stream rank, as
        :meth:`~sim.scheduler.SlotScheduler.occupancy` gives them: per slot from the first,
        ``(mcs, resource elements)``); ``()``: an empty link."""
        self.decisions += 1
        sizes = self._sizes(encoded)
        snr = round(self.model_snr_db(), 1)
        busy = tuple(tuple(b[:int(slots)]) for b in busy)
        key = (tuple((m, tuple(tuple(v) for v in per.values())) for m, per in sizes.items()),
               snr, int(slots), busy)
        if key not in self._decisions:
            self._decisions[key] = self._search(sizes, snr, int(slots), busy)
        return self._decisions[key]

    def _room(self, busy: tuple, slot: int, mcs: int) -> int:
        """Resource elements free for ``mcs`` in ``slot`` (a slot carries one MCS)."""
        if slot >= len(busy):
            return self.budget_re
        m, used = busy[slot]
        return self.budget_re - used if m is None or m == mcs else 0

    def _options(self, sizes: dict, stream: str, snr: float) -> list:
        """(mcs, retx, packet REs, fail[j][T-1]) options of one stream; [] when the stream is
        empty. MCS where the stream's worst packet fails once with probability in [SAFE, 0.9]
        are options with every retransmission limit, MCS below SAFE without retransmissions
        (they would not change the outcome); at an SNR where every MCS fails more often, the
        lowest MCS."""
        out = []
        self._fill([(b, m, snr) for m, per in sizes.items() for b in per[stream]])
        if not sizes or not sizes[next(iter(sizes))][stream]:
            return []
        first = {m: max(self._fail[(b, m, snr)][0] for b in per[stream])
                 for m, per in sizes.items()}
        safe = [m for m in sizes if first[m] < _SAFE]
        keep = [m for m in sizes if _SAFE <= first[m] <= 0.9]
        if not keep and not safe:
            keep = [min(sizes)]
        for m in keep + safe:
            bits = sizes[m][stream]
            res = [self.num_re(b, m) for b in bits]
            fail = [self._fail[(b, m, snr)] for b in bits]     # fail[j][T-1]
            for r in range(self.max_retx + 1 if first[m] >= _SAFE else 1):
                out.append((m, r, res, fail))
        return out

    def _evaluate(self, order, picks, slots: int, busy: tuple = ()):
        """E[metric], arrival probabilities and REs of one decision: ``order`` the streams by
        priority, ``picks[s]`` an option of ``_options`` or None (not sent); ``busy`` as in
        :meth:`decide`."""
        slot, own, cur_mcs = -1, 0, None      # own: this image's REs in the current slot
        p = dict.fromkeys(STREAMS, 0.0)
        total_re = 0
        for rank, s in enumerate(order):
            opt = picks[s]
            if opt is None:
                continue
            m, r, res, fail = opt
            ahead = busy[rank] if busy else ()
            if m != cur_mcs:                  # a new MCS starts a new slot
                slot, own, cur_mcs = slot + 1, 0, m
            ok = 1.0
            for j, re in enumerate(res):
                while re > self._room(ahead, slot, m) - own and slot < slots:
                    slot, own = slot + 1, 0
                own += re
                total_re += re
                if slot > slots - 1:          # cannot be received by the deadline
                    ok = 0.0
                    break
                tries = 1 + min(r, (slots - 1 - slot) // self.rtt)
                ok *= 1.0 - fail[j][tries - 1]
            p[s] = ok
        pc, ph, pr = p["caption"], p["hci"], p["rsrt"]
        v = self._values
        e = ((1 - pc) * (1 - ph) * ((1 - pr) * v[0] + pr * v[4])
             + pc * (1 - ph) * ((1 - pr) * v[1] + pr * v[5])
             + (1 - pc) * ph * ((1 - pr) * v[2] + pr * v[6])
             + pc * ph * ((1 - pr) * v[3] + pr * v[7]))
        return e, p, total_re, slot + 1

    def _search(self, sizes: dict, snr: float, slots: int, busy: tuple = ()) -> Decision:
        options = {s: self._options(sizes, s, snr) for s in STREAMS}
        best = None
        for order in itertools.permutations(STREAMS):
            picks = dict.fromkeys(STREAMS)
            score = self._score(order, picks, slots, busy)
            improved = True
            while improved:
                improved = False
                for s in order:
                    for opt in [None] + options[s]:
                        trial = {**picks, s: opt}
                        sc = self._score(order, trial, slots, busy)
                        if sc[0] > score[0] + 1e-12:
                            picks, score, improved = trial, sc, True
            if best is None or score[0] > best[0][0] + 1e-12:
                best = (score, order, picks)
        (objective, expected, p, re), order, picks = best
        rank = {s: i for i, s in enumerate(order)}
        choices = {s: (StreamChoice(True, picks[s][0], picks[s][1], rank[s])
                       if picks[s] is not None else StreamChoice(False))
                   for s in STREAMS}
        return Decision(choices, expected, p, re, snr)

    def _score(self, order, picks, slots, busy=()):
        e, p, re, used = self._evaluate(order, picks, slots, busy)
        return e - _TIE_SLOT * used - _TIE_RE * re, e, p, re
