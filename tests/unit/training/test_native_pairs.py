"""Native-scale training data: whole photos beside their HCI, aligned crops, stale HCI
refused, and a few DPCD steps on them that export a native-size preset."""

import json

import numpy as np
import pytest
import torch
from image_support import photo
from PIL import Image

from codec.sdgic import SDGIC, WEIGHTS
from training.native_pairs import NativePairBatches, build_native_pairs

torch.set_num_threads(1)
HCI = WEIGHTS / "hci-photos"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    (root / "full_manifest.json").write_text("{}")
    for split, n in (("train", 2), ("val", 1)):
        (root / "full" / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(photo(150 + 20 * i, 200, seed=i)).save(
                root / "full" / split / f"{split}{i}.jpg", quality=95)
    out = tmp_path_factory.mktemp("pairs")
    build_native_pairs(root, HCI, out, sides=(96,), points=("low", "top"), progress=False)
    return root, out


def _find(big, small):
    """(y, x) where ``small`` sits in ``big`` exactly."""
    h, w = small.shape[:2]
    for y in range(big.shape[0] - h + 1):
        for x in range(big.shape[1] - w + 1):
            if np.array_equal(big[y:y + h, x:x + w], small):
                return y, x
    return None


def test_crops_of_photo_and_hci_are_aligned(pairs):
    _, out = pairs
    m = json.loads((out / "native_pairs.json").read_text())
    assert len(m["items"]) == 3 and m["points"] == ["low", "top"]
    b = NativePairBatches(out, batch_size=4, crop=32, seed=1)
    x, caps, hci = b.batch(7)
    assert x.shape == hci.shape == (4, 3, 32, 32) and caps == [None] * 4
    again = b.batch(7)
    assert torch.equal(again[0], x) and torch.equal(again[2], hci)
    srcs = [np.asarray(Image.open(out / it["files"]["source"])) for it in m["items"]
            if it["split"] == "train"]
    for k in range(4):
        xs = (x[k].permute(1, 2, 0) * 255).round().byte().numpy()
        hs = (hci[k].permute(1, 2, 0) * 255).round().byte().numpy()
        for it, src in zip([i for i in m["items"] if i["split"] == "train"], srcs):
            for flip in (False, True):
                at = _find(src[:, ::-1] if flip else src, xs)
                if at is None:
                    continue
                y, c = at
                rec = [np.asarray(Image.open(out / it["files"][p])) for p in m["points"]]
                rec = [r[:, ::-1] if flip else r for r in rec]
                assert any(np.array_equal(r[y:y + 32, c:c + 32], hs) for r in rec)
                break
            else:
                continue
            break
        else:
            pytest.fail(f"crop {k} is not a crop of any photo")


def test_other_hci_weights_are_refused_and_building_resumes(pairs):
    root, out = pairs
    with pytest.raises(ValueError, match="other HCI weights"):
        NativePairBatches(out, 2, 32, 0, hci_root=WEIGHTS / "hci-64")
    NativePairBatches(out, 2, 32, 0, hci_root=HCI)          # the right ones
    f = next((out / "train").glob("*_top.png"))
    t = f.stat().st_mtime_ns
    build_native_pairs(root, HCI, out, sides=(96,), points=("low", "top"), progress=False)
    assert f.stat().st_mtime_ns == t                       # existing files are kept


def test_native_training_steps_and_export(tmp_path, tiny_native_preset, pairs):
    from training.dpcd import train_dpcd

    root, out = pairs
    export = tmp_path / "native-16"
    kw = dict(stage="rsrt", init=tiny_native_preset, photos=root, native_pairs=out,
              hci_root=HCI, batch_size=2, threads=1, num_tokens=8,
              save_every=2, sample_every=2, export=export)
    train_dpcd(tmp_path / "run", steps=2, **kw)
    assert json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["data"] \
        == "native-photos"
    cfg = json.loads((export / "preset.json").read_text())
    assert cfg["size"] == "native" and "modules" not in cfg and not cfg["caption_stream"]
    card = json.loads((export / "model_card.json").read_text())["stages"]["rsrt"]
    assert f"--native-pairs {out}" in card["training_command"]
    train_dpcd(tmp_path / "run", steps=4, **kw, command="sdgic train dpcd --steps 4 --lr 3e-5")
    card = json.loads((export / "model_card.json").read_text())["stages"]["rsrt"]
    assert card["training_command"] == "sdgic train dpcd --steps 4 --lr 3e-5"   # as run
    assert "command" not in card
    codec = SDGIC.from_pretrained(export)
    assert codec.decode(codec.encode(photo(40, 52)), steps=1).shape == (40, 52, 3)
    with pytest.raises(ValueError, match="needs --photos"):
        train_dpcd(tmp_path / "bad", steps=1, **{**kw, "photos": None})

