"""What the simulator needs from a codec, and how a run names one.

The simulator carries any codec that fits :class:`Codec` (duck typed): SDGIC
(``codec.sdgic.SDGIC``) or another. A run names its codec with a string:

* a preset name or preset folder (``"scenes-64"``, ``"path/to/preset"``):
  ``SDGIC.from_pretrained(spec)``;
* ``"package.module:factory"``: ``factory()`` is called (a class or a function), e.g.
  ``"sim.baseline_codec:BaselineCodec"``;
* a baseline (:func:`baseline_codec`): ``"jpeg"``, ``"webp"``, ``"avif"`` (Pillow at a bit
  budget, :class:`codec.classical.ClassicalCodec`), ``"hci"`` (the ``scenes-64`` preset's HCI
  decoded alone, :class:`codec.hci_alone.HCIAlone`) or ``"hci@PRESET"`` (another preset's
  HCI, or a folder of HCI rate points such as ``hci@codec/weights/hci-photos``, the photo
  HCI at the image's own size).
  These code each image to the run's bit budget (:mod:`sim.bit_budget`).

Loaded codecs are cached per process (a sweep worker loads each once), per fingerprint.

Fingerprints (:func:`codec_fingerprint`) tell apart codecs with the same name but different
weights; they enter point ids and the encoded-image cache key, so retrained weights never reuse
old results or old encoded files:

* an SDGIC preset (name or folder): hash of ``preset.json`` and ``model_card.json`` contents
  and of the name, size and modification time of every other file of the preset folder and of
  its HCI rate-point folders (no model is loaded);
* a codec object: its ``fingerprint`` attribute when it has one; an SDGIC object loaded by
  :func:`load_codec` from a preset: the preset's fingerprint; another SDGIC object: hash of its
  preset, model card and module weights; anything else: its class name;
* ``"package.module:factory"``: the fingerprint of the object the factory makes.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import warnings
from pathlib import Path
from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

__all__ = ["Codec", "load_codec", "baseline_codec", "is_baseline", "decode_images", "codec_fingerprint", "preset_fingerprint"]


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
_FP_ATTR = "_sim_fingerprint"


#: factory modules that moved; specs naming the old module still load (with a warning)
MOVED_MODULES = {"experiments.sim_baseline_codec": "sim.baseline_codec"}


def _is_factory(spec: str) -> bool:
    return ":" in spec and not spec.startswith(("/", ".")) and "/" not in spec.split(":")[0]


def is_baseline(spec) -> bool:
    """Whether ``spec`` names a baseline codec (see the module docstring)."""
    from codec.classical import CLASSICAL_FORMATS

    return isinstance(spec, str) and (spec in CLASSICAL_FORMATS or spec == "hci"
                                      or spec.startswith("hci@"))


def baseline_codec(spec: str):
    """The baseline codec object ``spec`` names (see the module docstring)."""
    from codec.classical import CLASSICAL_FORMATS, ClassicalCodec
    from codec.hci_alone import HCIAlone

    if spec in CLASSICAL_FORMATS:
        return ClassicalCodec(spec)
    if spec == "hci":
        return HCIAlone("scenes-64")
    if spec.startswith("hci@") and len(spec) > 4:
        try:
            return HCIAlone(spec[4:])
        except (FileNotFoundError, KeyError, ValueError) as e:
            raise ValueError(f"codec = {spec!r}: {e}") from None
    raise ValueError(f"codec = {spec!r} is not a baseline; allowed: "
                     f"{', '.join(CLASSICAL_FORMATS)}, hci, hci@PRESET")


def _hash(obj) -> str:
    return hashlib.blake2b(json.dumps(obj, sort_keys=True, default=str).encode(),
                           digest_size=12).hexdigest()


def preset_fingerprint(folder: str | Path) -> str:
    """Fingerprint of an SDGIC preset folder without loading it (see the module docstring)."""
    folder = Path(folder)
    meta = {}
    for name in ("preset.json", "model_card.json"):
        p = folder / name
        meta[name] = p.read_text() if p.is_file() else None
    roots = [("preset", folder)]
    shared = []          # files outside those folders: weights shared by HCI rate points
    try:
        cfg = json.loads(meta["preset.json"] or "{}")
        if cfg.get("modules", ".") != ".":         # DPCD modules of another folder
            roots.append(("modules", (folder / cfg["modules"]).resolve()))
        hroot = (folder / cfg["hci"].get("root", "hci")).resolve()
        roots += [(f"hci/{r}", hroot / r) for r in cfg["hci"]["rate_points"]]
        for r in cfg["hci"]["rate_points"]:
            w = json.loads((hroot / r / "config.json").read_text()).get("weights")
            if w and not (hroot / r / w).resolve().is_relative_to(hroot / r):
                shared.append((f"hci/{r}", (hroot / r / w).resolve()))
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        pass
    files = []
    for label, root in roots:
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and not (label == "preset" and p.name in meta
                                    and p.parent == folder):
                st = p.stat()
                files.append((label, str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    for label, p in shared:
        if p.is_file():
            st = p.stat()
            files.append((label, p.name, st.st_size, st.st_mtime_ns))
    return _hash({"meta": meta, "files": files})


def _object_fingerprint(obj) -> str:
    fp = getattr(obj, "fingerprint", None)
    if callable(fp):
        fp = fp()
    if fp is not None:
        return str(fp)
    fp = getattr(obj, "__dict__", {}).get(_FP_ATTR)
    if fp is not None:
        return fp
    import torch

    mods = {k: v for k, v in sorted(vars(obj).items()) if isinstance(v, torch.nn.Module)} \
        if hasattr(obj, "__dict__") else {}
    if not mods:
        return f"{type(obj).__module__}.{type(obj).__qualname__}"
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps([type(obj).__qualname__, getattr(obj, "preset", None),
                         getattr(obj, "card", None)], sort_keys=True, default=str).encode())
    for name, m in mods.items():
        if name == "text_encoder":      # frozen pretrained encoder: shipped, not trained here
            continue
        for k, t in m.state_dict().items():
            h.update(f"{name}.{k}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    fp = h.hexdigest()
    _remember(obj, fp)
    return fp


def _remember(obj, fp: str) -> None:
    try:
        obj.__dict__[_FP_ATTR] = fp
    except (AttributeError, TypeError):
        pass


def codec_fingerprint(codec) -> str | None:
    """What tells this codec's weights apart (see the module docstring); ``None`` for a
    preset spec that does not resolve to a folder (it fails when loaded)."""
    if not isinstance(codec, str):
        return _object_fingerprint(codec)
    if _is_factory(codec) or is_baseline(codec):
        return _object_fingerprint(load_codec(codec))
    from codec.sdgic import preset_folder

    try:
        folder = preset_folder(codec)
    except (FileNotFoundError, OSError):
        return None
    return preset_fingerprint(folder)


def load_codec(spec) -> Codec:
    """A codec object from a spec string (see the module docstring); objects pass through."""
    if not isinstance(spec, str):
        if not isinstance(spec, Codec):
            raise TypeError(f"codec {spec!r} lacks preset/encode/decode; see sim.codec_api.Codec")
        return spec
    key = spec if _is_factory(spec) or is_baseline(spec) else (spec, codec_fingerprint(spec))
    if key not in _CODECS:
        if is_baseline(spec):
            obj = baseline_codec(spec)
        elif _is_factory(spec):
            mod, _, attr = spec.partition(":")
            if mod in MOVED_MODULES:   # experiment files written before the module moved
                warnings.warn(f"codec = {spec!r}: {mod} is now {MOVED_MODULES[mod]}; update "
                              "the experiment file", DeprecationWarning, stacklevel=2)
                mod = MOVED_MODULES[mod]
            try:
                factory = getattr(importlib.import_module(mod), attr)
            except (ImportError, AttributeError) as e:
                raise ValueError(f"codec = {spec!r} cannot be loaded ({e}); use a preset name, "
                                 f"a preset folder or 'package.module:factory'") from None
            obj = factory()
        else:
            from codec.sdgic import SDGIC

            try:
                obj = SDGIC.from_pretrained(spec)
            except FileNotFoundError as e:
                raise FileNotFoundError(f"{e}; or a baseline codec: jpeg, webp, avif, hci, "
                                        f"hci@PRESET") from None
            if key[1] is not None:
                _remember(obj, key[1])
        if not isinstance(obj, Codec):
            raise TypeError(f"codec = {spec!r} gave a {type(obj).__name__}, which lacks "
                            f"preset/encode/decode")
        _CODECS[key] = obj
    return _CODECS[key]


def _takes(fn, name: str) -> bool:
    """Whether ``fn`` accepts keyword ``name`` (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def decode_images(codec, encoded: list, seeds: list[int], batch_size: int = 16,
                  settings: Optional[dict] = None) -> list[np.ndarray]:
    """Decode ``encoded[i]`` with ``seeds[i]``, in batches if the codec has ``decode_batch``.
    ``settings`` (``steps``, ``guidance_scale``, ``guidance_interval``, ``precision``; absent:
    the codec's default, see ``SimConfig.decode_settings``) reach the codec's decode where it
    takes them; a codec that does not is decoded with its own settings."""
    opts = dict(settings or {})
    batch = getattr(codec, "decode_batch", None)
    out: list = []
    if batch is not None:
        kw = {k: v for k, v in opts.items() if _takes(batch, k)}
        for i in range(0, len(encoded), batch_size):
            out += list(batch(encoded[i:i + batch_size], seeds[i:i + batch_size], **kw))
        return out
    kw = {k: v for k, v in opts.items() if _takes(codec.decode, k)}
    return [codec.decode(e, seed=s, **kw) for e, s in zip(encoded, seeds)]
