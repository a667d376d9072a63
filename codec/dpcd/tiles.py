"""Overlapping tiles over a canvas of any size, and the weights that blend them.

DPCD draws an image larger than its networks' training size in tiles of that size whose
noise predictions are blended at every denoising step (MultiDiffusion, Bar-Tal et al. 2023),
so neighbouring tiles agree where they overlap and no seam forms.

Why by hand: diffusers has no tiled sampler for a UNet + ControlNet with per-tile
conditions; the grid and its weights are a few lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["TileGrid"]


def _starts(n: int, tile: int, stride: int) -> list[int]:
    """Tile starts on one axis: the first at 0, the last flush with the end, evenly spaced,
    no further apart than ``stride``."""
    if n <= tile:
        return [0]
    k = math.ceil((n - tile) / stride) + 1
    return sorted({round(i * (n - tile) / (k - 1)) for i in range(k)})


@dataclass(frozen=True)
class TileGrid:
    """Tiles of ``tile`` × ``tile`` covering a ``height`` × ``width`` canvas (units: the model
    space's pixels), neighbours overlapping by at least ``overlap``.

    A canvas smaller than a tile along an axis is covered by one tile there: pad it to
    :attr:`padded_size` first.
    """

    height: int
    width: int
    tile: int
    overlap: int

    def __post_init__(self):
        for k in ("height", "width", "tile", "overlap"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{k} must be an int, got {v!r}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"canvas {self.height}×{self.width} is empty")
        if self.tile < 1:
            raise ValueError(f"tile = {self.tile} must be >= 1")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap = {self.overlap} must be in [0, tile - 1 = "
                             f"{self.tile - 1}]")

    @property
    def padded_size(self) -> tuple[int, int]:
        """(H, W) of the canvas the tiles cover: at least one tile along each axis."""
        return max(self.height, self.tile), max(self.width, self.tile)

    @property
    def corners(self) -> list[tuple[int, int]]:
        """Top-left (y, x) of every tile, row by row."""
        h, w = self.padded_size
        s = self.tile - self.overlap
        return [(y, x) for y in _starts(h, self.tile, s) for x in _starts(w, self.tile, s)]

    def __len__(self) -> int:
        return len(self.corners)

    def weights(self) -> torch.Tensor:
        """float (tile, tile): 1 inside, ramping down linearly to 1/(overlap+1) over the
        ``overlap`` pixels at each edge, so a tile's prediction fades out where its
        neighbour's fades in. Every weight is > 0."""
        i = torch.arange(self.tile, dtype=torch.float32)
        r = torch.minimum(i + 1, self.tile - i) / (self.overlap + 1)
        r = r.clamp(max=1.0)
        return r[:, None] * r[None, :]

    def coverage(self) -> torch.Tensor:
        """float (H, W) of :attr:`padded_size`: the sum of the tiles' weights at each pixel
        (the blend's normaliser; > 0 everywhere)."""
        h, w = self.padded_size
        wt = self.weights()
        acc = torch.zeros(h, w)
        for y, x in self.corners:
            acc[y:y + self.tile, x:x + self.tile] += wt
        return acc

    def crop(self, canvas: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) of :attr:`padded_size` → (B·n_tiles, C, tile, tile), tile by tile
        (tiles of image b are rows ``b·n … b·n + n - 1``)."""
        t = self.tile
        return torch.stack([canvas[:, :, y:y + t, x:x + t] for y, x in self.corners],
                           1).flatten(0, 1)

    def blend(self, tiles: torch.Tensor) -> torch.Tensor:
        """(n_tiles, C, tile, tile) → (1, C, H, W) of :attr:`padded_size`: each pixel the
        :meth:`weights`-weighted mean of the tiles that cover it."""
        if tiles.shape[0] != len(self) or tuple(tiles.shape[-2:]) != (self.tile, self.tile):
            raise ValueError(f"expected ({len(self)}, C, {self.tile}, {self.tile}) tiles, got "
                             f"{tuple(tiles.shape)}")
        h, w = self.padded_size
        acc = tiles.new_zeros(1, tiles.shape[1], h, w)
        wt = self.weights().to(tiles.dtype)
        for (y, x), tile in zip(self.corners, tiles):
            acc[0, :, y:y + self.tile, x:x + self.tile] += tile * wt
        return acc / self.coverage().to(tiles.dtype)

    def seams(self) -> tuple[list[int], list[int]]:
        """Rows and columns where a tile begins or ends inside the canvas (where a seam would
        show if the tiles were not blended)."""
        ys = sorted({c for y, _ in self.corners for c in (y, y + self.tile)} - {0, self.padded_size[0]})
        xs = sorted({c for _, x in self.corners for c in (x, x + self.tile)} - {0, self.padded_size[1]})
        return ys, xs
