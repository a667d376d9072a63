"""What the simulator needs from a codec, and how a run names one.

The simulator carries any codec that fits :class:`Codec` (duck typed): SDGIC
(``codec.sdgic.SDGIC``) or another. A run names its codec with a string:

* a preset name or preset folder (``"scenes-64"``, ``"path/to/preset"``):
  ``SDGIC.from_pretrained(spec)``;
* ``"package.module:factory"``: ``factory()`` is called (a class or a function), e.g.
  ``"experiments.sim_baseline_codec:BaselineCodec"``.

Loaded codecs are cached per process (a sweep worker loads each once).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

__all__ = ["Codec", "load_codec", "decode_images"]


@runtime_checkable
class Codec(Protocol):
    """A codec the simulator can carry.

    ``encode(image uint8 (H, W, 3), caption=str | None) -> EncodedImage`` with the streams
    ``caption``, ``hci``, ``rsrt``; ``decode(encoded, seed=0) -> uint8 (H, W, 3)`` from any
    subset of streams and tokens. Optional: ``decode_batch(list, seeds) -> list`` (used when
    present), a ``steps`` keyword on both.
    """

    preset: str

    def encode(self, image: np.ndarray, caption: Optional[str] = None) -> Any: ...

    def decode(self, encoded: Any, seed: int = 0) -> np.ndarray: ...


_CODECS: dict = {}


def load_codec(spec) -> Codec:
    """A codec object from a spec string (see the module docstring); objects pass through."""
    if not isinstance(spec, str):
        if not isinstance(spec, Codec):
            raise TypeError(f"codec {spec!r} lacks preset/encode/decode; see sim.codec_api.Codec")
        return spec
    if spec not in _CODECS:
        if ":" in spec and not spec.startswith(("/", ".")) and "/" not in spec.split(":")[0]:
            mod, _, attr = spec.partition(":")
            try:
                factory = getattr(importlib.import_module(mod), attr)
            except (ImportError, AttributeError) as e:
                raise ValueError(f"codec = {spec!r} cannot be loaded ({e}); use a preset name, "
                                 f"a preset folder or 'package.module:factory'") from None
            obj = factory()
        else:
            from codec.sdgic import SDGIC

            obj = SDGIC.from_pretrained(spec)
        if not isinstance(obj, Codec):
            raise TypeError(f"codec = {spec!r} gave a {type(obj).__name__}, which lacks "
                            f"preset/encode/decode")
        _CODECS[spec] = obj
    return _CODECS[spec]


def _takes(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def decode_images(codec, encoded: list, seeds: list[int], steps: Optional[int] = None,
                  batch_size: int = 16) -> list[np.ndarray]:
    """Decode ``encoded[i]`` with ``seeds[i]``, in batches if the codec has ``decode_batch``."""
    kw = {"steps": steps} if steps is not None else {}
    batch = getattr(codec, "decode_batch", None)
    out: list = []
    if batch is not None:
        if kw and not _takes(batch, "steps"):
            kw = {}
        for i in range(0, len(encoded), batch_size):
            out += list(batch(encoded[i:i + batch_size], seeds[i:i + batch_size], **kw))
        return out
    if kw and not _takes(codec.decode, "steps"):
        kw = {}
    return [codec.decode(e, seed=s, **kw) for e, s in zip(encoded, seeds)]
