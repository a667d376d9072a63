"""DPCD sampler: the explicit denoising loop over the UNet and the ControlNet.

Images live in [0, 1] (B, 3, H, W); the UNet sees them in a model space: pixel-unshuffled by
``PATCH`` and scaled to [-1, 1] (``PixelSpace``, the shipped presets), or an AutoencoderKL's
latents (``LatentSpace``, a Stable-Diffusion-style preset with ``vae/``). The two condition paths:

- **semantic** (cross-attention): caption token embeddings (B, L, D) with a mask (B, L),
  followed by the K RSRT embeddings (B, K, D) when the decoder has an RSRT path. A missing
  caption is the empty string's embedding (the null condition used in training dropout); lost
  tokens are the learned mask embedding.
- **visual** (ControlNet): the decoded HCI (B, 3, H, W), unshuffled like the image. Its
  residuals are multiplied per image by ``hci_present`` (B,), so an image whose HCI was lost
  is decoded by the UNet alone, exactly as in training with HCI dropout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import (ControlNetModel, DDPMScheduler, DPMSolverMultistepScheduler,
                       UNet2DConditionModel)
from diffusers.models.attention_processor import AttnProcessor2_0

from codec.dpcd.configs import PATCH, scheduler_config
from codec.preset import PRECISIONS, check_guidance_interval
from codec.text_encoder import TextEncoder


def to_model_space(images: torch.Tensor) -> torch.Tensor:
    """float (B, 3, H, W) in [0, 1] → (B, 3·PATCH², H/PATCH, W/PATCH) in [-1, 1]."""
    return F.pixel_unshuffle(images * 2.0 - 1.0, PATCH)


def from_model_space(z: torch.Tensor) -> torch.Tensor:
    """Inverse of ``to_model_space``, clamped to [0, 1]."""
    return ((F.pixel_shuffle(z, PATCH) + 1.0) / 2.0).clamp(0, 1)


class PixelSpace:
    """The model space of the shipped presets: pixels, space-to-depth by ``PATCH`` (no learned
    autoencoder). ``factor``: image side / model side."""

    factor = PATCH

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return to_model_space(images)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return from_model_space(z)


class LatentSpace:
    """An ``AutoencoderKL``'s latent space, as Stable Diffusion uses it (a preset with a
    ``vae/`` folder): images (B, 3, H, W) in [0, 1] ↔ scaled latents (B, C, H/f, W/f)."""

    def __init__(self, vae):
        self.vae = vae.eval()
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scale = float(vae.config.scaling_factor)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(images * 2.0 - 1.0).latent_dist.mode() * self.scale

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return ((self.vae.decode(z / self.scale).sample + 1.0) / 2.0).clamp(0, 1)


def training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**scheduler_config())


class MaskedCrossAttnProcessor(AttnProcessor2_0):
    """Cross-attention that honours the caption padding mask inside a ``ControlNetModel``.

    diffusers' ``ControlNetModel.forward`` has no ``encoder_attention_mask`` (the UNet has), so
    padded caption tokens would be attended to and a caption's result would depend on the
    longest caption in its batch. The mask travels in ``cross_attention_kwargs`` instead.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, encoder_mask: torch.Tensor | None = None, **kwargs):
        if encoder_hidden_states is not None and encoder_mask is not None and attention_mask is None:
            attention_mask = ((1 - encoder_mask.to(hidden_states.dtype)) * -10000.0).unsqueeze(1)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def _masked(controlnet: ControlNetModel) -> ControlNetModel:
    """Install ``MaskedCrossAttnProcessor`` once (processors are not part of saved weights)."""
    if not getattr(controlnet, "_dpcd_masked", False):
        controlnet.set_attn_processor(MaskedCrossAttnProcessor())
        controlnet._dpcd_masked = True
    return controlnet


