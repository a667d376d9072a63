"""What each subset of a codec's streams is worth: the measured table a semantic policy reads.

A table holds, per HCI rate point and RSRT token count, the mean of one metric (judge
consistency for scenes, PSNR or Inception similarity for photos; higher is better) over
held-out images for every subset of the streams that arrives, and the mean bits of each
stream. It is data: a preset ships one as ``subset_table.json`` beside its ``preset.json``,
made by ``sdgic subset-table`` (:func:`measure_subset_table`); the file records the command.

    {"format": "sdgic-subset-table", "version": 1, "preset": ..., "metric": ...,
     "command": ..., "commit": ..., "images": N, "data": ..., "decode": {...},
     "points": [{"rate": "mid", "tokens": 8, "bits": {"caption": .., "hci": .., "rsrt": ..},
                 "value": {"none": .., "caption": .., ..., "caption+hci+rsrt": ..},
                 "ci95": {...}}]}

Subset names join the streams in ``STREAMS`` order with ``+``; ``"none"`` is nothing.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["STREAMS", "SubsetTable", "subset_name", "TABLE_FILE", "FORMAT",
           "measure_subset_table", "table_for_codec"]

STREAMS = ("caption", "hci", "rsrt")
TABLE_FILE = "subset_table.json"
FORMAT = "sdgic-subset-table"
SUBSETS = tuple(frozenset(c) for r in range(len(STREAMS) + 1)
                for c in itertools.combinations(STREAMS, r))


def subset_name(streams) -> str:
    """``{"hci", "caption"}`` → ``"caption+hci"``; the empty set → ``"none"``."""
    s = set(streams)
    unknown = s - set(STREAMS)
    if unknown:
        raise ValueError(f"unknown streams {sorted(unknown)}; expected some of {STREAMS}")
    return "+".join(x for x in STREAMS if x in s) or "none"


@dataclass(frozen=True)
class SubsetTable:
    """A measured subset table (see the module docstring).

    ``points``: ``{(rate, tokens): {"bits": {stream: bits}, "value": {subset name: metric},
    "ci95": {subset name: half-width}}}``.
    """

    preset: str
    metric: str
    points: dict
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.points:
            raise ValueError("a subset table needs at least one (rate, tokens) point")
        for key, p in self.points.items():
            missing = [subset_name(s) for s in SUBSETS
                       if subset_name(s) not in p["value"]]
            if missing:
                raise ValueError(f"subset table of {self.preset!r} at {key}: no value for "
                                 f"subsets {missing}")

    def keys(self) -> list[tuple[str, int]]:
        return list(self.points)

    def point(self, rate: str | None = None, tokens: int | None = None) -> dict:
        """The entry at (``rate``, ``tokens``); None picks the only value present (or the
        largest token count)."""
        keys = [k for k in self.points if (rate is None or k[0] == rate)
                and (tokens is None or k[1] == tokens)]
        if not keys:
            raise KeyError(f"subset table of {self.preset!r} has no point rate={rate!r} "
                           f"tokens={tokens!r}; it has {self.keys()}")
        if rate is None and len({k[0] for k in keys}) > 1:
            raise KeyError(f"subset table of {self.preset!r} has several rate points "
                           f"{sorted({k[0] for k in keys})}: name one")
        return self.points[max(keys, key=lambda k: k[1])]

    def values(self, rate: str | None = None, tokens: int | None = None) -> np.ndarray:
        """float (8,): the metric of each subset, indexed by the bit mask
        ``caption·1 + hci·2 + rsrt·4`` of the streams that arrived."""
        v = self.point(rate, tokens)["value"]
        out = np.zeros(1 << len(STREAMS))
        for mask in range(len(out)):
            out[mask] = v[subset_name(s for i, s in enumerate(STREAMS) if mask >> i & 1)]
        return out

    # -- files -------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": 1, "preset": self.preset, "metric": self.metric,
                **self.provenance,
                "points": [{"rate": r, "tokens": t, **p} for (r, t), p in self.points.items()]}

    @classmethod
    def from_json(cls, d: dict, where: str = "subset table") -> "SubsetTable":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"{where} is not an {FORMAT} file")
        if d.get("version") != 1:
            raise ValueError(f"{where} has version {d.get('version')!r}; this reader knows 1")
        prov = {k: v for k, v in d.items()
                if k not in ("format", "version", "preset", "metric", "points")}
        points = {(p["rate"], int(p["tokens"])): {k: v for k, v in p.items()
                                                  if k not in ("rate", "tokens")}
                  for p in d["points"]}
        return cls(d["preset"], d["metric"], points, prov)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SubsetTable":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e})") from None
        return cls.from_json(d, str(path))


def table_for_codec(codec) -> SubsetTable:
    """The subset table a codec provides: its ``subset_table`` attribute (a table or a path),
    else ``subset_table.json`` in an SDGIC preset's folder; a clear error when it has none."""
    own = getattr(codec, "subset_table", None)
    if isinstance(own, SubsetTable):
        return own
    if isinstance(own, (str, Path)):
        return SubsetTable.load(own)
    folder = getattr(codec, "folder", None)
    if folder is not None and (Path(folder) / TABLE_FILE).is_file():
        return SubsetTable.load(Path(folder) / TABLE_FILE)
    name = getattr(codec, "preset", type(codec).__name__)
    raise ValueError(f"codec {name!r} has no subset table (what each received stream subset is "
                     f"worth), which the semantic policy needs; measure one with `sdgic "
                     f"subset-table --preset PRESET` (it writes {TABLE_FILE} into the preset "
                     "folder) or give the codec a `subset_table` attribute")


