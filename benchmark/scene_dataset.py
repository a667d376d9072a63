"""Scene data sets as torch datasets and a parallel batch renderer."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from benchmark.scenes import Scene, generate


def _render_range(args):
    start, stop, seed, size = args
    out = [generate(i, seed=seed, size=size) for i in range(start, stop)]
    return np.stack([o[0] for o in out]), [o[1].to_dict() for o in out]


def render_scenes(n: int, seed: int = 0, size: int = 128, start: int = 0, workers: int = 1,
                  progress: bool = False) -> tuple[np.ndarray, list[Scene]]:
    """Scenes ``start … start+n-1`` of data set ``seed``: uint8 (n, size, size, 3) and Scenes.

    ``workers > 1`` renders in processes; the result is identical for any worker count.
    """
    chunk = 256
    jobs = [(s, min(s + chunk, start + n), seed, size) for s in range(start, start + n, chunk)]
    images, scenes = [], []
    bar = tqdm(total=n, desc="render scenes", unit="img", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for imgs, dicts in pool.map(_render_range, jobs):
                images.append(imgs)
                scenes += [Scene.from_dict(d) for d in dicts]
                bar.update(len(imgs))
    else:
        for job in jobs:
            imgs, dicts = _render_range(job)
            images.append(imgs)
            scenes += [Scene.from_dict(d) for d in dicts]
            bar.update(len(imgs))
    bar.close()
    return np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8), scenes


def write_scene_folder(out: str | Path, n: int, seed: int = 0, size: int = 128,
                       workers: int = 1, progress: bool = True) -> Path:
    """Write ``scene_XXXXXX.png`` files and ``scenes.jsonl`` (one record per image) to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, scenes = render_scenes(n, seed=seed, size=size, workers=workers, progress=progress)
    with open(out / "scenes.jsonl", "w") as f:
        for i, (img, sc) in enumerate(zip(images, scenes)):
            name = f"scene_{i:06d}.png"
            Image.fromarray(img).save(out / name)
            f.write(json.dumps({"file": name, "index": i, "seed": seed, "size": size,
                                **sc.to_dict()}) + "\n")
    return out


def read_scene_folder(folder: str | Path) -> tuple[list[Path], list[Scene]]:
    """Read ``scenes.jsonl`` from ``folder``: image paths and their Scenes, in file order."""
    folder = Path(folder)
    meta = folder / "scenes.jsonl"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} not found: a scene folder is made by `sdgic data scenes`")
    paths, scenes = [], []
    for k, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            scenes.append(Scene.from_dict(rec))
            paths.append(folder / rec["file"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{meta}, line {k}: not a scene record ({e})") from None
    return paths, scenes


class SceneStream(torch.utils.data.IterableDataset):
    """Endless scenes for training: yields (uint8 (size, size, 3) image, Scene).

    Each worker renders a disjoint index range of data set ``seed``, so no two workers repeat.
    """

    def __init__(self, seed: int, size: int = 128, start: int = 0):
        self.seed, self.size, self.start = seed, size, start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        i = self.start + wid
        while True:
            img, sc = generate(i, seed=self.seed, size=self.size)
            yield img, sc
            i += nw


def collate_scenes(batch):
    imgs = torch.from_numpy(np.stack([b[0] for b in batch])).permute(0, 3, 1, 2).float() / 255.0
    return imgs, [b[1] for b in batch]
