"""Captioners: where the caption stream's text comes from.

- ``SceneCaptioner``: a small network trained here (``sdgic train captioner``) that reads a
  procedural scene's attributes from the image and writes the scene caption. It is not the
  judge (the referee): another architecture, input size, seed and training scenes.
- ``TransformersCaptioner``: any transformers image-to-text model in a local folder (BLIP,
  GIT, …), for users who have one; nothing is downloaded.
- ``sidecar_caption``: the text of ``IMAGE.txt`` beside an image.
- none: no caption stream (``make_captioner("none")`` returns None).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from benchmark.judge import to_float_tensor
from benchmark.scenes import (COLOUR_NAMES, SHAPES, SIZES, TEXTURES, Scene, SceneObject,
                              _photo_bank, check_caption_detail)
from codec.dpcd.rsrt import scene_feature_stack

DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "captioner"
_CELL_HEADS = {"shape": SHAPES, "colour": COLOUR_NAMES, "size": SIZES, "texture": TEXTURES}
CELL_OUTPUTS = 1 + sum(len(v) for v in _CELL_HEADS.values())   # present + each head's classes


def cell_logits(out: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-cell outputs (B, 9, ``CELL_OUTPUTS``) → logits ``present`` (B, 9), ``shape``
    (B, 9, 8), ``colour`` (B, 9, 8), ``size`` (B, 9, 2), ``texture`` (B, 9, 4)."""
    logits = {"present": out[..., 0]}
    i = 1
    for name, classes in _CELL_HEADS.items():
        logits[name] = out[..., i:i + len(classes)]
        i += len(classes)
    return logits


def background_words() -> tuple[str, ...]:
    """Every background word a scene caption can use (plain, shaded, mottled, photo words)."""
    return ("plain", "shaded", "mottled") + tuple(w for w, _ in _photo_bank())


def _background_kind(word: str) -> str:
    return {"plain": "plain", "shaded": "gradient", "mottled": "noise"}.get(word, "photo")


class CaptionerNet(ModelMixin, ConfigMixin):
    """Scene attribute reader for captions.

    Input: ``images`` float (B, 3, H, W) in [0, 1] (resized to ``input_size``).
    Output: logits ``present`` (B, 9), ``shape`` (B, 9, 8), ``colour`` (B, 9, 8), ``size``
    (B, 9, 2), ``texture`` (B, 9, 4), ``background_word`` (B, num_words).
    """

    @register_to_config
    def __init__(self, width: int = 40, input_size: int = 64, num_words: int = 9):
        super().__init__()
        w = width
        # (64² input → 3w × 16 × 16; the token encoder's scene backbone is this same stack)
        self.features = scene_feature_stack(w)
        self.cell_head = nn.Sequential(nn.Linear(9 * w, 4 * w), nn.SiLU(),
                                       nn.Linear(4 * w, CELL_OUTPUTS))
        self.word_head = nn.Linear(6 * w, num_words)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W); got shape {tuple(images.shape)}")
        s = self.config.input_size
        if images.shape[-2:] != (s, s):
            images = F.interpolate(images, size=(s, s), mode="bilinear", antialias=True,
                                   align_corners=False)
        f = self.features(images * 2 - 1)
        glob = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)                 # (B, 6w)
        cells = F.adaptive_max_pool2d(f, 3).flatten(2).transpose(1, 2)        # (B, 9, 3w)
        cells = torch.cat([cells, glob[:, None].expand(-1, 9, -1)], -1)       # (B, 9, 9w)
        logits = cell_logits(self.cell_head(cells))
        logits["background_word"] = self.word_head(glob)
        return logits


def captioner_targets(scenes: list[Scene]) -> dict[str, torch.Tensor]:
    """``present`` float (B, 9); class indices (B, 9) (-100 where empty); ``background_word``."""
    words = background_words()
    b = len(scenes)
    t = {"present": torch.zeros(b, 9)}
    t.update({k: torch.full((b, 9), -100, dtype=torch.long) for k in _CELL_HEADS})
    t["background_word"] = torch.tensor([words.index(s.background_word) for s in scenes])
    for i, sc in enumerate(scenes):
        for o in sc.objects:
            t["present"][i, o.cell] = 1.0
            for k, classes in _CELL_HEADS.items():
                t[k][i, o.cell] = classes.index(getattr(o, k))
    return t


def attribute_targets(logits: dict) -> dict[str, torch.Tensor]:
    """``captioner_targets`` read from ``CaptionerNet`` logits instead of ground truth: what the
    captioner sees in an image (cells with ``present`` logit > 0 are objects)."""
    present = logits["present"] > 0
    t = {"present": present.float()}
    for k in _CELL_HEADS:
        t[k] = torch.where(present, logits[k].argmax(-1), torch.full_like(present, -100,
                                                                           dtype=torch.long))
    t["background_word"] = logits["background_word"].argmax(-1)
    return t