def measure_subset_table(codec, images: np.ndarray, captions: list, score, rates=None,
                         token_counts=None, steps: int | None = None, batch: int = 16,
                         metric: str = "consistency", provenance: dict | None = None
                         ) -> SubsetTable:
    """Decode every stream subset of ``images`` (uint8 (N, H, W, 3), ``captions`` as a
    sender makes them) at each rate point × token count and score it.

    ``score(recs) -> float (N,)``: the metric of each reconstruction (higher is better).
    Decoding uses per-image seeds (:func:`benchmark.codec_eval.decode_in_batches`), so a
    table does not depend on the batch size.
    """
    from benchmark.codec_eval import decode_in_batches
    from benchmark.stats import ci95

    rates = list(rates or codec.hci)
    token_counts = list(token_counts or [codec.tokens_sent])
    steps = steps or codec.steps
    points = {}
    for rate in rates:
        for k in token_counts:
            enc = [codec.encode(img, caption=c, rate=rate, num_tokens=k)
                   for img, c in zip(images, captions)]
            has = [s for s in STREAMS if enc[0].has(s)]
            value, half = {}, {}
            for sub in SUBSETS:
                name = subset_name(sub)
                if not sub <= set(has):   # a stream the codec does not send never arrives
                    continue
                es = [e.without(*[s for s in has if s not in sub]) for e in enc]
                recs = decode_in_batches(codec, es, steps, batch, f"{rate} k={k} {name}")
                v = np.asarray(score(recs), float)
                value[name], half[name] = float(v.mean()), float(ci95(v))
            for sub in SUBSETS:   # subsets with unsent streams are worth what arrives of them
                name = subset_name(sub)
                if name not in value:
                    value[name] = value[subset_name(sub & set(has))]
                    half[name] = half[subset_name(sub & set(has))]
            bits = {s: float(np.mean([e.stream_bits(s) for e in enc])) for s in STREAMS}
            points[(rate, int(k))] = {"bits": bits, "value": value, "ci95": half}
    return SubsetTable(codec.preset, metric, points,
                       {**(provenance or {}), "images": int(len(images)),
                        "decode": {"steps": int(steps), **{k: v for k, v in (
                            ("guidance_scale", codec.guidance_scale),
                            ("guidance_interval", list(codec.guidance_interval)),
                            ("precision", codec.precision))}}})
