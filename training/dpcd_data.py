"""Pieces every DPCD training stage shares: scene and photo batches, the loss, sample
grids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr
from PIL import Image

from benchmark.photos import resize_tiles, train_tiles
from benchmark.scenes import generate


def scene_batch(step: int, batch_size: int, size: int, seed: int, detail: str = "full"):
    """Scenes of training ``step``: float (B, 3, size, size) in [0, 1] and their captions at
    ``detail`` (``Scene.describe``).

    Deterministic in (seed, step), so a resumed run sees the data it would have seen.
    """
    out = [generate(step * batch_size + i, seed=seed, size=size) for i in range(batch_size)]
    x = torch.from_numpy(np.stack([o[0] for o in out])).permute(0, 3, 1, 2).float() / 255.0
    return x, [o[1].describe(detail) for o in out]


class SceneBatches(torch.utils.data.Dataset):
    """``scene_batch`` of each training step, as a map-style data set indexed by step, so a
    ``DataLoader`` with worker processes renders batches ahead of the training loop (a GPU
    step is faster than rendering its scenes in one process). Same data as ``scene_batch``."""

    def __init__(self, batch_size: int, size: int, seed: int, detail: str = "full"):
        self.batch_size, self.size, self.seed, self.detail = batch_size, size, seed, detail

    def __len__(self) -> int:
        return 2 ** 31 - 1

    def __getitem__(self, step: int):
        return scene_batch(step, self.batch_size, self.size, self.seed, self.detail)


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)


def scene_batches(start: int, stop: int, batch_size: int, size: int, seed: int,
                  workers: int = 0, detail: str = "full"):
    """Iterate ``(x, captions)`` of steps ``start``..``stop - 1``; ``workers`` > 0 renders them
    in that many processes (each one torch thread), prefetching 4 batches per worker."""
    if workers <= 0:
        for step in range(start, stop):
            yield scene_batch(step, batch_size, size, seed, detail)
        return
    loader = torch.utils.data.DataLoader(
        SceneBatches(batch_size, size, seed, detail), batch_size=None, sampler=range(start, stop),
        num_workers=workers, prefetch_factor=4, persistent_workers=False,
        worker_init_fn=_one_thread)
    yield from loader


class PhotoBatches:
    """Training batches of natural photos: random crops of the photo set's train tiles
    (``sdgic data photos``), each a square of side drawn from [``size``, tile] at a random
    place, resized to ``size``² (antialiased bicubic, as the encoder resizes), rounded to 8 bits,
    flipped left-right half the time. Photos have no caption source offline, so every caption
    is ``None`` (the receiver's "no caption stream").

    ``batch(step)`` is deterministic in (seed, step), so a resumed run sees the data it would
    have seen. Holds every train tile at its native size (7,240 × 128² × 3 bytes: 356 MB).
    """

    def __init__(self, root: str | Path, batch_size: int, size: int, seed: int):
        self.tiles = train_tiles(root, size=None)           # uint8 (n, tile, tile, 3)
        self.batch_size, self.size, self.seed = batch_size, size, seed
        if self.tiles.shape[1] < size:
            raise ValueError(f"photo tiles are {self.tiles.shape[1]}² but the decoder trains "
                             f"at {size}²; rebuild the photo set with larger tiles")

    def batch(self, step: int) -> tuple[torch.Tensor, list[None]]:
        """float (B, 3, size, size) in [0, 1] and B ``None`` captions."""
        rng = np.random.default_rng([self.seed, step])
        n, tile = len(self.tiles), self.tiles.shape[1]
        out = []
        for i, side in zip(rng.integers(0, n, self.batch_size),
                           rng.integers(self.size, tile + 1, self.batch_size)):
            y, x = rng.integers(0, tile - side + 1, 2)
            crop = resize_tiles(self.tiles[i:i + 1, y:y + side, x:x + side], self.size)
            out.append(crop[:, :, ::-1] if rng.random() < 0.5 else crop)
        x = torch.from_numpy(np.concatenate(out)).permute(0, 3, 1, 2).float() / 255.0
        return x, [None] * self.batch_size

    def batches(self, start: int, stop: int):
        """Iterate ``batch(step)`` for steps ``start``..``stop - 1``."""
        for step in range(start, stop):
            yield self.batch(step)


def v_loss(sched: DDPMScheduler, pred: torch.Tensor, target: torch.Tensor,
           t: torch.Tensor) -> torch.Tensor:
    """Min-SNR-5 weighted v-prediction MSE, floored at the plain v-loss (scalar).

    Weight 1 while SNR + 1 <= 5 (every high-noise step keeps its full signal), 5 / (SNR + 1)
    below. The unfloored min(SNR, 5) / (SNR + 1) goes to 0 at high noise; trained with it, the
    prior never learnt the first sampling steps and drew pure noise at step 250.
    """
    weight = torch.clamp(5.0 / (compute_snr(sched, t) + 1), max=1.0)
    return (weight * F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))).mean()


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8, scale: int = 2) -> None:
    """Save float (B, 3, H, W) images as one PNG grid, upscaled ``scale``× (nearest)."""
    b, _, h, w = images.shape
    ncol = math.ceil(b / nrow)
    grid = torch.ones(3, ncol * h, nrow * w)
    for i, im in enumerate(images):
        r, c = divmod(i, nrow)
        grid[:, r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    a = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
    Image.fromarray(a).resize((nrow * w * scale, ncol * h * scale), Image.NEAREST).save(path)
