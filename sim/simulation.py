"""One simulation run: SimPy wiring of source, scheduler, link and receiver.

::

    from sim import SimConfig, run_simulation
    cfg = SimConfig("experiments/scenarios/tdl_a_30khz.toml", snr_db=4.0, policy="uep",
                    budget_prbs=4, num_images=16, seed=0)
    df = run_simulation(cfg)          # one row per image (see sim.records)

Processes (each takes ``env`` first): the source puts each image's packets into the
scheduler at its arrival and starts the receiver's deadline process for it; the channel
process serves one slot per time unit; the receiver rebuilds each image at its deadline.
After the event loop, the rebuilt images are decoded in batches and scored; a stream that
arrived with an undetected error and that the decoder rejects is dropped from that image only
(:func:`usable_streams`), and the record's ``decoded_streams`` says what was used.

Randomness: every draw derives from ``config.seed`` through
:func:`channels.fading.derive_seed` with a purpose label -- arrivals, the channel state
(fading, noise, Bernoulli draws), the decoder noise of each image -- and from nothing else,
so a run gives the same records alone, in any order in a sweep, on any worker. The fading
process depends on the seed only (not on SNR, budget or policy): policies compared at the
same seed see the same channel.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd
import simpy

from codec.errors import StreamError

from .channel_process import ChannelProcess
from .codec_api import codec_fingerprint, decode_images, load_codec
from .config import SimConfig
from .decode_cache import DecodeCache
from .link_calibration import calibration_label
from .packetizer import Packetizer
from .packets import STREAMS
from .receiver import ImageInFlight, Receiver
from .records import image_rows
from .scheduler import SlotScheduler
from .source import EncodeCache, arrival_times, make_source

__all__ = ["SimOutput", "simulate", "run_simulation", "get_link"]

_LINKS: dict = {}


def get_link(scenario, mode: str, calibration=None):
    """A :class:`channels.Link` per (scenario, mode, calibration), built once per process."""
    import json

    from channels import Link

    key = (json.dumps(scenario.to_dict(), sort_keys=True), mode,
           None if calibration is None else json.dumps(calibration.offset_db))
    if key not in _LINKS:
        _LINKS[key] = Link(scenario, mode=mode, calibration=calibration)
    return _LINKS[key]


def _derive(*parts) -> int:
    from channels.fading import derive_seed

    return derive_seed(*parts)


@dataclass
class SimOutput:
    """Everything one run produced.

    records : DataFrame, one row per image; trace : DataFrame of packet transmissions
    (empty unless ``config.trace``); images : the :class:`~sim.receiver.ImageInFlight` s;
    reconstructions : decoded images (empty without decoding); stats : timings and counters.
    """

    records: pd.DataFrame
    trace: pd.DataFrame
    images: list
    reconstructions: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def system_label(config: SimConfig, codec) -> str:
    """What a plot legend calls the run's codec, budget and policy: ``"scenes-64 uep"``,
    ``"webp eep, same_re:scenes-64/uep"``."""
    label = f"{config.codec_spec()} {config.policy_obj.name}"
    if takes_bit_budget(codec):
        label += f", {config.bit_budget_obj().describe()}"
    return label


def run_fields(config: SimConfig, codec=None) -> dict:
    """The run's columns of every record (see :mod:`sim.records`)."""
    sc = config.scenario_obj
    return dict(point_id=config.point_id(), scenario=sc.name, channel_model=sc.channel.model,
                ue_speed_kmh=float(sc.channel.ue_speed_kmh), mode=config.mode,
                snr_db=float(config.snr_db),
                budget_prbs=int(config.budget_prbs if config.budget_prbs is not None
                                else sc.ofdm.num_prbs),
                budget_re=int(config.budget_re), policy=config.policy_obj.name,
                seed=int(config.seed), codec=config.codec_spec(),
                codec_fingerprint=config.codec_fingerprint(), mcs_table=int(sc.mcs_table),
                harq_rtt_slots=int(config.harq_rtt_slots),
                rsrt_tokens_per_packet=int(config.rsrt_tokens_per_packet), arrival=config.arrival,
                interval_ms=float(config.interval_ms), deadline_ms=float(config.deadline_ms),
                num_images=int(config.num_images),
                calibration=calibration_label(config.calibration_obj(), config.mode),
                bit_budget=config.bit_budget_obj().describe() if takes_bit_budget(codec) else "",
                system=system_label(config, codec),
                **{f"mcs_{s}": (-1 if config.policy_obj[s].mcs is None
                                else int(config.policy_obj[s].mcs)) for s in STREAMS},
                **{f"max_retx_{s}": int(config.policy_obj[s].max_retx) for s in STREAMS})


