import json
import os

import numpy as np
import pytest
import torch
from dpcd_support import tiny_dpcd_modules
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """Tests by cost: every test of a trainer carries the ``training`` marker (select or skip
    them with ``-m training`` / ``-m 'not training'``)."""
    for item in items:
        if "training" in item.path.parts[-3:-1]:
            item.add_marker(pytest.mark.training)


@pytest.fixture(scope="session")
def judge():
    from benchmark.judge import SceneJudge

    return SceneJudge()


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory):
    """A complete SDGIC preset folder of tiny random DPCD modules (UNet, ControlNet, RSRT) at
    16×16, using the shipped HCI rate points. Load it with ``SDGIC.from_pretrained(folder)``."""
    from codec.dpcd.rsrt import RSRTEmbedding, RSRTEncoder
    from codec.preset import Preset
    from codec.sdgic import WEIGHTS, write_preset

    unet, controlnet = tiny_dpcd_modules()
    folder = tmp_path_factory.mktemp("tiny_preset")
    preset = Preset("tiny-16", 16, str(WEIGHTS / "hci-64"), ("low", "mid", "high", "top"), "mid")
    return write_preset(folder, preset, unet, controlnet=controlnet,
                        rsrt_encoder=RSRTEncoder(num_tokens=4, width=16),
                        rsrt_embedding=RSRTEmbedding(num_tokens=4))


@pytest.fixture(scope="session")
def tiny_native_preset(tmp_path_factory):
    """A native-size preset folder (``"size": "native"``): a tiny random UNet and ControlNet
    at 16×16 tiles (overlap 4 px), the shipped photo HCI (low, top) and the trained RSRT
    encoder of ``photos-64`` (so tiles with different content get different tokens), 2 tokens
    per tile, no caption stream, 2 steps."""
    from codec.dpcd.rsrt import RSRTEmbedding, RSRTEncoder
    from codec.preset import DecodeSettings, Preset
    from codec.sdgic import WEIGHTS, write_preset

    trained = WEIGHTS / "photos-64"
    unet, cn = tiny_dpcd_modules()
    preset = Preset("tiny-native", 16, str(WEIGHTS / "hci-photos"), ("low", "top"), "low",
                    decode=DecodeSettings(steps=2), size="native", tile_overlap=4, num_tokens=2,
                    caption_stream=False)
    return write_preset(tmp_path_factory.mktemp("native"), preset, unet, controlnet=cn,
                        rsrt_encoder=RSRTEncoder.from_pretrained(trained / "rsrt_encoder"),
                        rsrt_embedding=RSRTEmbedding.from_pretrained(trained / "rsrt_embedding"))


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


@pytest.fixture
def one_thread():
    """Run the test on one torch thread (small models are fastest so, and CI has 2 cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
