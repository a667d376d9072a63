"""Image source: a data set, an arrival process, and an encoder cache.

* Data sets: :class:`SceneSource` (the procedural scenes of :mod:`benchmark.scenes`, with
  exact ground truth for the judge and their captions as the caption stream) and
  :class:`FolderSource` (any folder of images; no caption stream, no scene ground truth).
* Arrivals: ``"periodic"`` (one image every ``interval`` slots, from time 0) or ``"poisson"``
  (exponential inter-arrival times of mean ``interval`` slots), drawn from the run's seed.
* :class:`EncodeCache`: each image is encoded once per codec and kept in memory and, with a
  ``folder``, on disk as ``.sdg`` containers (written atomically), so every point of a sweep,
  on any worker, reuses the same bits.

Image ``i`` of a run with seed ``s`` is data-set item ``s * num_images + i`` (folders wrap
around), so seeds see different images and policies at the same seed see the same ones.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .validation import fail

__all__ = ["SourceItem", "SceneSource", "FolderSource", "make_source", "check_dataset",
           "arrival_times", "EncodeCache", "codec_cache_key", "ARRIVALS"]

ARRIVALS = ("periodic", "poisson")


@dataclass
class SourceItem:
    """One data-set item: uint8 (H, W, 3) image, caption text or None, scene or None."""

    index: int
    image: np.ndarray
    caption: Optional[str]
    scene: Any = None

    @property
    def key(self) -> str:
        return str(self.index)


class SceneSource:
    """Procedural scenes ``benchmark.scenes.generate(index, seed, size)``."""

    def __init__(self, size: int = 64, seed: int = 0):
        if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 1024:
            raise ValueError(f"dataset.size = {size!r} is not supported; allowed: an integer in "
                             f"[16, 1024]")
        self.size, self.seed = size, int(seed)

    @property
    def key(self) -> str:
        return f"scenes-s{self.seed}-{self.size}px"

    def __getitem__(self, index: int) -> SourceItem:
        from benchmark.scenes import generate

        image, scene = generate(int(index), seed=self.seed, size=self.size)
        return SourceItem(int(index), image, scene.caption, scene)


class FolderSource:
    """Images of a folder in name order (index wraps around)."""

    def __init__(self, path: str | Path):
        from codec.image_io import list_images

        self.path = Path(path)
        self.paths = list_images(self.path)
        if not self.paths:
            raise ValueError(f"dataset.path = {str(path)!r} holds no images")

    @property
    def key(self) -> str:
        h = hashlib.blake2b(str(self.path.resolve()).encode(), digest_size=4).hexdigest()
        return f"folder-{self.path.name}-{h}"

    def __getitem__(self, index: int) -> SourceItem:
        from codec.image_io import load_rgb

        p = self.paths[int(index) % len(self.paths)]
        txt = p.with_suffix(".txt")
        cap = txt.read_text().strip() if txt.is_file() else None
        return SourceItem(int(index), load_rgb(p), cap, None)


_DATASET_KEYS = {"scenes": ("kind", "size", "seed"), "folder": ("kind", "path")}


def check_dataset(spec, key: str = "dataset") -> None:
    """Validate a data-set spec; errors name the key (``dataset.size = 'x' ...``).

    ``{"kind": "scenes", "size": 16..1024, "seed": int >= 0}`` (kind defaults to scenes) or
    ``{"kind": "folder", "path": an existing folder with images}``."""
    if not isinstance(spec, dict):
        fail(key, spec, "a table with kind = 'scenes' (size, seed) or 'folder' (path)")
    kind = spec.get("kind", "scenes")
    if kind not in _DATASET_KEYS:
        fail(f"{key}.kind", kind, ", ".join(_DATASET_KEYS))
    allowed = _DATASET_KEYS[kind]
    for k in spec:
        if k not in allowed:
            raise ValueError(f"unknown key {key}.{k} for dataset kind {kind!r}; allowed keys: "
                             f"{', '.join(allowed)}")
    if kind == "scenes":
        size, seed = spec.get("size", 64), spec.get("seed", 0)
        if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 1024:
            fail(f"{key}.size", size, "an integer in [16, 1024] (pixels)")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            fail(f"{key}.seed", seed, "an integer >= 0")
        return
    if "path" not in spec:
        raise ValueError(f"missing key {key}.path; a 'folder' dataset needs the images' folder")
    path = spec["path"]
    if not isinstance(path, (str, Path)) or not Path(path).is_dir():
        fail(f"{key}.path", str(path) if isinstance(path, Path) else path,
             "an existing folder of images")


def make_source(spec: dict):
    """``{"kind": "scenes", "size": 64, "seed": 0}`` or ``{"kind": "folder", "path": ...}``."""
    check_dataset(spec)
    spec = dict(spec)
    kind = spec.pop("kind", "scenes")
    if kind == "scenes":
        return SceneSource(**spec)
    if kind == "folder":
        return FolderSource(**spec)
    raise ValueError(f"dataset.kind = {kind!r} is not supported; allowed: scenes, folder")


def arrival_times(kind: str, num_images: int, interval: float, rng: np.random.Generator):
    """Arrival times [slots] of ``num_images`` images (first at 0)."""
    if kind not in ARRIVALS:
        raise ValueError(f"arrival = {kind!r} is not supported; allowed: {', '.join(ARRIVALS)}")
    if kind == "periodic":
        return np.arange(num_images, dtype=float) * interval
    gaps = rng.exponential(interval, size=num_images)
    gaps[0] = 0.0
    return np.cumsum(gaps)


def _caption_for(codec, item: SourceItem) -> Optional[str]:
    """The caption a sender of ``codec`` writes for ``item``: None for a codec that sends no
    caption stream (``SDGIC.caption_stream`` False), a scene described at the detail the
    codec's decoder was trained on (``SDGIC.caption_detail``), else ``item.caption``."""
    if not getattr(codec, "caption_stream", True):
        return None
    detail = getattr(codec, "caption_detail", "full")
    if item.scene is not None and detail != "full" and item.caption is not None:
        return item.scene.describe(detail)
    return item.caption