def denoise(unet: UNet2DConditionModel, z: torch.Tensor, t, cond: torch.Tensor,
            mask: torch.Tensor, controlnet: ControlNetModel | None = None,
            hci: torch.Tensor | None = None, hci_present: torch.Tensor | None = None
            ) -> torch.Tensor:
    """One DPCD network evaluation (training and sampling share it).

    Input: ``z`` (B, C, h, w) noisy model-space sample; ``t`` timestep(s); ``cond`` (B, S, D)
    and ``mask`` bool (B, S) the cross-attention sequence; ``hci`` (B, C, h, w) model-space HCI
    or None; ``hci_present`` bool/float (B,) (default all present).
    Output: the UNet's prediction (B, C, h, w) (v-prediction).
    """
    down = mid = None
    if controlnet is not None and hci is not None:
        down, mid = _masked(controlnet)(z, t, encoder_hidden_states=cond, controlnet_cond=hci,
                                        cross_attention_kwargs={"encoder_mask": mask},
                                        return_dict=False)
        if hci_present is not None:
            keep = hci_present.to(z.dtype).view(-1, 1, 1, 1)
            down = [r * keep for r in down]
            mid = mid * keep
    return unet(z, t, encoder_hidden_states=cond, encoder_attention_mask=mask,
                down_block_additional_residuals=down, mid_block_additional_residual=mid).sample




def bf16_is_fast(device: str = "cpu") -> bool:
    """Whether ``device`` has bfloat16 arithmetic in hardware (x86 CPU: AVX512-BF16 or AMX;
    CUDA: Ampere or newer). Elsewhere bf16 autocast is emulated and slower than fp32.
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported`` is not this test: it only asks for
    AVX512BW/VL/DQ, which CPUs without bf16 instructions have.)"""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:      # a torch without these probes: assume emulation
        return False


