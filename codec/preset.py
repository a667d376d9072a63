"""A preset folder's ``preset.json``: the one owner of its keys (load, validate, save) and of
the decode settings it carries.

    preset.json       {"preset", "resolution", "hci": {"root", "rate_points", "default"},
                       "caption_model" (optional JSON path), "guidance_scale",
                       "guidance_interval" ([lo, hi]: guide only at timesteps t/T in it;
                       default [0, 1]), "steps", "strength" (in (0, 1]: start from the
                       noised HCI that far into the schedule; default 1, pure noise),
                       "precision" ("fp32" or "bf16": UNet + ControlNet under bfloat16
                       autocast where the machine runs bf16 natively, else fp32),
                       "caption_detail" ("full" or "layout": what the captions it was
                       trained on state; default "full"),
                       "caption_stream" (false: the decoder was trained without captions,
                       e.g. on photos, and senders send none; default true),
                       "num_tokens" (RSRT tokens ``encode`` sends, a prefix of the K the
                       encoder makes; default all K; per tile in native size),
                       "size" ("square": every image is coded at ``resolution``², the
                       default; "native": at its own size, the decoder drawing it in
                       overlapping ``resolution``² tiles),
                       "tile_overlap" (native: least overlap of neighbouring tiles [px],
                       default 16),
                       "modules" (folder of the DPCD modules, relative to the preset;
                       default the preset folder itself),
                       "hci_slice_rows" (native, variable-rate photo HCI: send the HCI as
                       independently decodable slices of this many latent rows, even;
                       default: one HCI stream)}

An unknown key is an error naming it (a misspelt key would otherwise be ignored silently).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CAPTION_DETAILS", "check_caption_detail", "DecodeSettings", "Preset", "PRESET_FILE",
           "SIZES", "PRECISIONS", "check_guidance_interval", "parse_guidance_interval",
           "format_guidance_interval"]

PRESET_FILE = "preset.json"
SIZES = ("square", "native")
# What the captions a decoder was trained on state (``benchmark.scenes.Scene.describe``):
# "full" names every object's size, colour, texture, shape and position; "layout" only colour
# and position; "concise" colour and shape, as an image captioner writes ("a red star and a
# blue ring on a grassy background"), leaving size, texture and position to the other streams.
CAPTION_DETAILS = ("full", "layout", "concise")
PRECISIONS = ("fp32", "bf16")


def check_caption_detail(detail: str) -> str:
    """``detail`` if it is one of ``CAPTION_DETAILS``, else a ValueError naming them."""
    if detail not in CAPTION_DETAILS:
        raise ValueError(f"caption detail {detail!r} is not one of {CAPTION_DETAILS}")
    return detail


def check_guidance_interval(interval) -> tuple[float, float]:
    """``(lo, hi)`` floats with 0 <= lo <= hi <= 1, or a ValueError naming what was given."""
    try:
        if isinstance(interval, str):
            raise TypeError
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval={interval!r}; expected two numbers (lo, hi) "
                         "in [0, 1]") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"guidance_interval={interval!r}; expected 0 <= lo <= hi <= 1 "
                         "(fractions of the training timesteps)")
    return lo, hi


def parse_guidance_interval(text: str) -> tuple[float, float]:
    """``"lo:hi"`` (as command lines write it) → (lo, hi), checked."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        return check_guidance_interval(parts)
    except ValueError:
        raise ValueError(f"guidance interval {text!r}: expected lo:hi with 0 <= lo <= hi <= 1, "
                         "e.g. 0.3:1") from None


def format_guidance_interval(interval: tuple[float, float]) -> str:
    """(lo, hi) → ``"lo:hi"``, the form ``parse_guidance_interval`` reads."""
    return f"{interval[0]:g}:{interval[1]:g}"