def codec_cache_key(codec) -> str:
    """What distinguishes a codec's encodings: its preset, rate point, token count, caption
    detail (when not "full") and fingerprint (:func:`sim.codec_api.codec_fingerprint`:
    retrained weights get a new key, so old encoded files are never reused)."""
    from .codec_api import codec_fingerprint

    parts = [str(getattr(codec, "preset", type(codec).__name__))]
    for attr in ("rate", "num_tokens", "caption_detail"):
        v = getattr(codec, attr, None)
        if v is not None and not (attr == "caption_detail" and v == "full"):
            parts.append(f"{attr}={v}")
    fp = codec_fingerprint(codec)
    if fp:
        parts.append(fp[:16])
    return "-".join(parts).replace("/", "_").replace(":", "_")


class EncodeCache:
    """Encoded images per (codec, data set, item); in memory, and on disk with ``folder``."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else None
        self._mem: dict = {}
        self.encoded = 0   # encodings actually run (not served from a cache)

    def get(self, codec, source, item: SourceItem, budget_bits: Optional[int] = None):
        """``item`` encoded by ``codec`` (to ``budget_bits`` for a codec that codes to a
        budget, see :mod:`sim.bit_budget`)."""
        from codec.container import ContainerError, EncodedImage

        key = (codec_cache_key(codec), source.key,
               item.key if budget_bits is None else f"{item.key}-b{int(budget_bits)}")
        if key in self._mem:
            return self._mem[key]
        path = None
        if self.folder is not None:
            path = self.folder / key[0] / key[1] / f"{key[2]}.sdg"
            if path.is_file():
                try:
                    enc = EncodedImage.load(path)
                    self._mem[key] = enc
                    return enc
                except ContainerError:
                    pass  # a damaged cache file is re-encoded
        kw = {} if budget_bits is None else {"budget_bits": int(budget_bits)}
        enc = codec.encode(item.image, caption=_caption_for(codec, item), **kw)
        self.encoded += 1
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            enc.save(tmp)
            os.replace(tmp, path)
        self._mem[key] = enc
        return enc
