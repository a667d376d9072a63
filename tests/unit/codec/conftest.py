import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def tiny_photo_set():
    """Builder of a photo-set folder laid out as `sdgic data photos` writes it (random tiles)."""
    def build(root, n_train=5, n_val=3, tile=32):
        rng = np.random.default_rng(0)
        photos = []
        for split, n, name in (("train", n_train, "tr"), ("val", n_val, "va")):
            (root / split).mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 255, (tile, tile, 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / f"{name}_s512_0_{i * tile}.png")
            photos.append({"name": name, "split": split, "tiles": n})
        (root / "manifest.json").write_text(json.dumps({"tile": tile, "photos": photos}))
        return root
    return build