@dataclass(frozen=True)
class DecodeSettings:
    """How DPCD draws an image.

    ``steps``: sampler steps (≥ 1). ``guidance_scale``: classifier-free guidance (1: none, half
    the work). ``guidance_interval``: ``(lo, hi)``, guide only at timesteps t/T within it.
    ``precision``: ``"fp32"`` or ``"bf16"`` (UNet and ControlNet under bfloat16 autocast).
    ``strength``: in (0, 1]; below 1 the sampler starts from the HCI noised to that fraction
    of the schedule (images or tiles without their HCI are drawn at 1).
    """

    steps: int = 20
    guidance_scale: float = 1.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    precision: str = "fp32"
    strength: float = 1.0

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps={self.steps!r}; expected an integer >= 1")
        g = self.guidance_scale
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
            raise ValueError(f"guidance_scale={g!r}; expected a finite number >= 0")
        object.__setattr__(self, "guidance_scale", float(g))
        object.__setattr__(self, "guidance_interval",
                           check_guidance_interval(self.guidance_interval))
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; expected one of {PRECISIONS}")
        s = self.strength
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 1:
            raise ValueError(f"strength={s!r}; expected a number in (0, 1]")
        object.__setattr__(self, "strength", float(s))

    def updated(self, **changes) -> "DecodeSettings":
        """These settings with ``changes`` applied; ``None`` values keep the current one."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown decode settings {sorted(unknown)}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def key(self) -> str:
        """A stable text form (cache keys, record columns)."""
        lo, hi = self.guidance_interval
        key = f"steps={self.steps}|cfg={self.guidance_scale:g}|interval={lo:g}:{hi:g}|" \
              f"{self.precision}"
        return key if self.strength == 1 else f"{key}|strength={self.strength:g}"


_DECODE_KEYS = ("steps", "guidance_scale", "guidance_interval", "precision", "strength")
_KEYS = {"preset", "resolution", "hci", "caption_model", "caption_detail", "caption_stream",
         "num_tokens", "size", "tile_overlap", "modules", "hci_slice_rows", *_DECODE_KEYS}
_HCI_KEYS = {"root", "rate_points", "default"}


@dataclass(frozen=True)
class Preset:
    """The contents of one ``preset.json`` (see the module docstring), checked.

    Paths (``hci_root``, ``modules``, ``caption_model``) are as written, relative to the preset
    folder unless absolute; :meth:`path` resolves them.
    """

    name: str
    resolution: int
    hci_root: str
    rate_points: tuple[str, ...]
    default_rate: str
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    caption_model: str | None = None
    caption_detail: str = "full"
    caption_stream: bool = True
    num_tokens: int | None = None
    size: str = "square"
    tile_overlap: int = 16
    modules: str = "."
    hci_slice_rows: int | None = None
    folder: Path | None = field(default=None, compare=False)

    def __post_init__(self):
        where = self._where()
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"{where}: preset={self.name!r}; expected a name")
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int) \
                or self.resolution < 8:
            raise ValueError(f"{where}: resolution={self.resolution!r}; expected an integer >= 8")
        if not self.rate_points or not all(isinstance(r, str) for r in self.rate_points):
            raise ValueError(f"{where}: hci.rate_points={self.rate_points!r}; expected a "
                             "non-empty list of names")
        object.__setattr__(self, "rate_points", tuple(self.rate_points))
        if self.default_rate not in self.rate_points:
            raise ValueError(f"{where}: hci.default={self.default_rate!r} is not one of "
                             f"{list(self.rate_points)}")
        if self.caption_detail not in CAPTION_DETAILS:
            raise ValueError(f"{where}: caption_detail={self.caption_detail!r}; expected one of "
                             f"{CAPTION_DETAILS}")
        if self.caption_detail != "full" and not self.caption_model:
            raise ValueError(f"{where} has caption_detail={self.caption_detail!r} but no "
                             "'caption_model': the shipped model is fitted to full captions. "
                             "Fit one with `python experiments/caption_bits.py --refit --detail "
                             f"{self.caption_detail} --model FOLDER/caption_model.json` and set "
                             "\"caption_model\": \"caption_model.json\"")
        if not isinstance(self.caption_stream, bool):
            raise ValueError(f"{where}: caption_stream={self.caption_stream!r}; expected true "
                             "or false")
        n = self.num_tokens
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"{where}: num_tokens={n!r}; expected an integer >= 0")
        if self.size not in SIZES:
            raise ValueError(f"{where}: size={self.size!r}; expected one of {SIZES}")
        t = self.tile_overlap
        if self.size == "native" and (isinstance(t, bool) or not isinstance(t, int) or t < 0
                                      or t >= self.resolution):
            raise ValueError(f"{where}: tile_overlap={t!r}; expected an integer in "
                             f"[0, {self.resolution})")

        k = self.hci_slice_rows
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 2 or k % 2
                              or self.size != "native"):
            raise ValueError(f"{where}: hci_slice_rows={k!r}; expected an even integer >= 2, "
                             "in a preset with size 'native'")

    def _where(self) -> str:
        return str(self.folder / PRESET_FILE) if self.folder is not None else PRESET_FILE

    def path(self, relative: str) -> Path:
        """``relative`` (as written in the file) resolved against the preset folder."""
        base = self.folder if self.folder is not None else Path(".")
        return (base / relative).resolve()

    # -- JSON --------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, cfg: dict, folder: str | Path | None = None) -> "Preset":
        """Check a ``preset.json`` dict; errors name the file (``folder``), the key and the
        value."""
        folder = Path(folder) if folder is not None else None
        where = str(folder / PRESET_FILE) if folder is not None else PRESET_FILE
        if not isinstance(cfg, dict):
            raise ValueError(f"{where} must hold a JSON object, not {type(cfg).__name__}")
        missing = [k for k in ("preset", "resolution", "hci") if k not in cfg]
        if missing:
            raise ValueError(f"{where} lacks {missing}")
        unknown = sorted(set(cfg) - _KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; allowed: {sorted(_KEYS)}")
        hci = cfg["hci"]
        if not isinstance(hci, dict) or "rate_points" not in hci:
            raise ValueError(f"{where}: hci={hci!r}; expected {{\"root\", \"rate_points\", "
                             "\"default\"}")
        unknown = sorted(set(hci) - _HCI_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown} in hci; allowed: "
                             f"{sorted(_HCI_KEYS)}")
        rates = hci["rate_points"]
        if not isinstance(rates, list) or not rates:
            raise ValueError(f"{where}: hci.rate_points={rates!r}; expected a non-empty list of "
                             "names")
        try:
            decode = DecodeSettings(**{k: cfg[k] for k in _DECODE_KEYS if k in cfg})
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        return cls(name=cfg["preset"], resolution=cfg["resolution"],
                   hci_root=str(hci.get("root", "hci")),
                   rate_points=tuple(rates), default_rate=hci.get("default", rates[0]),
                   decode=decode,
                   caption_model=cfg.get("caption_model"),
                   caption_detail=cfg.get("caption_detail", "full"),
                   caption_stream=cfg.get("caption_stream", True),
                   num_tokens=cfg.get("num_tokens"), size=cfg.get("size", "square"),
                   tile_overlap=cfg.get("tile_overlap", 16), modules=cfg.get("modules", "."),
                   hci_slice_rows=cfg.get("hci_slice_rows"), folder=folder)

    def to_json(self) -> dict:
        """The ``preset.json`` dict; keys at their default are left out (as the shipped files
        are written), except the decode settings, which are always written."""
        cfg = {"preset": self.name, "resolution": self.resolution}
        if self.size != "square":
            cfg.update(size=self.size, tile_overlap=self.tile_overlap)
        if self.modules != ".":
            cfg["modules"] = self.modules
        if self.hci_slice_rows is not None:
            cfg["hci_slice_rows"] = self.hci_slice_rows
        cfg["hci"] = {"root": self.hci_root, "rate_points": list(self.rate_points),
                      "default": self.default_rate}
        d = self.decode
        cfg.update(steps=d.steps, guidance_scale=d.guidance_scale)
        if d.guidance_interval != (0.0, 1.0):
            cfg["guidance_interval"] = list(d.guidance_interval)
        cfg["precision"] = d.precision
        if d.strength != 1:
            cfg["strength"] = d.strength
        for key, default in (("caption_model", None), ("caption_detail", "full"),
                             ("caption_stream", True), ("num_tokens", None)):
            if getattr(self, key) != default:
                cfg[key] = getattr(self, key)
        return cfg

    @classmethod
    def load(cls, folder: str | Path) -> "Preset":
        """Read and check ``folder/preset.json``."""
        folder = Path(folder)
        try:
            cfg = json.loads((folder / PRESET_FILE).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{folder / PRESET_FILE} is not valid JSON ({e})") from None
        return cls.from_json(cfg, folder)

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/preset.json`` (the folder is created); returns the file."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / PRESET_FILE
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    def replace(self, **changes) -> "Preset":
        """A checked copy with ``changes`` (dataclass fields)."""
        return dataclasses.replace(self, **changes)
