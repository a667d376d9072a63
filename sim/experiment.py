"""Experiment files: a grid of simulation runs in TOML (or the same in Python).

An :class:`Experiment` is a base :class:`~sim.config.SimConfig` plus lists to sweep over:
scenarios × modes × SNRs × budgets × policies × seeds. :meth:`Experiment.points` gives one
``SimConfig`` per grid point, in a fixed order.

TOML layout (relative paths are relative to the TOML file; every key is optional except
``grid.scenarios`` and ``grid.snr_db``)::

    name = "quickstart"
    codec = "scenes-64"             # preset / folder / "package.module:factory"; a relative
                                    # folder that exists next to this file is used as such
    num_images = 8

    [grid]
    scenarios = ["scenarios/tdl_a_30khz.toml"]
    modes = ["abstraction"]         # "abstraction", "bit"
    snr_db = [0, 4, 8]
    budget_prbs = [4, 11]           # PRBs per slot; "all" = the scenario's carrier
    policies = ["eep", "uep"]       # presets or names of [policies.*] tables
    seeds = [0, 1]
    codecs = ["scenes-64",          # optional: several codecs, each a spec or a table; a
              {codec = "webp", policies = ["eep"],           # table may narrow the policies
               bit_budget = {kind = "bpp", bpp = 0.25}}]     # and give its own bit budget

    [bit_budget]                    # baselines' bits per image (jpeg, webp, avif, hci;
    kind = "same_re"                # sim.bit_budget): "same_bits", "same_re", "bpp"
    reference = "scenes-64"
    reference_policy = "uep"

    [traffic]
    arrival = "periodic"            # "periodic", "poisson"
    interval_ms = 1.0
    deadline_ms = 2.0

    [packets]
    rsrt_tokens_per_packet = 0      # 0: all tokens in one packet; 1: one token per packet
    harq_rtt_slots = 4              # NACK -> earliest retransmission [slots], >= 1

    [dataset]
    kind = "scenes"                 # "scenes" (size, seed) or "folder" (path), checked at load
    size = 64

    [link]
    calibration = "auto"            # abstraction mode: the scenario's calibration if it has
                                    # one, else warn; "strict": refuse; "off": raw tables

    [decode]
    enabled = true
    steps = 20
    guidance_scale = 5.0            # classifier-free guidance (default: the codec's; 1: none)
    precision = "bf16"              # "fp32" or "bf16" (default: the codec's)
    guidance_interval = [0.3, 1.0]  # guide only at t/T in [lo, hi] (default: the codec's)
    strength = 1.0                  # < 1: start from the noised HCI (default: the codec's)
    batch_size = 16                 # used when cache = false
    cache = true                    # decode each distinct (image, streams, seed) once

    [policies.uep_strong]           # a named policy: a preset with arguments ...
    preset = "uep"
    robust_mcs = 3
    hci_mcs = 11
    [policies.custom.caption]       # ... or explicit tables, one per stream (all three)
    priority = 0
    mcs = 4
    max_retx = 2
    [policies.custom.hci]
    priority = 2
    mcs = "auto"                    # link adaptation (bler_target = 0.1 by default)
    [policies.custom.rsrt]
    priority = 1
    mcs = 4

Errors name the bad key, its value and what is allowed, e.g.
``quickstart.toml: grid.modes = ['fast'] is not supported; allowed: abstraction, bit``.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .codec_api import is_baseline
from .config import MODES, SimConfig, fields_from_toml, rename_error, toml_keys
from .policy import PRESETS, ProtectionPolicy, make_policy
from .source import check_dataset
from .validation import fail as _fail

__all__ = ["Experiment", "load_experiment"]

_CODEC_ENTRY = {"codec", "policies", "bit_budget"}
_OWN_KEYS = {"name", "description", "grid", "policies"}   # the rest: SimConfig's toml keys
_GRID = {"scenarios", "modes", "snr_db", "budget_prbs", "policies", "seeds", "codecs"}


def _sections() -> dict[str, set[str]]:
    """Allowed keys per TOML section: the grid's own, then every ``section.key`` a SimConfig
    field declares (:func:`sim.config.toml_keys`)."""
    out: dict[str, set[str]] = {"grid": set(_GRID)}
    for key in toml_keys().values():
        sec, _, k = key.rpartition(".")
        if sec and sec != "grid":
            out.setdefault(sec, set()).add(k)
    return out


def _list(key, v, check, allowed):
    if not isinstance(v, list):
        v = [v]
    if not v:
        _fail(key, v, f"a non-empty list of {allowed}")
    for x in v:
        if not check(x):
            _fail(key, v, f"a list of {allowed}")
    return v


def _is_num(x):
    return not isinstance(x, bool) and isinstance(x, (int, float))


def _is_int(x):
    return not isinstance(x, bool) and isinstance(x, int)


@dataclass
class Experiment:
    """A grid of runs.

    Parameters
    ----------
    name : str
    scenarios : list of str/Path/Scenario
    snr_db : list of float
    modes : list of "abstraction" | "bit"
    budget_prbs : list of int or None (None: the whole carrier)
    policies : list of str or ProtectionPolicy
        Preset names or policy objects.
    seeds : list of int
    codecs : list of dict or None
        Codecs to sweep, each ``{"codec": spec, "policies": [...] | None, "bit_budget": dict |
        None}`` (``None`` entries: the experiment's policies, the base bit budget); ``None``:
        the base codec only.
    base : dict
        Other :class:`SimConfig` fields shared by every run (num_images, arrival, codec, ...).
    """

    name: str
    scenarios: list
    snr_db: list
    modes: list = field(default_factory=lambda: ["abstraction"])
    budget_prbs: list = field(default_factory=lambda: [None])
    policies: list = field(default_factory=lambda: ["eep", "uep"])
    seeds: list = field(default_factory=lambda: [0])
    base: dict = field(default_factory=dict)
    source: Optional[str] = None
    codecs: Optional[list] = None

    def __post_init__(self):
        self.snr_db = _list("grid.snr_db", self.snr_db, _is_num, "numbers")
        self.modes = _list("grid.modes", self.modes, lambda m: m in MODES, ", ".join(MODES))
        self.budget_prbs = _list("grid.budget_prbs", self.budget_prbs,
                                 lambda b: b is None or _is_int(b), "integers (PRBs) or 'all'")
        self.seeds = _list("grid.seeds", self.seeds, lambda s: _is_int(s) and s >= 0,
                           "integers >= 0")
        self.policies = _list("grid.policies", self.policies,
                              lambda p: isinstance(p, (str, ProtectionPolicy)),
                              f"preset names ({', '.join(PRESETS)}) or policies")
        self.scenarios = _list("grid.scenarios", self.scenarios, lambda s: s is not None,
                               "scenario paths")
        names = [p if isinstance(p, str) else p.name for p in self.policies]
        if len(set(names)) != len(names):
            _fail("grid.policies", names, "distinct policy names")
        if self.codecs is not None:
            if not isinstance(self.codecs, list) or not self.codecs:
                _fail("grid.codecs", self.codecs, "a non-empty list of codec specs or tables")
            self.codecs = [c if isinstance(c, dict) else {"codec": c} for c in self.codecs]
            for c in self.codecs:
                if set(c) - _CODEC_ENTRY or "codec" not in c:
                    _fail("grid.codecs", c, f"tables with keys {', '.join(sorted(_CODEC_ENTRY))}"
                          f" (codec required)")
        unknown = set(self.base) - {f for f in SimConfig.__dataclass_fields__} \
            - {"scenario", "snr_db", "policy", "mode", "budget_prbs", "seed"}
        if unknown:
            raise ValueError(f"unknown SimConfig field {sorted(unknown)[0]!r} in base; allowed: "
                             f"{', '.join(sorted(SimConfig.__dataclass_fields__))}")
        self.points()   # validates every combination now, not halfway through a sweep

    def points(self) -> list[SimConfig]:
        """One :class:`SimConfig` per grid point: scenario, mode, budget, policy, SNR, seed
        (the last varies fastest)."""
        out = []
        entries = self.codecs or [{}]
        for sc, mode, b in itertools.product(self.scenarios, self.modes, self.budget_prbs):
            for entry in entries:
                base = dict(self.base)
                for k in ("codec", "bit_budget"):
                    if entry.get(k) is not None:
                        base[k] = entry[k]
                if not is_baseline(base.get("codec", "scenes-64")):
                    if entry.get("bit_budget") is not None:
                        _fail("grid.codecs", entry, "a bit_budget only on a baseline codec "
                              "(jpeg, webp, avif, hci)")
                    base.pop("bit_budget", None)   # [bit_budget] is the baselines' budget
                for pol, snr, seed in itertools.product(entry.get("policies") or self.policies,
                                                        self.snr_db, self.seeds):
                    out.append(SimConfig(scenario=sc, snr_db=float(snr),
                                         policy=make_policy(pol) if isinstance(pol, str)
                                         else pol, mode=mode, budget_prbs=b, seed=seed, **base))
        return out

    def __len__(self) -> int:
        per = sum(len(e.get("policies") or self.policies) for e in (self.codecs or [{}]))
        return (len(self.scenarios) * len(self.modes) * len(self.budget_prbs) * per
                * len(self.snr_db) * len(self.seeds))

    @classmethod
    def from_dict(cls, data: dict, root: str | Path = ".", source: Optional[str] = None
                  ) -> "Experiment":
        """From a parsed TOML document (paths relative to ``root``)."""
        root = Path(root)
        top = _OWN_KEYS | set(_sections()) | {k for k in toml_keys().values() if "." not in k}
        for k in data:
            if k not in top:
                raise ValueError(f"unknown key {k!r}; allowed keys: {', '.join(sorted(top))}")
        for sec, keys in _sections().items():
            sub = data.get(sec, {})
            if not isinstance(sub, dict):
                raise ValueError(f"[{sec}] must be a table, got {sub!r}")
            for k in sub:
                if k not in keys:
                    raise ValueError(f"unknown key {sec}.{k}; allowed keys: "
                                     f"{', '.join(sorted(keys))}")
        grid = data.get("grid", {})
        for req in ("scenarios", "snr_db"):
            if req not in grid:
                raise ValueError(f"missing key grid.{req}; the grid needs scenarios and snr_db")
        scen = []
        for s in _list("grid.scenarios", grid["scenarios"], lambda x: isinstance(x, str),
                       "scenario TOML paths"):
            p = Path(s) if Path(s).is_absolute() else root / s
            if not p.is_file():
                _fail("grid.scenarios", s, f"existing scenario TOML files (looked for {p})")
            scen.append(str(p))
        named = {}
        pols = data.get("policies", {})
        if not isinstance(pols, dict):
            raise ValueError(f"[policies] must be a table of tables, got {pols!r}")
        for n, d in pols.items():
            named[n] = ProtectionPolicy.from_dict(d, name=n)
        def resolve_policies(key, names):
            out = []
            for p in _list(key, names, lambda x: isinstance(x, str), "policy names"):
                if p in named:
                    out.append(named[p])
                elif p in PRESETS:
                    out.append(p)
                else:
                    _fail(key, p, f"presets {', '.join(PRESETS)} or a [policies.*] "
                          f"table ({', '.join(named) or 'none defined'})")
            return out

        def resolve_codec(c):
            if isinstance(c, str) and not Path(c).is_absolute() and (root / c).is_dir():
                return str(root / c)   # a folder next to the file; a name stays a name
            return c

        policies = resolve_policies("grid.policies", grid.get("policies", ["eep", "uep"]))
        codecs = None
        if "codecs" in grid:
            codecs = []
            for c in _list("grid.codecs", grid["codecs"], lambda x: isinstance(x, (str, dict)),
                           "codec specs or tables"):
                c = dict(c) if isinstance(c, dict) else {"codec": c}
                if set(c) - _CODEC_ENTRY or not isinstance(c.get("codec"), str):
                    _fail("grid.codecs", c, f"tables with keys {', '.join(sorted(_CODEC_ENTRY))}"
                          f" (codec required, a string)")
                c["codec"] = resolve_codec(c["codec"])
                if "policies" in c:
                    c["policies"] = resolve_policies("grid.codecs.policies", c["policies"])
                codecs.append(c)
        budgets = [None if b == "all" else b for b in
                   (grid.get("budget_prbs", ["all"]) if isinstance(grid.get("budget_prbs", []),
                                                               list)
                    else [grid["budget_prbs"]])]
        base: dict[str, Any] = fields_from_toml(data, ("", "traffic", "packets", "decode",
                                                       "link"))
        if "codec" in base:
            base["codec"] = resolve_codec(base["codec"])
        if "dataset" in base:
            if not isinstance(base["dataset"], dict):
                raise ValueError(f"[dataset] must be a table, got {base['dataset']!r}")
            ds = dict(base["dataset"])
            if ds.get("kind") == "folder" and isinstance(ds.get("path"), str) \
                    and not Path(ds["path"]).is_absolute():
                ds["path"] = str(root / ds["path"])
            check_dataset(ds)                     # now, naming the key: not at the first point
            base["dataset"] = ds
        try:
            return cls(name=data.get("name", "experiment"), scenarios=scen,
                       snr_db=grid["snr_db"], modes=grid.get("modes", ["abstraction"]),
                       budget_prbs=budgets, policies=policies, seeds=grid.get("seeds", [0]),
                       base=base, source=source, codecs=codecs)
        except ValueError as e:
            raise ValueError(rename_error(str(e))) from None


def load_experiment(path: str | Path) -> Experiment:
    """Read an :class:`Experiment` from a TOML file; errors name the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"experiment file {str(p)!r} does not exist")
    with open(p, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{p}: not valid TOML ({e})") from None
    try:
        return Experiment.from_dict(data, root=p.parent, source=str(p))
    except (ValueError, TypeError) as e:
        raise type(e)(f"{p}: {e}") from None
