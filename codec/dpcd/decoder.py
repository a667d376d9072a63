"""DPCD sampler: the explicit denoising loop over the UNet (and ControlNet when present).

Images live in [0, 1] (B, 3, H, W); the UNet sees them pixel-unshuffled by ``PATCH`` and
scaled to [-1, 1]. Conditions: caption token embeddings (B, L, D) with a mask (B, L); a missing
caption is the empty string's embedding (the null condition used in training dropout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel

from codec.dpcd.configs import PATCH, scheduler_config
from codec.text_encoder import TextEncoder


def to_model_space(images: torch.Tensor) -> torch.Tensor:
    """float (B, 3, H, W) in [0, 1] → (B, 3·PATCH², H/PATCH, W/PATCH) in [-1, 1]."""
    return F.pixel_unshuffle(images * 2.0 - 1.0, PATCH)


def from_model_space(z: torch.Tensor) -> torch.Tensor:
    """Inverse of ``to_model_space``, clamped to [0, 1]."""
    return ((F.pixel_shuffle(z, PATCH) + 1.0) / 2.0).clamp(0, 1)


def training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**scheduler_config())


class DPCDSampler:
    """Draws images from a caption-conditioned UNet.

    Parameters
    ----------
    unet : ``UNet2DConditionModel`` whose ``cross_attention_dim`` equals the text encoder's.
    text_encoder : ``TextEncoder`` for captions.
    """

    def __init__(self, unet: UNet2DConditionModel, text_encoder: TextEncoder):
        if unet.config.cross_attention_dim != text_encoder.dim:
            raise ValueError(f"UNet cross_attention_dim={unet.config.cross_attention_dim} but the "
                             f"text encoder gives {text_encoder.dim}-d embeddings; they must match")
        self.unet, self.text_encoder = unet, text_encoder
        self.scheduler = DPMSolverMultistepScheduler.from_config(
            scheduler_config(), algorithm_type="dpmsolver++", solver_order=2)

    def condition(self, captions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Caption token embeddings (B, L, D) and mask (B, L); ``None`` → null caption."""
        return self.text_encoder.tokens(["" if c is None else c for c in captions])

    @torch.no_grad()
    def sample(self, captions: list[str | None], steps: int = 20, guidance_scale: float = 1.0,
               generator: torch.Generator | None = None, size: int | None = None) -> torch.Tensor:
        """Images float (B, 3, size, size) in [0, 1]. ``guidance_scale`` > 1 applies
        classifier-free guidance against the null caption."""
        if steps < 1:
            raise ValueError(f"steps={steps} must be >= 1")
        b = len(captions)
        side = (size or self.unet.config.sample_size * PATCH) // PATCH
        cond, mask = self.condition(captions)
        if guidance_scale != 1.0:
            null, null_mask = self.condition([None] * b)
            cond, mask = _pad_cat(cond, mask, null, null_mask)
        z = torch.randn((b, self.unet.config.in_channels, side, side), generator=generator)
        self.scheduler.set_timesteps(steps)
        for t in self.scheduler.timesteps:
            inp = torch.cat([z, z]) if guidance_scale != 1.0 else z
            out = self.unet(inp, t, encoder_hidden_states=cond,
                            encoder_attention_mask=mask).sample
            if guidance_scale != 1.0:
                c, u = out.chunk(2)
                out = u + guidance_scale * (c - u)
            z = self.scheduler.step(out, t, z).prev_sample
        return from_model_space(z)


def _pad_cat(a, am, b, bm):
    """Concatenate two (B, L, D) sequences along the batch, padding the shorter one."""
    L = max(a.shape[1], b.shape[1])
    pad = lambda x, m: (F.pad(x, (0, 0, 0, L - x.shape[1])), F.pad(m, (0, L - m.shape[1])))
    (a, am), (b, bm) = pad(a, am), pad(b, bm)
    return torch.cat([a, b]), torch.cat([am, bm])