class DPCDSampler:
    """Draws images from DPCD given whatever streams arrived.

    Parameters
    ----------
    unet : ``UNet2DConditionModel`` whose ``cross_attention_dim`` equals the text encoder's.
    text_encoder : ``TextEncoder`` for captions.
    controlnet : ``ControlNetModel`` for the HCI path, or None (prior only).
    rsrt_embedding : ``RSRTEmbedding`` for the token path, or None.
    space : ``PixelSpace`` (default) or ``LatentSpace`` (a VAE): where the UNet works; the
        HCI enters the ControlNet through the same space.
    """

    def __init__(self, unet: UNet2DConditionModel, text_encoder: TextEncoder,
                 controlnet: ControlNetModel | None = None, rsrt_embedding=None, space=None):
        if unet.config.cross_attention_dim != text_encoder.dim:
            raise ValueError(f"UNet cross_attention_dim={unet.config.cross_attention_dim} but the "
                             f"text encoder gives {text_encoder.dim}-d embeddings; they must match")
        self.unet, self.text_encoder = unet, text_encoder
        self.controlnet, self.rsrt_embedding = controlnet, rsrt_embedding
        self.space = space or PixelSpace()
        self.scheduler = DPMSolverMultistepScheduler.from_config(
            scheduler_config(), algorithm_type="dpmsolver++", solver_order=2)

    def condition(self, captions: list[str | None], rsrt_codes: torch.Tensor | None = None,
                  rsrt_present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention sequence (B, L [+K], D) and mask; ``None`` caption → null caption.

        With an RSRT path, ``rsrt_codes`` long (B, K) and ``rsrt_present`` bool (B, K) give the
        tokens that arrived (no codes at all: every token is masked).
        """
        cond, mask = self.text_encoder.tokens(["" if c is None else c for c in captions])
        if self.rsrt_embedding is None:
            return cond, mask
        b, k = len(captions), self.rsrt_embedding.config.num_tokens
        if rsrt_codes is None:
            rsrt_codes = torch.zeros(b, k, dtype=torch.long)
            rsrt_present = torch.zeros(b, k, dtype=torch.bool)
        elif rsrt_present is None:
            rsrt_present = torch.ones(b, k, dtype=torch.bool)
        e = self.rsrt_embedding(codes=rsrt_codes, present=rsrt_present)
        return torch.cat([cond, e], 1), torch.cat([mask, torch.ones(b, k, dtype=torch.bool)], 1)

    @torch.no_grad()
    def sample(self, captions: list[str | None], steps: int = 20, guidance_scale: float = 1.0,
               generator: torch.Generator | None = None, size: int | None = None,
               hci: torch.Tensor | None = None, hci_present: torch.Tensor | None = None,
               rsrt_codes: torch.Tensor | None = None, rsrt_present: torch.Tensor | None = None,
               noise: torch.Tensor | None = None, precision: str = "fp32",
               guidance_interval: tuple[float, float] = (0.0, 1.0),
               strength: float = 1.0) -> torch.Tensor:
        """Images float (B, 3, size, size) in [0, 1].

        ``hci`` float (B, 3, size, size) in [0, 1] (decoded HCI at the decoder's resolution),
        ``hci_present`` bool (B,); ``rsrt_codes``/``rsrt_present`` as in ``condition``.
        ``guidance_scale`` > 1 applies classifier-free guidance against the null caption (HCI
        and tokens stay in both branches), only at the timesteps t with
        ``lo <= t / T <= hi`` for ``guidance_interval = (lo, hi)`` (T: the scheduler's training
        timesteps; Kynkäänniemi et al. 2024, "Applying guidance in a limited interval"); the
        other steps take the conditional prediction alone, in one UNet pass.
        ``noise`` (B, C, h, w): the starting sample in model space (default: drawn from
        ``generator``); DPM-Solver++ adds no noise after it, so per-image starting noise makes
        each image independent of its batch.
        ``precision``: ``"fp32"``, or ``"bf16"`` to run the UNet and ControlNet under bfloat16
        autocast (the scheduler, guidance and output stay fp32).
        ``strength`` in (0, 1]: 1 draws from pure noise; below 1 the run starts from the HCI
        noised to the timestep a fraction ``strength`` into the schedule and takes ``steps``
        steps from there (SDEdit, Meng et al. 2022); every image then needs its HCI.
        """
        lo, hi = _check_run(steps, precision, guidance_interval, strength)
        b = len(captions)
        f = self.space.factor
        side = (size or self.unet.config.sample_size * f) // f
        cond, mask = self.condition(captions, rsrt_codes, rsrt_present)
        hci_z = None
        if hci is not None:
            if self.controlnet is None:
                raise ValueError("this decoder has no ControlNet (HCI path); pass hci=None")
            if hci.shape != (b, 3, side * f, side * f):
                raise ValueError(f"hci must be (B, 3, {side * f}, {side * f}) = "
                                 f"{(b, 3, side * f, side * f)}; got {tuple(hci.shape)}")
            hci_z = self.space.encode(hci)
        if guidance_scale != 1.0:
            null, null_mask = self.condition([None] * b, rsrt_codes, rsrt_present)
            cond, mask = _pad_cat(cond, mask, null, null_mask)
            if hci_z is not None:
                hci_z = torch.cat([hci_z, hci_z])
                hci_present = None if hci_present is None else torch.cat([hci_present] * 2)
        shape = (b, self.unet.config.in_channels, side, side)
        z = _start(shape, noise, generator)
        if strength < 1:
            if hci_z is None or (hci_present is not None and not bool(hci_present.all())):
                raise ValueError(f"strength={strength} < 1 starts from the noised HCI; every "
                                 f"image needs its HCI (use strength 1 for the others)")
        timesteps = self._timesteps(steps, strength)
        if strength < 1:
            z = self.scheduler.add_noise(hci_z[:b], z, timesteps[:1])
        for t in timesteps:
            guided = self._guided(t, guidance_scale, lo, hi)
            out = self._predict(z, t, guided, guidance_scale, precision, cond, mask, hci_z,
                                hci_present)
            z = self.scheduler.step(out, t, z).prev_sample
        return self.space.decode(z)

    def _timesteps(self, steps: int, strength: float) -> torch.Tensor:
        """The last ``steps`` timesteps of a schedule of ``round(steps / strength)`` (all of
        ``steps`` at strength 1), with the scheduler set to start at the first of them."""
        total = max(steps, round(steps / strength))
        self.scheduler.set_timesteps(total)
        start = (total - steps) * self.scheduler.order
        self.scheduler.set_begin_index(start)
        return self.scheduler.timesteps[start:]

    def _guided(self, t, guidance_scale: float, lo: float, hi: float) -> bool:
        num_train = self.scheduler.config.num_train_timesteps
        return guidance_scale != 1.0 and lo <= float(t) / num_train <= hi

    def _predict(self, z, t, guided: bool, guidance_scale: float, precision: str, cond, mask,
                 hci_z, hci_present) -> torch.Tensor:
        """The (guided) prediction for ``z`` (B, C, h, w). ``cond``, ``mask``, ``hci_z``,
        ``hci_present`` hold the B conditional rows, followed by the B null-caption rows when
        guidance is on; an unguided step uses the conditional rows alone, in one pass."""
        b = z.shape[0]
        if not guided:
            cond, mask, hci_z, hci_present = (None if x is None else x[:b]
                                              for x in (cond, mask, hci_z, hci_present))
        with torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = denoise(self.unet, torch.cat([z, z]) if guided else z, t, cond, mask,
                          self.controlnet, hci_z, hci_present)
        out = out.float()
        if guided:
            c, u = out.chunk(2)
            out = u + guidance_scale * (c - u)
        return out

    @torch.no_grad()
    def sample_tiled(self, caption: str | None, height: int, width: int, overlap: int = 16,
                     steps: int = 20, guidance_scale: float = 1.0,
                     generator: torch.Generator | None = None, hci: torch.Tensor | None = None,
                     hci_present: bool = True, rsrt_codes: torch.Tensor | None = None,
                     rsrt_present: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                     precision: str = "fp32", guidance_interval: tuple[float, float] = (0.0, 1.0),
                     strength: float = 1.0, tile_batch: int = 16) -> torch.Tensor:
        """One image float (1, 3, height, width) in [0, 1], of any size, drawn in overlapping
        tiles of the UNet's ``sample_size`` whose predictions are blended at every step
        (MultiDiffusion; :class:`~codec.dpcd.tiles.TileGrid`).

        ``overlap``: least overlap of neighbouring tiles [image pixels, a multiple of the
        space's factor]. ``hci`` float (1, 3, height, width) in [0, 1]: the decoded HCI at the
        image's size; each tile's ControlNet reads its own crop, unless ``hci_present`` (a bool,
        or bool (n_tiles,): per tile) says the tile has no HCI. ``rsrt_codes`` long
        (n_tiles, K) or (1, K) (the same tokens for every tile) with ``rsrt_present`` bool of
        the same shape: each tile's tokens. ``noise`` (1, C, H/f, W/f): the starting sample
        in model space (f: the space's factor; sides below a tile are padded to a tile).
        Other arguments as in :meth:`sample` (``strength`` < 1 needs the HCI on every tile);
        ``tile_batch``: tiles per network call.
        A canvas smaller than a tile is drawn on a reflect-padded canvas and cropped.
        """
        from codec.dpcd.tiles import TileGrid

        lo, hi = _check_run(steps, precision, guidance_interval, strength)
        f = self.space.factor
        if height % f or width % f or overlap % f:
            raise ValueError(f"height={height}, width={width} and overlap={overlap} must be "
                             f"multiples of the model space's factor {f}")
        tile = self.unet.config.sample_size
        grid = TileGrid(height // f, width // f, tile, overlap // f)
        ph, pw = grid.padded_size
        corners = grid.corners
        n = len(corners)
        hci_z = None
        if hci is not None:
            if self.controlnet is None:
                raise ValueError("this decoder has no ControlNet (HCI path); pass hci=None")
            if tuple(hci.shape) != (1, 3, height, width):
                raise ValueError(f"hci must be (1, 3, {height}, {width}); got {tuple(hci.shape)}")
            if (ph, pw) != (height // f, width // f):
                hci = F.pad(hci, (0, pw * f - width, 0, ph * f - height), mode="replicate")
            hci_z = self.space.encode(hci)
        if rsrt_codes is not None and rsrt_codes.shape[0] not in (1, n):
            raise ValueError(f"rsrt_codes must have 1 or {n} rows (one per tile); got "
                             f"{tuple(rsrt_codes.shape)}")
        if rsrt_codes is not None and rsrt_codes.shape[0] == 1:
            rsrt_codes = rsrt_codes.expand(n, -1)
            rsrt_present = None if rsrt_present is None else rsrt_present.expand(n, -1)
        cond, mask = self.condition([caption] * n, rsrt_codes, rsrt_present)
        if guidance_scale != 1.0:
            null, null_mask = self.condition([None] * n, rsrt_codes, rsrt_present)
            cond, mask = _pad_cat(cond, mask, null, null_mask)
        shape = (1, self.unet.config.in_channels, ph, pw)
        z = _start(shape, noise, generator)
        present = torch.as_tensor(hci_present, dtype=torch.bool).reshape(-1)
        if present.numel() not in (1, n):
            raise ValueError(f"hci_present must be a bool or have one entry per tile ({n}); "
                             f"got {present.numel()}")
        present = present.expand(n)
        hci_tiles = None if hci_z is None else grid.crop(hci_z)
        if strength < 1 and (hci_z is None or not bool(present.all())):
            raise ValueError(f"strength={strength} < 1 starts from the noised HCI; every tile "
                             f"needs it (use strength 1 when a slice is lost)")
        timesteps = self._timesteps(steps, strength)
        if strength < 1:
            z = self.scheduler.add_noise(hci_z, z, timesteps[:1])

        def rows(x, idx):       # the conditional rows of tiles idx (and their null rows)
            if x is None:
                return None
            return torch.cat([x[idx], x[idx + n]]) if x.shape[0] == 2 * n else x[idx]

        for t in timesteps:
            guided = self._guided(t, guidance_scale, lo, hi)
            z_tiles, outs = grid.crop(z), []
            for s in range(0, n, tile_batch):
                idx = torch.arange(s, min(n, s + tile_batch))
                hs = pr = None
                if hci_tiles is not None:
                    hs, pr = hci_tiles[idx], present[idx]
                    if guided:
                        hs, pr = torch.cat([hs, hs]), torch.cat([pr, pr])
                outs.append(self._predict(z_tiles[idx], t, guided, guidance_scale, precision,
                                          rows(cond, idx), rows(mask, idx), hs, pr))
            z = self.scheduler.step(grid.blend(torch.cat(outs)), t, z).prev_sample
        return self.space.decode(z)[..., :height, :width]


def _check_run(steps: int, precision: str, guidance_interval,
               strength: float = 1.0) -> tuple[float, float]:
    """Validate a sampling run's settings; returns the guidance interval (lo, hi)."""
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    if not 0 < strength <= 1:
        raise ValueError(f"strength={strength} must be in (0, 1]")
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
    return check_guidance_interval(guidance_interval)


def _start(shape: tuple, noise: torch.Tensor | None, generator) -> torch.Tensor:
    """The starting sample: ``noise`` (checked against ``shape``) or drawn from
    ``generator``."""
    if noise is None:
        return torch.randn(shape, generator=generator)
    if tuple(noise.shape) != shape:
        raise ValueError(f"noise must have shape {shape}; got {tuple(noise.shape)}")
    return noise.clone()


def _pad_cat(a, am, b, bm):
    """Concatenate two (B, L, D) sequences along the batch, padding the shorter one."""
    L = max(a.shape[1], b.shape[1])
    pad = lambda x, m: (F.pad(x, (0, 0, 0, L - x.shape[1])), F.pad(m, (0, L - m.shape[1])))
    (a, am), (b, bm) = pad(a, am), pad(b, bm)
    return torch.cat([a, b]), torch.cat([am, bm])
