"""A training-only probe that gives the RSRT tokens a direct gradient toward the scene's
attributes (``sdgic train dpcd --token-attribute-loss``); never part of a preset."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from benchmark.captioner import CELL_OUTPUTS, cell_logits

__all__ = ["TokenAttributeHead"]


class TokenAttributeHead(ModelMixin, ConfigMixin):
    """Training-only probe: (tokens, caption embedding) → the scene's attributes per grid cell.

    Input: ``q`` float (B, K, D) normalized FSQ vectors (straight-through, so its loss reaches
    the RSRT encoder); ``caption`` float (B, text_dim) pooled caption embedding (zeros when the
    caption was dropped). Output: logits in ``CaptionerNet``'s layout: ``present`` (B, 9),
    ``shape`` (B, 9, 8), ``colour`` (B, 9, 8), ``size`` (B, 9, 2), ``texture`` (B, 9, 4),
    ``background_word`` (B, num_words).

    Trained against what the captioner reads from the source image (``attribute_targets``), it
    gives the tokens a direct gradient toward carrying the attributes the caption leaves out:
    the head sees the caption too, so what the caption states need not be in the tokens. The
    denoising loss alone reaches the encoder only through cross-attention and, measured, left
    the tokens carrying nothing the decoder used. Not part of a preset (never exported).
    """

    @register_to_config
    def __init__(self, num_tokens: int = 8, token_dim: int = 4, text_dim: int = 384,
                 num_words: int = 9, width: int = 256):
        super().__init__()
        # sentence embeddings are unit-norm (entries ~0.05): normalised, the head learns from
        # them as fast as from the tokens (entries in [-1, 1])
        self.caption_norm = nn.LayerNorm(text_dim, elementwise_affine=False)
        self.net = nn.Sequential(
            nn.Linear(num_tokens * token_dim + text_dim, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, 9 * CELL_OUTPUTS + num_words))

    def forward(self, q: torch.Tensor, caption: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(torch.cat([q.flatten(1), self.caption_norm(caption)], 1))
        logits = cell_logits(out[:, :9 * CELL_OUTPUTS].unflatten(1, (9, CELL_OUTPUTS)))
        logits["background_word"] = out[:, 9 * CELL_OUTPUTS:]
        return logits
