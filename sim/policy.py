"""Protection policies: how each stream is prioritized, coded and retransmitted.

A :class:`ProtectionPolicy` maps each stream (caption, hci, rsrt) to a
:class:`StreamProtection`: a scheduling priority (lower = more important), an NR MCS index
(or ``None`` for link adaptation) and a retransmission limit. Presets:

* ``"eep"`` -- equal error protection: every stream at the same MCS and priority.
* ``"uep"`` -- unequal error protection: caption and RSRT at a robust MCS and high priority,
  the HCI at a higher MCS and lower priority.
* ``"adaptive"`` -- UEP priorities, MCS chosen per stream by Sionna SYS outer-loop link
  adaptation (:class:`~sim.link_adaptation.StreamLinkAdaptation`) with a tighter BLER target
  for caption and RSRT than for the HCI.
* ``"semantic"`` -- per image, each stream's MCS, retransmission limit and order (or not
  sending it) chosen to maximise the expected metric from the codec's subset table
  (:mod:`sim.semantic_policy`); its per-stream tables are placeholders.

Defaults (NR MCS table 1): EEP at MCS 5 (QPSK, R 0.37); UEP caption/RSRT at MCS 3 (QPSK,
R 0.25) and HCI at MCS 9 (QPSK, R 0.66). In abstraction mode the lowest usable MCS is the
lowest in Sionna's BLER tables (3 for table 1;
:func:`channels.link_adaptation.abstraction_mcs_range`).

Build one with :func:`make_policy` (``make_policy("uep", robust_mcs=4)``) or from a TOML table
with :meth:`ProtectionPolicy.from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .packets import STREAMS
from .validation import fail as _fail

__all__ = ["StreamProtection", "ProtectionPolicy", "make_policy", "PRESETS"]

PRESETS = ("eep", "uep", "adaptive", "semantic")
_MAX_MCS = 28


def _int_in(key, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        _fail(key, value, f"an integer in [{lo}, {hi}]")


@dataclass(frozen=True)
class StreamProtection:
    """Protection of one stream.

    Parameters
    ----------
    priority : int
        Scheduling priority in [0, 99]; lower is served first.
    mcs : int or None
        NR MCS index (PDSCH table of the scenario) or ``None``: chosen by link adaptation
        (``mcs = "auto"`` in a TOML policy table).
    max_retx : int
        Retransmissions after the first transmission (Chase combining), in [0, 16].
    bler_target : float
        Transport-block error target of link adaptation (used when ``mcs`` is ``None``).
    """

    priority: int = 1
    mcs: int | None = 5
    max_retx: int = 1
    bler_target: float = 0.1

    def __post_init__(self):
        _int_in("priority", self.priority, 0, 99)
        if self.mcs is not None:
            _int_in("mcs", self.mcs, 0, _MAX_MCS)
        _int_in("max_retx", self.max_retx, 0, 16)
        b = self.bler_target
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 < b < 1:
            _fail("bler_target", b, "a number in (0, 1)")


@dataclass(frozen=True)
class ProtectionPolicy:
    """Per-stream protection.

    Parameters
    ----------
    name : str
        Label written to the records.
    caption, hci, rsrt : StreamProtection
        Protection of each stream.
    olla_delta_up : float
        Outer-loop step [dB] after a NACK (link adaptation only).
    semantic : dict or None
        Settings of the semantic planner (``max_retx``, ``mcs_min``, ``mcs_max``,
        ``step_db``, ``fading_draws``); ``None``: the per-stream protection above is used as it is.
    """

    name: str
    caption: StreamProtection
    hci: StreamProtection
    rsrt: StreamProtection
    olla_delta_up: float = 1.0
    semantic: dict | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            _fail("policy.name", self.name, "a non-empty string")
        for s in STREAMS:
            if not isinstance(getattr(self, s), StreamProtection):
                raise TypeError(f"policy.{s} must be a StreamProtection, got "
                                f"{type(getattr(self, s)).__name__}")
        d = self.olla_delta_up
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 10:
            _fail("olla_delta_up", d, "a number in (0, 10]")

    def __getitem__(self, stream: str) -> StreamProtection:
        if stream not in STREAMS:
            _fail("stream", stream, ", ".join(STREAMS))
        return getattr(self, stream)

    @property
    def adaptive(self) -> bool:
        """Whether any stream's MCS comes from link adaptation."""
        return any(self[s].mcs is None for s in STREAMS)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["semantic"] is None:     # (ids of points made before the field existed hold)
            del d["semantic"]
        return d

    @classmethod
    def from_dict(cls, data: dict, name: str | None = None) -> "ProtectionPolicy":
        """From a TOML table: either ``{"preset": "uep", <preset arguments>}`` or explicit
        ``{"caption": {...}, "hci": {...}, "rsrt": {...}}`` tables (plus ``olla_delta_up``).
        Explicit tables need all three streams; ``mcs = "auto"`` in a stream's table means
        link adaptation (``mcs=None``). Unknown or missing keys raise an error naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"policy {name!r} must be a table, got {data!r}")
        data = dict(data)
        label = data.pop("name", name)
        where = f"policies.{name}." if name else "policy."
        if "preset" in data:
            preset = data.pop("preset")
            try:
                return make_policy(preset, name=label, **data)
            except TypeError as e:
                import inspect
                allowed = sorted(inspect.signature(_PRESET_FUNCS.get(preset, _eep)).parameters)
                bad = sorted(set(data) - set(allowed))
                raise ValueError(f"unknown key {where}{bad[0] if bad else '?'} for preset "
                                 f"{preset!r}; allowed keys: preset, {', '.join(allowed)}") from e
        allowed = set(STREAMS) | {"olla_delta_up"}
        for k in data:
            if k not in allowed:
                raise ValueError(f"unknown key {where}{k!r}; allowed keys: "
                                 f"{', '.join(sorted(allowed | {'preset', 'name'}))}")
        missing = [s for s in STREAMS if s not in data]
        if missing:
            raise ValueError(f"missing table {where}{missing[0]}; a policy without a preset "
                             f"needs one table per stream ({', '.join(STREAMS)}), or use "
                             f"preset = \"eep\" | \"uep\" | \"adaptive\"")
        streams = {}
        fields = {f.name for f in dataclasses.fields(StreamProtection)}
        for s in STREAMS:
            sub = data[s]
            if not isinstance(sub, dict):
                raise ValueError(f"{where}{s} must be a table, got {sub!r}")
            for k in sub:
                if k not in fields:
                    raise ValueError(f"unknown key {where}{s}.{k!r}; allowed keys: "
                                     f"{', '.join(sorted(fields))}")
            sub = dict(sub)
            if sub.get("mcs") == "auto":
                sub["mcs"] = None             # link adaptation
            elif isinstance(sub.get("mcs"), str):
                raise ValueError(f"{where}{s}.mcs = {sub['mcs']!r} is not supported; allowed: "
                                 f"an integer in [0, {_MAX_MCS}] or \"auto\" (link adaptation)")
            try:
                streams[s] = StreamProtection(**sub)
            except ValueError as e:
                raise ValueError(f"{where}{s}.{e}") from None
        return cls(name=label or "custom", olla_delta_up=data.get("olla_delta_up", 1.0), **streams)


def _eep(mcs: int = 5, max_retx: int = 1, priority: int = 1, name: str | None = None):
    p = StreamProtection(priority=priority, mcs=mcs, max_retx=max_retx)
    return ProtectionPolicy(name or "eep", caption=p, hci=p, rsrt=p)


def _uep(robust_mcs: int = 3, hci_mcs: int = 9, max_retx: int = 1, hci_max_retx: int | None = None,
         name: str | None = None):
    robust = StreamProtection(priority=0, mcs=robust_mcs, max_retx=max_retx)
    return ProtectionPolicy(
        name or "uep", caption=robust, rsrt=dataclasses.replace(robust, priority=1),
        hci=StreamProtection(priority=2, mcs=hci_mcs,
                             max_retx=max_retx if hci_max_retx is None else hci_max_retx))


def _adaptive(robust_bler: float = 0.01, hci_bler: float = 0.1, max_retx: int = 1,
              delta_up: float = 1.0, name: str | None = None):
    def sp(prio, b):
        return StreamProtection(priority=prio, mcs=None, max_retx=max_retx, bler_target=b)
    return ProtectionPolicy(name or "adaptive", caption=sp(0, robust_bler),
                            rsrt=sp(1, robust_bler), hci=sp(2, hci_bler), olla_delta_up=delta_up)


def _semantic(max_retx: int = 3, mcs_min: int | None = None, mcs_max: int | None = None,
              step_db: float = 0.5, fading_draws: int = 128, name: str | None = None):
    _int_in("max_retx", max_retx, 0, 16)
    _int_in("fading_draws", fading_draws, 0, 4096)
    for k, v in (("mcs_min", mcs_min), ("mcs_max", mcs_max)):
        if v is not None:
            _int_in(k, v, 0, _MAX_MCS)
    if isinstance(step_db, bool) or not isinstance(step_db, (int, float)) \
            or not 0 <= step_db <= 10:
        _fail("step_db", step_db, "a number in [0, 10]")
    p = StreamProtection(priority=1, mcs=5, max_retx=0)
    return ProtectionPolicy(name or "semantic", caption=p, hci=p, rsrt=p, semantic=dict(
        max_retx=max_retx, mcs_min=mcs_min, mcs_max=mcs_max, step_db=float(step_db),
        fading_draws=fading_draws))


_PRESET_FUNCS = {"eep": _eep, "uep": _uep, "adaptive": _adaptive, "semantic": _semantic}


def make_policy(preset: str | ProtectionPolicy, **kwargs) -> ProtectionPolicy:
    """A preset policy.

    ``make_policy("eep", mcs=5, max_retx=1, priority=1)``;
    ``make_policy("uep", robust_mcs=3, hci_mcs=9, max_retx=1, hci_max_retx=None)``;
    ``make_policy("adaptive", robust_bler=0.01, hci_bler=0.1, max_retx=1, delta_up=1.0)``;
    ``make_policy("semantic", max_retx=3, mcs_min=None, mcs_max=None, step_db=0.5,
    fading_draws=128)``.
    A :class:`ProtectionPolicy` passes through unchanged.
    """
    if isinstance(preset, ProtectionPolicy):
        return preset
    if preset not in _PRESET_FUNCS:
        _fail("policy preset", preset, ", ".join(PRESETS))
    return _PRESET_FUNCS[preset](**kwargs)