def simulate(config: SimConfig, codec: Any = None, metrics: Any = None,
             cache: Optional[EncodeCache] = None) -> SimOutput:
    """Run one simulation.

    Parameters
    ----------
    config : SimConfig
    codec : codec object, optional
        Overrides ``config.codec`` (anything with the :class:`~sim.codec_api.Codec` methods).
    metrics : callable, optional
        ``metrics(references, reconstructions, items) -> list[dict]``; default
        :class:`~sim.metrics.ImageMetrics`. Used only when ``config.decode``.
    cache : EncodeCache, optional
        Encoded images to reuse (default: a per-process in-memory cache).
    """
    if not isinstance(config, SimConfig):
        raise TypeError(f"config must be a SimConfig, got {type(config).__name__}")
    t0 = time.perf_counter()
    codec = load_codec(codec if codec is not None else config.codec)
    cache = cache if cache is not None else _default_cache()
    source = make_source(config.dataset)
    sc = config.scenario_obj
    calibration = config.calibration_obj()
    link = get_link(sc, config.mode, calibration)
    policy = config.policy_obj
    from .link_adaptation import check_policy_mcs

    check_policy_mcs(policy, config.mode, sc.mcs_table)
    slot_ms = config.slot_ms

    packetizer = Packetizer(link, policy, config.budget_re, config.rsrt_tokens_per_packet)

    # Images: data-set items for this seed, encoded once (cached), to a bit budget if the
    # codec codes to one
    n = config.num_images
    items = [source[config.seed * n + i] for i in range(n)]
    budgets = _bit_budgets(config, codec, source, items, cache, link, packetizer)
    encoded = [cache.get(codec, source, it, budget_bits=b) for it, b in zip(items, budgets)]
    info = getattr(codec, "encoding_info", None)
    t_enc = time.perf_counter()

    rng = np.random.default_rng(_derive("arrivals", config.seed))
    arrivals = arrival_times(config.arrival, n, config.interval_ms / slot_ms, rng)
    deadline = config.deadline_ms / slot_ms

    env = simpy.Environment()
    la = None
    if policy.adaptive:
        from .link_adaptation import StreamLinkAdaptation

        la = StreamLinkAdaptation(policy, link, config.snr_db)
    scheduler = SlotScheduler(link, config.budget_re,
                              select_mcs=la.select if la is not None else None,
                              harq_rtt_slots=int(config.harq_rtt_slots))
    planner = semantic_planner(config, codec, link) if policy.semantic is not None else None
    receiver = Receiver()
    trace: Optional[list] = [] if config.trace else None
    state = link.new_state(_derive("channel", config.seed))
    chan = ChannelProcess(env, link, state, config.snr_db, scheduler, out=receiver.put,
                          link_adaptation=la, on_drop=receiver.drop, trace=trace,
                          on_result=None if planner is None else
                          lambda p, ok, mcs: planner.feedback(p.size_bits, mcs, p.attempts, ok))
    images = [ImageInFlight(i, encoded[i], float(arrivals[i]), float(arrivals[i] + deadline),
                            meta={"dataset_index": items[i].index,
                                  "budget_bits": budgets[i],
                                  "encoding": info(encoded[i]) if info is not None else {}})
              for i in range(n)]

    def source_process(env):
        for img in images:
            yield env.timeout(max(0.0, img.arrival - env.now))
            if planner is None:
                img.packets = packetizer.packetize(img.encoded, img.image_id, env.now,
                                                   img.deadline)
            else:   # the semantic policy decides this image's protection now
                first, slots = image_slots(env.now, img.deadline)
                d = planner.decide(img.encoded, slots,
                                   [scheduler.occupancy(first, slots, k)
                                    for k in range(len(STREAMS))])
                img.meta["semantic"] = d.record()
                img.packets = planner.packets(img.encoded, d, img.image_id, env.now,
                                              img.deadline)
            receiver.expect(img)
            env.process(receiver.run(env, img.image_id))
            for p in img.packets:
                scheduler.put(p)

    end = math.floor(max(im.deadline for im in images)) + 1
    env.process(source_process(env))
    env.process(chan.run(env, until=end))
    env.run(until=end + 1)
    t_sim = time.perf_counter()

    recs = []
    dcache = _default_decode_cache()
    misses0 = dcache.misses
    if config.decode:
        recs = _decode_and_score(config, codec, images, items, metrics)
    t_dec = time.perf_counter()
    rows = image_rows(images, run_fields(config, codec), slot_ms, link)
    df = pd.DataFrame(rows)
    tr = pd.DataFrame(trace) if trace else pd.DataFrame()
    if len(tr):
        tr.insert(0, "point_id", config.point_id())
    stats = dict(encode_s=t_enc - t0, event_s=t_sim - t_enc, decode_s=t_dec - t_sim,
                 slots=end, slots_used=chan.slots_used, re_used=chan.re_used,
                 max_re_in_slot=chan.max_re_in_slot, budget_re=config.budget_re,
                 late_packets=len(receiver.late), encoded_now=cache.encoded,
                 planner_decisions=None if planner is None else planner.decisions,
                 planner_searches=None if planner is None else planner.searches,
                 decoded_now=dcache.misses - misses0 if config.decode_cache else None)
    return SimOutput(df, tr, images, recs, stats)