def captioner_loss(logits: dict, targets: dict) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits["present"], targets["present"])
    for k in _CELL_HEADS:
        loss = loss + F.cross_entropy(logits[k].flatten(0, 1), targets[k].flatten(),
                                      ignore_index=-100)
    return loss + F.cross_entropy(logits["background_word"], targets["background_word"])


class SceneCaptioner:
    """Image → scene caption with a trained ``CaptionerNet`` (default: the shipped weights).

    Call it on uint8 (H, W, 3) / (B, H, W, 3) arrays or float (B, 3, H, W) tensors.
    ``detail``: how much the caption states (``"full"`` or ``"layout"``, see
    ``benchmark.scenes.Scene.describe``).
    """

    def __init__(self, path: str | Path | None = None, detail: str = "full"):
        self.detail = check_caption_detail(detail)
        path = Path(path) if path is not None else DEFAULT_WEIGHTS
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no captioner weights in {path}; train them with "
                                    "`sdgic train captioner --out DIR`")
        self.model = CaptionerNet.from_pretrained(path).eval()
        self.words = background_words()

    @torch.no_grad()
    def scenes(self, images) -> list[Scene]:
        a = images if isinstance(images, torch.Tensor) else np.asarray(images)
        if not isinstance(a, torch.Tensor) and a.ndim == 3:
            a = a[None]
        # One transfer of the logits: the per-cell argmaxes below would each sync a GPU.
        lg = {k: v.float().cpu() for k, v in self.model(to_float_tensor(a)).items()}
        present = lg["present"] > 0
        out = []
        for i in range(len(present)):
            cells = [c for c in range(9) if present[i, c]]
            if not cells:  # a caption names at least one object: the likeliest cell
                cells = [int(lg["present"][i].argmax())]
            objs = tuple(SceneObject(*(classes[int(lg[k][i, c].argmax())]
                                       for k, classes in (("shape", SHAPES),
                                                          ("colour", COLOUR_NAMES),
                                                          ("size", SIZES))),
                                     cell=c, texture=TEXTURES[int(lg["texture"][i, c].argmax())])
                         for c in cells)
            word = self.words[int(lg["background_word"][i].argmax())]
            out.append(Scene(objs, _background_kind(word), word))
        return out

    def __call__(self, images, detail: str | None = None) -> list[str] | str:
        """Captions at ``detail`` (None: this captioner's ``detail``)."""
        detail = self.detail if detail is None else check_caption_detail(detail)
        single = not isinstance(images, torch.Tensor) and np.asarray(images).ndim == 3
        caps = [s.describe(detail) for s in self.scenes(images)]
        return caps[0] if single else caps


class TransformersCaptioner:
    """Any transformers image-to-text model from a local folder (BLIP, GIT, …).

    Loads ``AutoProcessor`` and ``AutoModelForImageTextToText`` (or
    ``AutoModelForVision2Seq`` on older transformers) from ``path``; generates up to
    ``max_new_tokens`` tokens greedily. Nothing is downloaded.
    """

    def __init__(self, path: str | Path, max_new_tokens: int = 30):
        import os

        import transformers

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"captioner folder {path} has no config.json; point it at "
                                    "a local transformers image-to-text model (e.g. BLIP)")
        auto = getattr(transformers, "AutoModelForImageTextToText", None) or \
            getattr(transformers, "AutoModelForVision2Seq")
        self.processor = transformers.AutoProcessor.from_pretrained(path)
        self.model = auto.from_pretrained(path).eval()
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def __call__(self, image) -> str:
        from PIL import Image

        img = Image.fromarray(np.asarray(image)) if not isinstance(image, Image.Image) else image
        inputs = self.processor(images=img.convert("RGB"), return_tensors="pt")
        ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


def sidecar_caption(image_path: str | Path) -> str | None:
    """The caption in ``IMAGE.txt`` beside ``IMAGE.png`` (stripped), or None if absent."""
    p = Path(image_path).with_suffix(".txt")
    return p.read_text(encoding="utf-8").strip() if p.is_file() else None


def make_captioner(spec: str | None):
    """``"scene"`` (shipped SceneCaptioner), ``"none"``/None (no caption), or a folder: a
    CaptionerNet folder (has ``config.json`` with ``input_size``) or a transformers model."""
    if spec in (None, "none"):
        return None
    if spec == "scene":
        return SceneCaptioner()
    p = Path(spec)
    if (p / "config.json").is_file() and '"_class_name": "CaptionerNet"' in \
            (p / "config.json").read_text():
        return SceneCaptioner(p)
    return TransformersCaptioner(p)
