"""Scene judge: reads a scene's attributes back from an image; the referee of semantic consistency.

The judge is a small fully convolutional network. Its features are pooled onto the scene's 3×3
grid, and one shared head per cell predicts whether an object sits there and its shape, colour,
size and texture; a global head predicts the background kind. Input images of any size are
resized to ``JudgeNet.input_size`` first.

Scene semantic consistency is the fraction of ground-truth attributes the judge recovers:
per object its position (an object is found in its cell), shape, colour, size and texture, and
per scene the background kind and the object count (which penalises hallucinated objects).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from benchmark.scenes import BACKGROUNDS, COLOUR_NAMES, SHAPES, SIZES, TEXTURES, Scene

OBJECT_ATTRIBUTES = ("position", "shape", "colour", "size", "texture")
SCENE_ATTRIBUTES = ("background", "count")
ATTRIBUTES = OBJECT_ATTRIBUTES + SCENE_ATTRIBUTES
_HEADS = {"shape": SHAPES, "colour": COLOUR_NAMES, "size": SIZES, "texture": TEXTURES}
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "judge"


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class JudgeNet(ModelMixin, ConfigMixin):
    """Per-cell attribute classifier.

    Input: ``images`` float (B, 3, H, W) in [0, 1], any H, W.
    Output: dict of logits: ``present`` (B, 9), ``shape`` (B, 9, 8), ``colour`` (B, 9, 8),
    ``size`` (B, 9, 2), ``texture`` (B, 9, 4), ``background`` (B, 4). Cells are row-major.
    """

    @register_to_config
    def __init__(self, width: int = 32, input_size: int = 128):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(3, w, 2), _block(w, w, 1),                  # 64×64
            _block(w, 2 * w, 2), _block(2 * w, 2 * w, 1),      # 32×32
            _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 1),  # 16×16
            _block(4 * w, 4 * w, 1),
        )
        n_out = 1 + sum(len(v) for v in _HEADS.values())
        self.cell_head = nn.Sequential(
            nn.Conv2d(8 * w, 4 * w, 1), nn.ReLU(inplace=True), nn.Conv2d(4 * w, n_out, 1))
        self.background_head = nn.Linear(8 * w, len(BACKGROUNDS))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W); got shape {tuple(images.shape)}")
        s = self.config.input_size
        if images.shape[-2:] != (s, s):
            images = F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False,
                                   antialias=True)
        f = self.features(images * 2.0 - 1.0)
        cells = torch.cat([F.adaptive_avg_pool2d(f, 3), F.adaptive_max_pool2d(f, 3)], dim=1)
        out = self.cell_head(cells).flatten(2).transpose(1, 2)  # (B, 9, n_out)
        logits = {"present": out[..., 0]}
        i = 1
        for name, classes in _HEADS.items():
            logits[name] = out[..., i:i + len(classes)]
            i += len(classes)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        logits["background"] = self.background_head(pooled)
        return logits


def scene_targets(scenes: list[Scene]) -> dict[str, torch.Tensor]:
    """Training targets: ``present`` float (B, 9); class indices (B, 9) with -100 where empty;
    ``background`` (B,)."""
    b = len(scenes)
    t = {"present": torch.zeros(b, 9)}
    for name in _HEADS:
        t[name] = torch.full((b, 9), -100, dtype=torch.long)
    t["background"] = torch.zeros(b, dtype=torch.long)
    for i, sc in enumerate(scenes):
        for o in sc.objects:
            t["present"][i, o.cell] = 1.0
            for name, classes in _HEADS.items():
                t[name][i, o.cell] = classes.index(getattr(o, name))
        t["background"][i] = BACKGROUNDS.index(sc.background)
    return t


def judge_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits["present"], targets["present"])
    for name in _HEADS:
        loss = loss + F.cross_entropy(logits[name].flatten(0, 1), targets[name].flatten(),
                                      ignore_index=-100)
    return loss + F.cross_entropy(logits["background"], targets["background"])


class SceneJudge:
    """Loads the trained judge and scores images against ground-truth scenes.

    Parameters
    ----------
    path : folder holding ``config.json`` and ``diffusion_pytorch_model.safetensors``
        (``JudgeNet.save_pretrained``). Default: the shipped judge.
    """

    def __init__(self, path: str | Path | None = None, device: str = "cpu"):
        path = Path(path) if path is not None else DEFAULT_WEIGHTS
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no judge weights in {path} (expected config.json and a .safetensors file); "
                "train one with `sdgic train judge --out DIR` or pass the folder that holds it")
        self.model = JudgeNet.from_pretrained(path).to(device).eval()
        self.device = device

    @torch.no_grad()
    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Attributes read from ``images`` (B, H, W, 3) uint8 or (B, 3, H, W) float in [0, 1].

        Returns arrays: ``present`` bool (B, 9); ``shape``/``colour``/``size``/``texture`` int
        (B, 9) class indices; ``background`` int (B,).
        """
        x = to_float_tensor(images)
        parts = []
        for i in range(0, len(x), batch_size):
            lg = self.model(x[i:i + batch_size].to(self.device))
            parts.append({k: (v > 0 if k == "present" else v.argmax(-1)).cpu().numpy()
                          for k, v in lg.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def consistency(self, images, scenes: list[Scene]) -> list[dict[str, float]]:
        """Per image: fraction of attributes recovered overall (``consistency``) and per
        attribute (``position``, ``shape``, …, ``count``; NaN-free, each in [0, 1])."""
        if len(images) != len(scenes):
            raise ValueError(f"got {len(images)} images but {len(scenes)} scenes")
        pred = self.predict(images)
        return [score_scene(pred, i, sc) for i, sc in enumerate(scenes)]


def score_scene(pred: dict[str, np.ndarray], i: int, scene: Scene) -> dict[str, float]:
    """Attribute recovery of image ``i`` of ``pred`` (see ``SceneJudge.predict``) vs ``scene``."""
    hits = {a: 0 for a in ATTRIBUTES}
    for o in scene.objects:
        hits["position"] += int(pred["present"][i, o.cell])
        for name, classes in _HEADS.items():
            hits[name] += int(pred[name][i, o.cell] == classes.index(getattr(o, name)))
    hits["background"] = int(pred["background"][i] == BACKGROUNDS.index(scene.background))
    hits["count"] = int(pred["present"][i].sum() == len(scene.objects))
    n = len(scene.objects)
    row = {a: hits[a] / n for a in OBJECT_ATTRIBUTES}
    row.update({a: float(hits[a]) for a in SCENE_ATTRIBUTES})
    row["consistency"] = sum(hits.values()) / (len(OBJECT_ATTRIBUTES) * n + len(SCENE_ATTRIBUTES))
    return row


def to_float_tensor(images) -> torch.Tensor:
    """uint8 (B, H, W, 3) array or float (B, 3, H, W) tensor → float32 (B, 3, H, W) in [0, 1]."""
    if isinstance(images, torch.Tensor):
        return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    a = np.asarray(images)
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) uint8; got shape {a.shape}")
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0