def semantic_planner(config: SimConfig, codec, link):
    """The :class:`~sim.semantic_policy.SemanticPlanner` of a run under the semantic policy:
    the codec's subset table at its rate point and token count, the scenario's calibration
    as the transmitter's link model (in bit-level runs too)."""
    from benchmark.subset_table import table_for_codec
    from channels.calibration import find_calibration

    from .link_adaptation import abstraction_mcs_range
    from .semantic_policy import SemanticPlanner

    table = table_for_codec(codec)
    try:
        values = table.values(getattr(codec, "rate", None), getattr(codec, "tokens_sent", None))
    except KeyError as e:
        raise ValueError(f"semantic policy: {e.args[0]}") from None
    s = config.policy_obj.semantic
    lo, hi = abstraction_mcs_range(config.scenario_obj.mcs_table)
    mcs = range(max(lo, s["mcs_min"] if s["mcs_min"] is not None else lo),
                min(hi, s["mcs_max"] if s["mcs_max"] is not None else hi) + 1)
    # the transmitter models the link it runs on: in abstraction mode the abstraction as the
    # run has it, at bit level the calibrated abstraction (the best model of that chain)
    cal = link.calibration if config.mode == "abstraction" else \
        find_calibration(config.scenario_obj)
    return SemanticPlanner(link, values, config.budget_re, config.snr_db,
                           harq_rtt_slots=int(config.harq_rtt_slots), calibration=cal,
                           mcs=mcs, max_retx=s["max_retx"], step_db=s["step_db"],
                           rsrt_tokens_per_packet=config.rsrt_tokens_per_packet,
                           fading_draws=s.get("fading_draws", 0))


def image_slots(now: float, deadline: float) -> tuple[int, int]:
    """``(first slot, slots)`` an image arriving at ``now`` can use: from its first slot to the
    last whose packets are received by ``deadline``."""
    first, last = math.ceil(now), math.floor(deadline - 1)
    return first, max(0, last - first + 1)


def takes_bit_budget(codec) -> bool:
    """Whether ``codec`` codes each image to a bit budget (the baselines, see
    :mod:`sim.bit_budget`)."""
    return bool(getattr(codec, "takes_bit_budget", False))


def _bit_budgets(config, codec, source, items, cache, link, packetizer) -> list:
    """Each item's bit budget (``None`` for a codec that does not code to one)."""
    if not takes_bit_budget(codec):
        if config.bit_budget is not None:
            raise ValueError(f"bit_budget = {config.bit_budget!r} applies to the baseline codecs "
                             f"(jpeg, webp, avif, hci), not to codec {config.codec_spec()!r}")
        return [None] * len(items)
    bb = config.bit_budget_obj()
    if bb.kind == "fill":        # the same share for every image: one search
        share = bb.bits(items[0], None, link, packetizer,
                        slots_per_image=config.interval_ms / config.slot_ms)
        return [share] * len(items)
    if bb.kind == "bpp":
        return [bb.bits(it, None) for it in items]
    ref = load_codec(bb.reference)
    if takes_bit_budget(ref):
        raise ValueError(f"bit_budget.reference = {bb.reference!r} codes to a budget itself; "
                         f"name a codec with its own rate (an SDGIC preset)")
    ref_pk = None
    if bb.kind == "same_re":
        from .policy import make_policy

        ref_pk = Packetizer(link, make_policy(bb.reference_policy), config.budget_re,
                            config.rsrt_tokens_per_packet)
    return [bb.bits(it, cache.get(ref, source, it), link, packetizer, ref_pk) for it in items]


