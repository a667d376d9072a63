"""The native-crop HCI trainer: crops, a few steps, resume, export, and the photo R-D table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from training.hci_photos import main, native_crops


def _photo_set(root):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 1)):
        (root / "full" / split).mkdir(parents=True)
        for i in range(n):
            h, w = int(rng.integers(90, 140)), int(rng.integers(90, 160))
            a = (rng.random((h, w, 3)) * 255).astype(np.uint8)
            Image.fromarray(a).save(root / "full" / split / f"p{i}.jpg", quality=95)
    (root / "full_manifest.json").write_text("{}")


def test_native_crops_are_seeded_and_in_range():
    photos = [np.random.default_rng(i).integers(0, 255, (300, 200 + 50 * i, 3), np.uint8)
              for i in range(3)]
    a = native_crops(photos, 4, 64, torch.Generator().manual_seed(5), 128, 512, 0.1)
    b = native_crops(photos, 4, 64, torch.Generator().manual_seed(5), 128, 512, 0.1)
    assert a.shape == (4, 3, 64, 64) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1


@pytest.mark.timeout(300)
def test_train_resume_export_and_rd(tmp_path):
    torch.set_num_threads(1)
    _photo_set(tmp_path / "photos")
    args = ["--run", str(tmp_path / "run"), "--photos", str(tmp_path / "photos"), "--N", "8",
            "--M", "6", "--Nz", "4", "--depth", "3", "--crop", "32", "--batch-size", "2",
            "--min-side", "64", "--max-side", "128", "--lmbdas", "1e-4", "1e-3",
            "--checkpoint-every", "2"]
    main(args + ["--steps", "3"])
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 3
    main(args + ["--steps", "5"])  # resumes
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 5
    main(args + ["--export", str(tmp_path / "hci")])
    card = json.loads((tmp_path / "hci" / "model_card.json").read_text())
    assert card["steps"] == 5 and set(card["rate_points"]) == {"low", "mid"}
    before, after = card["aux_loss_before_after_settling"]     # quantiles fitted at export
    assert after <= before
    assert not (tmp_path / "hci" / "low" / "model.safetensors").exists()  # shared weights

    from experiments.photo_rd import run

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (45, 70, 3), np.uint8)).save(
        imgs / "odd.png")
    rec = run(tmp_path / "hci", imgs, tmp_path / "rd", qualities=[5], factors=[1, 2],
              slice_rows=2)
    s = rec["summary"]
    assert set(s) == {"low", "mid"} and s["low"]["photos"] == 1
    assert (tmp_path / "rd.csv").is_file() and (tmp_path / "rd.png").is_file()
