"""Test images shared by tests in any folder (``tests/`` is on the path through its conftest;
import as a plain module: ``from image_support import photo``)."""

import numpy as np


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth image with edges and a little noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 90 * np.sin(x / 7.0 + c) * np.cos(y / 11.0 - c) for c in range(3)], -1)
    img[h // 3:h // 2, w // 4:w // 2] = [230, 40, 30]
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
