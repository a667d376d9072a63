"""Model configurations of the DPCD presets (diffusers ``UNet2DConditionModel`` kwargs).

The UNet works on a space-to-depth view of the image: a 64×64×3 image is pixel-unshuffled by
``PATCH`` = 2 into 32×32×12 (lossless, no learned autoencoder), which makes every level 4×
cheaper. Attention (self and cross) sits only at 8×8 and in the mid block: on this CPU,
attention at 16×16 cost ~50 % more per step (measured: 2.4 s vs 1.6 s per 4-image
forward+backward on one thread), and bf16 autocast was ~15× slower than fp32 (no native bf16).
``tiny`` is for tests: the same classes with a few thousand weights.

The ControlNet (HCI path) is ``ControlNetModel.from_unet`` of the preset's UNet (its encoder
half, zero-initialised output convolutions), fed the decoded HCI in the same unshuffled space.
"""

from __future__ import annotations

PATCH = 2


def unet_config(name: str, cross_attention_dim: int = 384) -> dict:
    """kwargs for ``UNet2DConditionModel`` of preset ``name`` (``scenes-64`` or ``tiny``)."""
    if name == "scenes-64":
        return dict(
            sample_size=64 // PATCH, in_channels=3 * PATCH ** 2, out_channels=3 * PATCH ** 2,
            down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
            block_out_channels=(64, 128, 192), layers_per_block=1,
            attention_head_dim=8, norm_num_groups=32,
            cross_attention_dim=cross_attention_dim,
        )
    if name == "tiny":
        return dict(
            sample_size=16 // PATCH, in_channels=3 * PATCH ** 2, out_channels=3 * PATCH ** 2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(16, 32), layers_per_block=1, attention_head_dim=2,
            norm_num_groups=8, cross_attention_dim=cross_attention_dim,
        )
    raise ValueError(f"unknown UNet config {name!r}; expected 'scenes-64' or 'tiny'")


def scheduler_config() -> dict:
    """Training noise schedule (``DDPMScheduler`` kwargs); samplers are built from it."""
    return dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                prediction_type="v_prediction", clip_sample=False)


def controlnet_kwargs() -> dict:
    """``ControlNetModel.from_unet`` kwargs: the HCI enters pixel-unshuffled (3·PATCH² channels)
    at the UNet's own resolution, so the conditioning embedding needs no down-sampling (one
    block of 32 channels)."""
    return dict(conditioning_channels=3 * PATCH ** 2, conditioning_embedding_out_channels=(32,))
