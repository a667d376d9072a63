"""One simulation run, as plain data: :class:`SimConfig`.

A run is one point of a sweep: one channel scenario, fidelity mode, SNR, bandwidth budget,
protection policy and seed, carrying ``num_images`` images. Every field is validated when
the object is built; an error names the field, its value and what is allowed.

Units: ``interval_ms``/``deadline_ms`` are milliseconds (converted to slots with the
scenario's slot duration); ``harq_rtt_slots`` is in slots; ``budget_prbs`` is a per-slot cap
on resource elements, given in PRBs: the scheduler may fill at most ``budget_prbs × 12 ×
(data OFDM symbols)`` REs of each slot (:attr:`SimConfig.budget_re`; ``None``: the whole
carrier). Packets are not tied to PRBs: any mix of packets whose REs fit the cap is sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from benchmark import seeds

from .policy import PRESETS, ProtectionPolicy, make_policy
from .validation import fail as _fail

__all__ = ["SimConfig", "MODES", "toml_keys", "fields_from_toml", "rename_error"]

MODES = ("abstraction", "bit")
_UNSET = object()
_ARRIVALS = ("periodic", "poisson")


def _num(key, v, lo, hi, integer=False, open_lo=False):
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if integer:
        ok = ok and float(v).is_integer()
    if ok:
        ok = (lo < v if open_lo else lo <= v) and v <= hi
    if not ok:
        what = "an integer" if integer else "a number"
        _fail(key, v, f"{what} in {'(' if open_lo else '['}{lo}, {hi}]")


_REQUIRED = object()


def _key(toml: str, default: Any = _REQUIRED) -> Any:
    """A field and the key that sets it in an experiment TOML (``section.key``, or a
    top-level key): the one table :mod:`sim.experiment` reads sections, checks unknown keys
    and names errors from."""
    if default is _REQUIRED:
        return field(metadata={"toml": toml})
    return field(default=default, metadata={"toml": toml})


def toml_keys() -> dict[str, str]:
    """SimConfig field -> its key in an experiment TOML (``"decode_steps"`` ->
    ``"decode.steps"``)."""
    return {f.name: f.metadata["toml"] for f in dataclasses.fields(SimConfig)}


def fields_from_toml(data: dict, sections: tuple[str, ...]) -> dict:
    """The SimConfig fields that ``data`` (a parsed experiment TOML) sets in ``sections``
    (section names, or ``""`` for top-level keys), keyed by field name."""
    out = {}
    for name, key in toml_keys().items():
        sec, _, k = key.rpartition(".")
        if sec in sections:
            table = data if not sec else data.get(sec, {})
            if k in table:
                out[name] = table[k]
    return out


def rename_error(msg: str) -> str:
    """A SimConfig error (``"decode_steps = …"``) with the field named as in the TOML
    (``"decode.steps = …"``)."""
    for name, key in toml_keys().items():
        if msg.startswith(f"{name} = "):
            return key + msg[len(name):]
    return msg


@dataclass(frozen=True)
class SimConfig:
    """Parameters of one simulation run.

    Parameters
    ----------
    scenario : str, Path or channels.Scenario
        Link scenario (TOML path or object).
    snr_db : float
        Es/N0 per resource element [dB], in [-50, 100].
    policy : str or ProtectionPolicy
        ``"eep"``, ``"uep"``, ``"adaptive"`` (preset defaults) or a policy object.
    mode : "abstraction" | "bit"
        Link fidelity: Sionna PHY abstraction or the bit-level chain.
    budget_prbs : int or None
        Per-slot resource-element cap, in PRBs: each slot carries at most
        ``budget_prbs × 12 × data OFDM symbols`` REs of image traffic (:attr:`budget_re`;
        ``None``: all of the scenario's PRBs).
    num_images : int
        Images sent in the run, in [1, 100000].
    seed : int
        Seed of the run; every random draw (arrivals, fading, noise, decoder noise, which
        images) derives from it and the run's other parameters do not change them.
    arrival : "periodic" | "poisson"
        Arrival process of images.
    interval_ms : float
        (Mean) time between image arrivals [ms].
    deadline_ms : float
        Time after arrival by which an image must be received [ms]; the receiver decodes
        what arrived by then.
    rsrt_tokens_per_packet : int
        RSRT tokens per packet. 0 (default): as many as fit one packet (all the tokens sent in
        one packet unless the budget is too small), which pays the per-packet overhead (CRC,
        transport-block rounding) once; 1: one token per packet (a lost packet loses one
        token, at the price of K packets' overhead).
    harq_rtt_slots : int
        HARQ round-trip time [slots], >= 1: a packet NACKed in slot ``t`` is retransmitted at
        the earliest in slot ``t + harq_rtt_slots``; a retransmission that could not arrive by
        the deadline is dropped.
    codec : str or codec object
        Codec spec (see :func:`sim.codec_api.load_codec`) or object. The point id includes
        the codec's fingerprint (:func:`sim.codec_api.codec_fingerprint`: preset files and
        weight sizes/times), so retrained weights never reuse old results.
    dataset : dict
        ``{"kind": "scenes", "size": 64, "seed": 0}`` or ``{"kind": "folder", "path": ...}``
        (:func:`sim.source.check_dataset`).
    decode : bool
        Decode and score reconstructions (``False``: event model and delivery only).
    decode_steps : int or None
        Diffusion steps (``None``: the codec's default).
    decode_guidance : float or None
        Classifier-free guidance scale of the decoder (``None``: the codec's default, e.g.
        ``guidance_scale`` in an SDGIC preset's ``preset.json``; 1: no guidance, half the
        decoder work).
    decode_guidance_interval : (float, float) or None
        Guide only at timesteps t/T within ``(lo, hi)`` (``None``: the codec's default, e.g.
        ``guidance_interval`` in an SDGIC preset's ``preset.json``).
    decode_strength : float or None
        In (0, 1]: start the decoder from the HCI noised that far into the schedule (``None``:
        the codec's default, ``strength`` in a preset's ``preset.json``; 1: pure noise).
    decode_precision : str or None
        Decoder arithmetic, ``"fp32"`` or ``"bf16"`` (``None``: the codec's default, e.g.
        ``precision`` in an SDGIC preset's ``preset.json``, which falls back to fp32 on a CPU
        without native bf16). Set it to compare runs across machines bit for bit.
    decode_batch_size : int
        Images per decoder batch (used when ``decode_cache`` is off).
    decode_cache : bool
        Reuse reconstructions across the points of a process (:class:`sim.decode_cache.
        DecodeCache`): each distinct (image, streams received, seed) is decoded once, alone,
        so a result does not depend on the batch it was decoded in.
    trace : bool
        Keep a per-packet transmission trace.
    bit_budget : dict or None
        Bits per image of a codec that codes to a budget (``jpeg``, ``webp``, ``avif``,
        ``hci``): ``{"kind": "same_bits" | "same_re" | "bpp", ...}``
        (:class:`sim.bit_budget.BitBudget`; ``None``: ``DEFAULT_BIT_BUDGET``, the bits the
        ``scenes-64`` preset spends on the same image). Refused for other codecs.
    calibration : "auto" | "strict" | "off"
        Abstraction mode: use the scenario's calibration against the bit-level chain
        (``sdgic calibrate``) when one exists, warning once when none does (``"auto"``);
        refuse an uncalibrated scenario (``"strict"``); or use the raw abstraction
        (``"off"``). See :mod:`sim.link_calibration`. Ignored in bit-level mode.
    """

    scenario: Any = _key("grid.scenarios")
    snr_db: float = _key("grid.snr_db")
    policy: Any = _key("grid.policies", "uep")
    mode: str = _key("grid.modes", "abstraction")
    budget_prbs: Optional[int] = _key("grid.budget_prbs", None)
    num_images: int = _key("num_images", 8)
    seed: int = _key("grid.seeds", 0)
    arrival: str = _key("traffic.arrival", "periodic")
    interval_ms: float = _key("traffic.interval_ms", 1.0)
    deadline_ms: float = _key("traffic.deadline_ms", 2.0)
    rsrt_tokens_per_packet: int = _key("packets.rsrt_tokens_per_packet", 0)
    harq_rtt_slots: int = _key("packets.harq_rtt_slots", 4)
    codec: Any = _key("codec", "scenes-64")
    dataset: dict = field(default_factory=lambda: {"kind": "scenes", "size": 64,
                                                   "seed": seeds.SIMULATOR},
                          metadata={"toml": "dataset"})
    decode: bool = _key("decode.enabled", True)
    decode_steps: Optional[int] = _key("decode.steps", None)
    decode_guidance: Optional[float] = _key("decode.guidance_scale", None)
    decode_precision: Optional[str] = _key("decode.precision", None)
    decode_guidance_interval: Optional[tuple[float, float]] = _key("decode.guidance_interval",
                                                                   None)
    decode_strength: Optional[float] = _key("decode.strength", None)
    decode_batch_size: int = _key("decode.batch_size", 16)
    decode_cache: bool = _key("decode.cache", True)
    trace: bool = _key("trace", False)
    bit_budget: Optional[dict] = _key("bit_budget", None)
    calibration: str = _key("link.calibration", "auto")

    def __post_init__(self):
        from channels import Scenario, load_scenario

        sc = self.scenario
        if isinstance(sc, (str, Path)):
            sc = load_scenario(sc)
        elif not isinstance(sc, Scenario):
            _fail("scenario", sc, "a scenario TOML path or a channels.Scenario")
        object.__setattr__(self, "_scenario_obj", sc)
        _num("snr_db", self.snr_db, -50, 100)
        if isinstance(self.policy, str):
            if self.policy not in PRESETS:
                _fail("policy", self.policy, f"{', '.join(PRESETS)} or a ProtectionPolicy")
        elif not isinstance(self.policy, ProtectionPolicy):
            _fail("policy", self.policy, f"{', '.join(PRESETS)} or a ProtectionPolicy")
        if self.mode not in MODES:
            _fail("mode", self.mode, ", ".join(MODES))
        if self.budget_prbs is not None:
            _num("budget_prbs", self.budget_prbs, 1, sc.ofdm.num_prbs, integer=True)
        _num("num_images", self.num_images, 1, 100_000, integer=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            _fail("seed", self.seed, "an integer >= 0")
        if self.arrival not in _ARRIVALS:
            _fail("arrival", self.arrival, ", ".join(_ARRIVALS))
        _num("interval_ms", self.interval_ms, 0, 1e6, open_lo=True)
        _num("deadline_ms", self.deadline_ms, 0, 1e6, open_lo=True)
        if self.deadline_ms < sc.ofdm.slot_duration_s * 1e3:
            _fail("deadline_ms", self.deadline_ms,
                  f"at least one slot ({sc.ofdm.slot_duration_s * 1e3:g} ms for scenario "
                  f"{sc.name!r})")
        _num("rsrt_tokens_per_packet", self.rsrt_tokens_per_packet, 0, 4096, integer=True)
        _num("harq_rtt_slots", self.harq_rtt_slots, 1, 10_000, integer=True)
        from .source import check_dataset

        check_dataset(self.dataset)
        if not isinstance(self.decode, bool):
            _fail("decode", self.decode, "true or false")
        if self.decode_steps is not None:
            _num("decode_steps", self.decode_steps, 1, 1000, integer=True)
        if self.decode_guidance is not None:
            _num("decode_guidance", self.decode_guidance, 0, 100, open_lo=True)
        if self.decode_precision not in (None, "fp32", "bf16"):
            _fail("decode_precision", self.decode_precision, '"fp32" or "bf16"')
        if self.decode_guidance_interval is not None:
            from codec.preset import check_guidance_interval

            try:
                object.__setattr__(self, "decode_guidance_interval",
                                   check_guidance_interval(self.decode_guidance_interval))
            except ValueError:
                _fail("decode_guidance_interval", self.decode_guidance_interval,
                      "[lo, hi] with 0 <= lo <= hi <= 1")
        if self.decode_strength is not None:
            _num("decode_strength", self.decode_strength, 0, 1, open_lo=True)
        _num("decode_batch_size", self.decode_batch_size, 1, 4096, integer=True)
        if not isinstance(self.decode_cache, bool):
            _fail("decode_cache", self.decode_cache, "true or false")
        if not isinstance(self.trace, bool):
            _fail("trace", self.trace, "true or false")
        from .link_calibration import SETTINGS as _CAL

        if self.calibration not in _CAL:
            _fail("calibration", self.calibration, ", ".join(_CAL))
        if self.bit_budget is not None:
            from .bit_budget import BitBudget

            object.__setattr__(self, "bit_budget", BitBudget.from_dict(self.bit_budget).to_dict())

    # -- derived ----------------------------------------------------------------------------
    @property
    def scenario_obj(self):
        """The :class:`channels.Scenario`."""
        return self._scenario_obj  # pylint: disable=no-member

    @property
    def policy_obj(self) -> ProtectionPolicy:
        return make_policy(self.policy)

    @property
    def slot_ms(self) -> float:
        return self.scenario_obj.ofdm.slot_duration_s * 1e3

    @property
    def budget_re(self) -> int:
        """Resource elements per slot (``budget_prbs`` × 12 × data symbols)."""
        of = self.scenario_obj.ofdm
        prbs = of.num_prbs if self.budget_prbs is None else int(self.budget_prbs)
        return prbs * 12 * (of.num_ofdm_symbols - len(of.pilot_ofdm_symbols))

    def decode_settings(self) -> dict:
        """The decode settings this config sets (``steps``, ``guidance_scale``,
        ``guidance_interval``, ``precision``, ``strength``; unset ones are left to the codec), as
        :meth:`codec.sdgic.SDGIC.decode_batch` takes them."""
        return {k: v for k, v in (("steps", self.decode_steps),
                                  ("guidance_scale", self.decode_guidance),
                                  ("guidance_interval", self.decode_guidance_interval),
                                  ("precision", self.decode_precision),
                                  ("strength", self.decode_strength)) if v is not None}

    def codec_spec(self) -> str:
        """The codec as written to the records: the spec string, or ``object:<preset>``."""
        if isinstance(self.codec, str):
            return self.codec
        return f"object:{getattr(self.codec, 'preset', type(self.codec).__name__)}"

    def bit_budget_obj(self):
        """The :class:`~sim.bit_budget.BitBudget` a budgeted codec gets (the default when
        unset)."""
        from .bit_budget import DEFAULT_BIT_BUDGET, BitBudget

        return BitBudget.from_dict(self.bit_budget or DEFAULT_BIT_BUDGET)

    def codec_fingerprint(self) -> Optional[str]:
        """:func:`sim.codec_api.codec_fingerprint` of the codec, computed once per config
        (and pickled with it, so a Ray worker reports the id the driver computed)."""
        fp = self.__dict__.get("_codec_fp", _UNSET)
        if fp is _UNSET:
            from .codec_api import codec_fingerprint

            fp = codec_fingerprint(self.codec)
            object.__setattr__(self, "_codec_fp", fp)
        return fp

    def calibration_obj(self):
        """The :class:`~channels.calibration.Calibration` this run uses, or `None`
        (:func:`sim.link_calibration.resolve_calibration`: warns once per uncalibrated
        scenario; raises under ``"strict"``)."""
        from .link_calibration import resolve_calibration

        return resolve_calibration(self.scenario_obj, self.mode, self.calibration)

    def to_dict(self) -> dict:
        """Plain data (JSON-able) that determines the run's results."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["scenario"] = self.scenario_obj.to_dict()
        d["policy"] = self.policy_obj.to_dict()
        d["codec"] = self.codec_spec()
        d["codec_fingerprint"] = self.codec_fingerprint()
        detail = getattr(self.codec, "caption_detail", "full")   # objects: what senders write
        if detail != "full":     # (a preset's own detail is part of its fingerprint already)
            d["codec_caption_detail"] = detail
        for k in ("snr_db", "interval_ms", "deadline_ms"):   # 4 and 4.0 are the same point
            d[k] = float(d[k])
        for k in ("budget_prbs", "decode_steps"):
            d[k] = None if d[k] is None else int(d[k])
        if d["decode_guidance"] is not None:
            d["decode_guidance"] = float(d["decode_guidance"])
        for k in ("decode_precision", "decode_guidance_interval", "decode_strength"):
            if d[k] is None:   # unset: ids of runs made before it existed hold
                del d[k]
        if "decode_guidance_interval" in d:
            d["decode_guidance_interval"] = list(d["decode_guidance_interval"])
        d["trace"] = False   # the trace does not change the records
        if d["bit_budget"] is None:   # unset: ids of runs made before it existed hold
            del d["bit_budget"]
        del d["calibration"]          # what counts is the calibration used, if any
        cal = self.calibration_obj()
        if cal is not None:           # none used: ids of runs made before it existed hold
            d["calibration_used"] = {"key": cal.key, "offset_db": cal.offset_db,
                                     "mcs": cal.mcs, "packet_bits": cal.packet_bits}
        return d

    def point_id(self) -> str:
        """Stable 16-hex id of the run (hash of :meth:`to_dict`)."""
        s = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.blake2b(s.encode(), digest_size=8).hexdigest()

    def replace(self, **kw) -> "SimConfig":
        return dataclasses.replace(self, **kw)
