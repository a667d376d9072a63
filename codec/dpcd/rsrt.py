"""RSRT: reconstruction-aware semantic residual tokens.

``RSRTEncoder`` reads the source image, the decoded HCI and the caption embedding and emits K
tokens, each quantized by FSQ (finite scalar quantization: every one of ``len(levels)``
dimensions is bounded and rounded to ``levels[i]`` values), so a token is one integer in
``[0, prod(levels))`` that decodes alone. ``RSRTEmbedding`` turns the (possibly partial) token
list into K cross-attention embeddings; a learned mask embedding stands in for lost tokens.

Health (the prototype's FSQ tokens collapsed to one code each because pre-quantization
outputs stayed within ±0.16): the encoder ends in a learnable gain initialised large enough to
span the FSQ range, training can run the first steps unquantized (``quantize=False``), and
``code_health`` reports distinct codes and code entropy per token.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class FSQ(nn.Module):
    """Finite scalar quantizer with a straight-through gradient.

    Input: ``z`` float (..., D) unbounded. Output: quantized float (..., D) in [-1, 1] and the
    integer code (...,) in [0, prod(levels)).
    """

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        if any(l < 2 for l in levels):
            raise ValueError(f"levels={levels}: every FSQ level must be >= 2")
        self.levels = tuple(int(l) for l in levels)
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.float32), persistent=False)
        basis = torch.cumprod(torch.tensor((1,) + self.levels[:-1]), 0)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    @property
    def bits(self) -> int:
        """Bits a token takes on the wire (fixed width)."""
        return max(1, math.ceil(math.log2(self.codebook_size)))

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash to [0, L-1] per dimension."""
        half = (self._levels - 1) / 2
        return (torch.tanh(z) + 1) * half

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.bound(z)
        q = b + (b.round() - b).detach()
        code = (b.round().long() * self._basis).sum(-1)
        return self.normalize(q), code

    def normalize(self, q: torch.Tensor) -> torch.Tensor:
        return q / (self._levels - 1) * 2 - 1

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Integer codes (...,) → normalized quantized vectors (..., D)."""
        digits = (code.unsqueeze(-1) // self._basis) % self._levels.long()
        return self.normalize(digits.float())


def scene_feature_stack(width: int = 40) -> nn.Sequential:
    """The scene captioner's convolutional features (``benchmark.captioner.CaptionerNet
    .features``, same layers and names, so its trained weights load): (B, 3, H, W) in [-1, 1]
    → (B, 3·width, H/4, W/4)."""
    w = width

    def block(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU())

    return nn.Sequential(block(3, w, 1), block(w, w, 2), block(w, 2 * w, 1),
                         block(2 * w, 2 * w, 2), block(2 * w, 3 * w, 1), block(3 * w, 3 * w, 1))


class RSRTEncoder(ModelMixin, ConfigMixin):
    """(source, decoded HCI, caption embedding) → K FSQ tokens.

    Input: ``image``, ``hci`` float (B, 3, H, W) in [0, 1] (HCI upsampled to H, W);
    ``caption`` float (B, text_dim) (zeros when there is no caption).
    Output: ``z`` float (B, K, D) pre-quantization, and via ``quantize`` the tokens.

    ``backbone``: ``"conv"``, five small convolutions on (source, HCI, source − HCI) learned
    from scratch; ``"scene"``, those plus the scene captioner's feature stack
    (:func:`scene_feature_stack`, ``scene_width``) applied to the source and to the HCI, its
    features and their difference (what the HCI lost, in the captioner's terms) added in, so
    the tokens can read shape, size and texture from the first step once the captioner's
    weights are loaded (:meth:`load_scene_weights`). ``cells``: 0, every token attends to the
    whole image; c > 0, the image is cut into a c × c grid and token k attends to cell k only
    (``num_tokens`` = c², row-major), so each token carries its own region's information.
    """

    @register_to_config
    def __init__(self, num_tokens: int = 8, levels: tuple[int, ...] = (8, 5, 5, 5),
                 width: int = 64, text_dim: int = 384, init_gain: float = 3.0,
                 backbone: str = "conv", scene_width: int = 40, cells: int = 0):
        super().__init__()
        if backbone not in ("conv", "scene"):
            raise ValueError(f"backbone={backbone!r}: expected 'conv' or 'scene'")
        if cells and num_tokens != cells * cells:
            raise ValueError(f"cells={cells} ties one token to each of {cells * cells} cells; "
                             f"num_tokens={num_tokens}")
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(9, w, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(w, w, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.SiLU(),
        )
        if backbone == "scene":
            self.scene = scene_feature_stack(scene_width)
            self.scene_proj = nn.Conv2d(6 * scene_width, 2 * w, 1)
        self.film = nn.Linear(text_dim, 4 * w)
        self.queries = nn.Parameter(torch.randn(num_tokens, 2 * w) / math.sqrt(2 * w))
        self.attn = nn.MultiheadAttention(2 * w, num_heads=4, batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(2 * w), nn.Linear(2 * w, len(levels)))
        self.gain = nn.Parameter(torch.tensor(float(init_gain)))
        self.fsq = FSQ(tuple(levels))

    def load_scene_weights(self, captioner_features: nn.Module) -> None:
        """Copy a trained ``CaptionerNet.features`` into the scene backbone."""
        if self.config.backbone != "scene":
            raise ValueError("load_scene_weights needs backbone='scene'")
        self.scene.load_state_dict(captioner_features.state_dict())

    def _cell_mask(self, h: int, w: int, device) -> torch.Tensor | None:
        """(K, h·w) bool, True where token k may not look (outside its cell)."""
        c = self.config.cells
        if not c:
            return None
        rows = torch.arange(h, device=device) * c // h
        cols = torch.arange(w, device=device) * c // w
        cell = (rows[:, None] * c + cols[None, :]).flatten()               # (h·w,)
        return cell[None, :] != torch.arange(c * c, device=device)[:, None]

    def forward(self, image: torch.Tensor, hci: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, hci, image - hci], dim=1) * 2 - 1
        f = self.features(x)                                   # (B, 2w, H/8, W/8)
        if self.config.backbone == "scene":
            src, dec = self.scene(image * 2 - 1), self.scene(hci * 2 - 1)   # (B, 3sw, H/4, W/4)
            sem = self.scene_proj(torch.cat([src, src - dec], 1))
            f = f + F.adaptive_avg_pool2d(sem, f.shape[-2:])
        scale, shift = self.film(caption).chunk(2, dim=-1)
        f = f * (1 + scale[..., None, None]) + shift[..., None, None]
        seq = f.flatten(2).transpose(1, 2)                     # (B, HW/64, 2w)
        q = self.queries.expand(len(seq), -1, -1)
        h, _ = self.attn(q, seq, seq, attn_mask=self._cell_mask(*f.shape[-2:], f.device))
        # LayerNorm → Linear gives outputs of std ≈ 0.6; the gain spreads them over the
        # FSQ range (tanh's linear part) instead of leaving them all in one bin. It is capped
        # at its initial value: trained freely it grew (std 1.8 → 5 in 400 steps) until tanh
        # saturated and the tokens fell to a few corner codes.
        return self.gain.clamp(0.1, self.config.init_gain) * self.out(h + q)   # (B, K, D)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """FSQ: (normalized quantized (B, K, D), codes long (B, K))."""
        return self.fsq(z)

    def encode(self, image, hci, caption) -> torch.Tensor:
        """Token codes long (B, K)."""
        return self.quantize(self(image, hci, caption))[1]


class RSRTEmbedding(ModelMixin, ConfigMixin):
    """Tokens → cross-attention embeddings (B, K, dim); lost tokens get the mask embedding.

    Input: ``q`` float (B, K, D) normalized FSQ vectors (training) or ``codes`` long (B, K)
    with ``present`` bool (B, K).
    """

    @register_to_config
    def __init__(self, num_tokens: int = 8, levels: tuple[int, ...] = (8, 5, 5, 5),
                 dim: int = 384):
        super().__init__()
        self.fsq = FSQ(tuple(levels))
        self.proj = nn.Sequential(nn.Linear(len(levels), dim), nn.SiLU(), nn.Linear(dim, dim))
        self.position = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)
        self.mask = nn.Parameter(torch.randn(dim) * 0.02)

    def forward(self, q: torch.Tensor | None = None, present: torch.Tensor | None = None,
                codes: torch.Tensor | None = None) -> torch.Tensor:
        if q is None:
            if codes is None:
                raise ValueError("pass either q (quantized vectors) or codes (token integers)")
            q = self.fsq.decode(codes.clamp_min(0))
        e = self.proj(q)
        if present is not None:
            e = torch.where(present.unsqueeze(-1), e, self.mask.expand_as(e))
        return e + self.position


def range_penalty(z: torch.Tensor, limit: float = 2.5) -> torch.Tensor:
    """Mean squared excess of pre-quantization values beyond ±``limit`` (scalar).

    tanh(2.5) ≈ 0.99 already reaches FSQ's outer levels; beyond it the gradient vanishes and
    codes stick to the corners. Added to the training loss (weight ~1e-2) it keeps the
    encoder in the range where every level is reachable.
    """
    return F.relu(z.abs() - limit).pow(2).mean()


def code_health(codes: torch.Tensor, codebook_size: int) -> dict:
    """Over a batch of codes (N, K): per token slot, distinct codes and code entropy (bits)
    across images; and ``within_image``: the mean number of distinct codes among one image's
    K tokens (1.0: every slot a copy of the others)."""
    out = {"distinct": [], "entropy_bits": []}
    for k in range(codes.shape[1]):
        counts = torch.bincount(codes[:, k], minlength=codebook_size).float()
        p = counts[counts > 0] / counts.sum()
        out["distinct"].append(int((counts > 0).sum()))
        out["entropy_bits"].append(float(-(p * p.log2()).sum()))
    out["within_image"] = float(np.mean([len(set(r.tolist())) for r in codes])) \
        if len(codes) else 0.0
    return out
