import json

import pytest
import torch

from codec.streams.hci import HCICodec
from training.hci import train


def test_train_mixes_photos_resumes_and_writes_card(tmp_path, tiny_photo_set):
    photos = tiny_photo_set(tmp_path / "photos", n_train=4, n_val=2, tile=64)
    kw = dict(arch="hyperprior", N=8, M=4, depth=2, size=16, batch_size=4, n_train=6, n_eval=3,
              run_dir=tmp_path / "run", checkpoint_every=2, photos=photos, photo_fraction=0.5)
    card = train(tmp_path / "out", 1e-3, 2, **kw)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 2 and ckpt["n_photo"] == 2
    assert "(2 per batch)" in card["train_data"] and str(photos) in card["train_data"]
    assert card["eval_photos"]["n_images"] == 2 and card["eval"]["n_images"] == 3
    # the same command with more steps resumes from the run's checkpoint
    card = train(tmp_path / "out", 1e-3, 4, **kw)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 4
    assert json.loads((tmp_path / "out" / "model_card.json").read_text())["steps"] == 4
    HCICodec.from_pretrained(tmp_path / "out")


def test_photo_fraction_is_checked(tmp_path):
    with pytest.raises(ValueError, match="photo_fraction"):
        train(tmp_path / "out", 1e-3, 1, photos=tmp_path, photo_fraction=1.5)