def usable_streams(codec, encoded):
    """``encoded`` without the streams the decoder would reject, for one image.

    A stream whose bits passed the CRC but differ from what was sent (bit level, undetected
    error) can be undecodable (bytes the entropy decoder rejects, an RSRT token outside the
    codebook). Such a stream is dropped from *this* image only, as a decoder that detects the
    error would. With the codec's ``streams_of`` (SDGIC: validates and raises ``ValueError`` /
    ``ContainerError``) each present stream is checked alone; a codec without it is handled
    in :func:`_decode_and_score` (an image whose decoding fails loses its corrupted streams).
    An error that no stream causes (an image of another preset) is raised, not hidden.
    """
    check = getattr(codec, "streams_of", None)
    if check is None:
        return encoded
    try:
        check(encoded)
        return encoded
    except StreamError:
        check(encoded.without(*STREAMS))      # raises if the image itself is wrong
    bad = []
    for s in STREAMS:
        if encoded.has(s):
            try:
                check(encoded.without(*[o for o in STREAMS if o != s]))
            except StreamError:
                bad.append(s)
    return encoded.without(*bad)


def _decode_one_by_one(codec, received, corrupted, seeds, settings, decode_one=None):
    """Decode each image alone; one whose decoding fails loses its corrupted streams (then
    all streams). ``decode_one(encoded, seed)`` defaults to an uncached decode with the
    decode ``settings``."""
    if decode_one is None:
        decode_one = lambda r, s: decode_images(codec, [r], [s], 1, settings)[0]  # noqa: E731
    out, used = [], []
    for r, bad, s in zip(received, corrupted, seeds):
        try:
            out.append(decode_one(r, s))
        except StreamError:
            r = r.without(*bad) if bad else r.without(*STREAMS)
            try:
                out.append(decode_one(r, s))
            except StreamError:
                r = r.without(*STREAMS)
                out.append(decode_one(r, s))
        used.append(r)
    return out, used


def _decode_and_score(config, codec, images, items, metrics):
    seeds = [_derive("decode", config.seed, im.image_id) % (2 ** 31) for im in images]
    received = [usable_streams(codec, im.received) for im in images]
    corrupted = [im.corrupted for im in images]
    settings = config.decode_settings()
    if config.decode_cache:
        cache, fp = _default_decode_cache(), codec_fingerprint(codec)
        recs, used = _decode_one_by_one(
            codec, received, corrupted, seeds, settings,
            lambda r, s: cache.decode(codec, fp, [r], [s], settings)[0])
    else:
        recs, used = [], []
        bs = config.decode_batch_size
        for i in range(0, len(images), bs):
            part = slice(i, i + bs)
            try:
                recs += decode_images(codec, received[part], seeds[part], bs, settings)
                used += received[part]
            except StreamError:
                # a codec without streams_of rejected an image: decode this batch image by
                # image, so only the failing image loses its (corrupted) streams
                r, u = _decode_one_by_one(codec, received[part], corrupted[part], seeds[part],
                                          settings)
                recs += r
                used += u
    for im, u in zip(images, used):
        im.decoded = u
    metrics = metrics if metrics is not None else _default_metrics()
    scores = metrics([it.image for it in items], recs, items)
    for im, s in zip(images, scores):
        im.meta["metrics"] = s
    return recs


_CACHE: Optional[EncodeCache] = None
_DECODE_CACHE: Optional[DecodeCache] = None
_METRICS = None


def _default_decode_cache() -> DecodeCache:
    global _DECODE_CACHE
    if _DECODE_CACHE is None:
        _DECODE_CACHE = DecodeCache()
    return _DECODE_CACHE


def _default_cache() -> EncodeCache:
    global _CACHE
    if _CACHE is None:
        _CACHE = EncodeCache()
    return _CACHE


def _default_metrics():
    global _METRICS
    if _METRICS is None:
        from .metrics import ImageMetrics

        _METRICS = ImageMetrics()
    return _METRICS


def run_simulation(config: SimConfig, codec: Any = None, metrics: Any = None,
                   cache: Optional[EncodeCache] = None) -> pd.DataFrame:
    """Run one simulation; one row per image (see :mod:`sim.records`)."""
    return simulate(config, codec=codec, metrics=metrics, cache=cache).records
