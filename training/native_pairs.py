"""Whole photos beside their photo-HCI reconstructions, and aligned crops of both: the data
that trains DPCD at native scale.

A native-size preset (``"size": "native"``) decodes a photo in tiles whose ControlNet reads a
crop of the HCI *of the whole photo*. Coding a 64² crop alone would not give that crop (the
HCI's transforms reach 60 pixels and more; a 64² crop is 2×2 latents), so the HCI of every
whole photo is computed once, at each rate point and at a few sizes, and training cuts
aligned crops of the photo and its HCI::

    build_native_pairs("data/photos", "codec/weights/hci-photos", "data/native-pairs")
    batches = NativePairBatches("data/native-pairs", batch_size=16, crop=64, seed=3003)
    x, captions, hci = batches.batch(step)      # (B, 3, 64, 64) each, captions all None

The manifest records a fingerprint of the HCI weights; :class:`NativePairBatches` refuses a
folder made with other weights when given the HCI root, since a retrained HCI changes every
reconstruction. Building is resumable (existing files are kept).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["MANIFEST", "build_native_pairs", "hci_fingerprint", "NativePairBatches"]

MANIFEST = "native_pairs.json"
DEFAULT_SIDES = (512, 768)
DEFAULT_POINTS = ("low", "mid", "high", "top")


def hci_fingerprint(hci_root: str | Path, points: Sequence[str] = DEFAULT_POINTS) -> str:
    """16-hex hash of the rate points' configs and the weights they load (content)."""
    h = hashlib.blake2b(digest_size=8)
    root = Path(hci_root)
    for p in points:
        cfg_path = root / p / "config.json"
        cfg = json.loads(cfg_path.read_text())
        h.update(cfg_path.read_bytes())
        w = (root / p / cfg.get("weights", "model.safetensors")).resolve()
        h.update(w.read_bytes())
    return h.hexdigest()


def _resize_long_side(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    s = side / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)


def build_native_pairs(photos: str | Path, hci_root: str | Path, out: str | Path,
                       sides: Sequence[int] = DEFAULT_SIDES,
                       points: Sequence[str] = DEFAULT_POINTS, progress: bool = True) -> dict:
    """Write ``out/<split>/<photo>_s<side>.png`` and ``..._s<side>_<point>.png`` (the photo
    with its long side at ``side``, and its HCI reconstruction at each rate point, coded and
    decoded through the real bitstream) for the train and val whole photos of a
    ``sdgic data photos`` folder, and the manifest. Returns the manifest."""
    from tqdm import tqdm

    from benchmark.photo_library import full_photos
    from codec.streams.hci import HCICodec

    out = Path(out)
    codecs = {p: HCICodec.from_pretrained(Path(hci_root) / p) for p in points}
    items = []
    todo = [(split, path) for split in ("train", "val") for path in full_photos(photos, split)]
    for split, path in tqdm(todo, desc="native pairs", unit="photo", disable=not progress):
        (out / split).mkdir(parents=True, exist_ok=True)
        src = Image.open(path).convert("RGB")
        for side in sides:
            stem = f"{path.stem}_s{side}"
            files = {"source": f"{split}/{stem}.png"}
            img = None
            if not (out / files["source"]).is_file():
                img = _resize_long_side(src, side)
                img.save(out / files["source"])
            for p, codec in codecs.items():
                files[p] = f"{split}/{stem}_{p}.png"
                if not (out / files[p]).is_file():
                    if img is None:
                        img = Image.open(out / files["source"]).convert("RGB")
                    rec = codec.decode(codec.encode(np.asarray(img)))
                    Image.fromarray(rec).save(out / files[p])
            items.append(dict(split=split, photo=path.stem, side=int(side), files=files))
    manifest = dict(photos=str(photos), hci_root=str(hci_root),
                    hci_fingerprint=hci_fingerprint(hci_root, points), points=list(points),
                    sides=[int(s) for s in sides], items=items)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


class NativePairBatches:
    """Random aligned crops of the photos of a :func:`build_native_pairs` folder and of
    their HCI at a random rate point (per crop), with random horizontal flips.

    Parameters
    ----------
    folder : path
    batch_size, crop : int
        Crops per batch and their side [px].
    seed : int
        Batch ``step`` depends on ``seed`` and ``step`` only (resumable, order-free).
    split : "train" | "val"
    hci_root : path, optional
        Refuse the folder if it was made with other HCI weights.
    """

    def __init__(self, folder: str | Path, batch_size: int, crop: int, seed: int,
                 split: str = "train", hci_root: Optional[str | Path] = None):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"no {MANIFEST} in {self.folder}; build it with `sdgic data "
                                    f"native-pairs --photos data/photos --out {self.folder}`")
        m = json.loads(path.read_text())
        if hci_root is not None and hci_fingerprint(hci_root, m["points"]) != m["hci_fingerprint"]:
            raise ValueError(f"{self.folder} holds reconstructions of other HCI weights than "
                             f"{hci_root}; rebuild it (`sdgic data native-pairs`)")
        items = [it for it in m["items"] if it["split"] == split]
        if not items:
            raise FileNotFoundError(f"no {split} photos in {path}")
        self.points = m["points"]
        self.batch_size, self.crop, self.seed = int(batch_size), int(crop), int(seed)

        def load(rel):
            return np.asarray(Image.open(self.folder / rel).convert("RGB"))

        self.sources = [load(it["files"]["source"]) for it in items]
        self.hcis = [[load(it["files"][p]) for p in self.points] for it in items]
        small = [s.shape[:2] for s in self.sources if min(s.shape[:2]) < self.crop]
        if small:
            raise ValueError(f"crop {self.crop} is larger than photos of size {small[0]}")

    def __len__(self) -> int:
        return len(self.sources)

    def batch(self, step: int):
        """``(x, captions, hci)``: float (B, 3, crop, crop) in [0, 1] twice, and B `None`."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(step))
        xs, hs = [], []
        c = self.crop
        for _ in range(self.batch_size):
            i = int(torch.randint(len(self.sources), (1,), generator=g))
            r = int(torch.randint(len(self.points), (1,), generator=g))
            h, w = self.sources[i].shape[:2]
            y = int(torch.randint(h - c + 1, (1,), generator=g))
            x = int(torch.randint(w - c + 1, (1,), generator=g))
            flip = bool(torch.rand(1, generator=g) < 0.5)
            a = self.sources[i][y:y + c, x:x + c]
            b = self.hcis[i][r][y:y + c, x:x + c]
            if flip:
                a, b = a[:, ::-1], b[:, ::-1]
            xs.append(np.ascontiguousarray(a))
            hs.append(np.ascontiguousarray(b))

        def t(arrs):
            return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255.0

        return t(xs), [None] * self.batch_size, t(hs)

    def batches(self, start: int, steps: int) -> Iterator[tuple]:
        for step in range(start, steps):
            yield self.batch(step)
