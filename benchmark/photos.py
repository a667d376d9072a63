"""Natural-photo crops from Debian's wallpaper packages (``sdgic data photos``).

The packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a
work folder: nothing is installed. Only photographs are kept (``PHOTOS`` lists them; renders,
patterns and abstracts are excluded). Each photo is cut into non-overlapping 128×128 tiles at
several scales; near-flat tiles are dropped. The train/val split is by source photo, so no val
photo contributes a tile to train.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

PACKAGES = ("plasma-workspace-wallpapers", "mate-backgrounds", "lomiri-wallpapers-16.04",
            "lomiri-wallpapers-20.04")
# Photographs per package, as (package, path glob inside the unpacked tree). Plasma ships each
# wallpaper in several sizes: the largest is used.
PHOTOS = {
    "plasma-workspace-wallpapers": [
        f"usr/share/wallpapers/{n}" for n in (
            "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
            "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")],
    "mate-backgrounds": [
        f"usr/share/backgrounds/mate/nature/{n}.jpg" for n in (
            "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
            "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")],
    # 15 files, less analogpattern (a pattern) and umang (an abstract render)
    "lomiri-wallpapers-16.04": [
        f"usr/share/backgrounds/{n}.jpg" for n in (
            "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
            "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
            "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
            "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi",
            "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
            "sunset_by_Aitzol_Berasategi")],
    # Fossa, Infinite-Sea and Painting-Colors are renders
    "lomiri-wallpapers-20.04": ["usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"],
}
SCALES = (512, 1024, 2048)  # short side of the resized photo before tiling
VAL_EVERY = 6               # every 6th photo (sorted by name) is a val photo


def photo_name(rel: str) -> str:
    return Path(rel).stem if rel.endswith(".jpg") else Path(rel).name


def val_photos() -> set[str]:
    names = sorted(photo_name(r) for rels in PHOTOS.values() for r in rels)
    return {n for i, n in enumerate(names) if i % VAL_EVERY == VAL_EVERY // 2}


def fetch_packages(workdir: Path, packages=None) -> Path:
    """Download and unpack ``packages`` (default: the wallpaper packages and those of
    ``photo_library.EXTRA_PACKAGES``) into ``workdir/root``; return that root."""
    from benchmark.photo_library import EXTRA_PACKAGES

    packages = PACKAGES + EXTRA_PACKAGES if packages is None else tuple(packages)
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError("`sdgic data photos` needs apt-get and dpkg-deb (a Debian-based "
                           "system); on other systems, pass a folder of photos to the folder loader")
    debs = workdir / "debs"
    root = workdir / "root"
    debs.mkdir(parents=True, exist_ok=True)
    for pkg in packages:
        if not list(debs.glob(f"{pkg}_*.deb")):
            r = subprocess.run(["apt-get", "download", pkg], cwd=debs, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"apt-get download {pkg} failed: {r.stderr.strip()[-300:]}\n"
                                   "Run `apt-get update` first if the package lists are missing.")
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def _resolve(root: Path, rel: str) -> Path:
    p = root / rel
    if p.is_dir():  # plasma layout: contents/images/WxH.ext, take the largest
        cands = list((p / "contents" / "images").glob("*x*.*"))
        if not cands:
            raise FileNotFoundError(f"no images under {p}/contents/images")
        return max(cands, key=lambda c: int(c.stem.split("x")[0]) * int(c.stem.split("x")[1]))
    if not p.is_file():
        raise FileNotFoundError(f"expected photo {rel} in the unpacked packages; not found")
    return p


def tiles_of(image: Image.Image, tile: int = 128, scales=SCALES, min_std: float = 6.0):
    """Non-overlapping ``tile``² uint8 tiles of ``image`` at each scale; near-flat ones dropped."""
    w, h = image.size
    for s in scales:
        f = s / min(w, h)
        if f > 1.0:
            continue
        im = image.resize((max(tile, round(w * f)), max(tile, round(h * f))), Image.LANCZOS)
        a = np.asarray(im)
        for y in range(0, a.shape[0] - tile + 1, tile):
            for x in range(0, a.shape[1] - tile + 1, tile):
                t = a[y:y + tile, x:x + tile]
                if t.std() >= min_std:
                    yield s, y, x, t


def build_photo_set(out: str | Path, workdir: str | Path | None = None, tile: int = 128,
                    progress: bool = True) -> dict:
    """Write ``out/{train,val}/*.png`` tiles and ``out/manifest.json``, then the whole-photo
    set of ``photo_library`` (``manifest["full"]``); return the manifest."""
    out = Path(out)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="sdgic-wallpapers-")
        workdir = tmp.name
    root = fetch_packages(Path(workdir))
    val = val_photos()
    manifest = {"tile": tile, "scales": list(SCALES), "photos": [], "renders_excluded": True}
    for split in ("train", "val"):
        (out / split).mkdir(parents=True, exist_ok=True)
    items = [(pkg, rel) for pkg, rels in PHOTOS.items() for rel in rels]
    for pkg, rel in tqdm(items, desc="tile photos", disable=not progress):
        name = photo_name(rel)
        split = "val" if name in val else "train"
        src = _resolve(root, rel)
        image = Image.open(src).convert("RGB")
        n = 0
        for s, y, x, t in tiles_of(image, tile):
            Image.fromarray(t).save(out / split / f"{name}_s{s}_{y}_{x}.png")
            n += 1
        manifest["photos"].append({"name": name, "package": pkg, "file": str(src.relative_to(root)),
                                   "size": list(image.size), "split": split, "tiles": n})
    manifest["tiles"] = {sp: sum(p["tiles"] for p in manifest["photos"] if p["split"] == sp)
                         for sp in ("train", "val")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    from benchmark.photo_library import build_full_photo_set

    manifest["full"] = build_full_photo_set(out, root, progress=progress)
    if tmp is not None:
        tmp.cleanup()
    return manifest


def _manifest(root: Path) -> dict:
    mf = root / "manifest.json"
    if not mf.is_file():
        raise FileNotFoundError(f"no photo set at {root} (manifest.json missing); build it with "
                                f"`sdgic data photos --out {root}`")
    return json.loads(mf.read_text())


def resize_tiles(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (n, t, t, 3) → uint8 (n, size, size, 3), antialiased bicubic (as the SDGIC encoder
    resizes to its preset), rounded."""
    import torch
    import torch.nn.functional as F

    if images.shape[1:3] == (size, size):
        return images
    out = []
    for i in range(0, len(images), 512):  # bounded memory for the whole train split
        x = torch.from_numpy(images[i:i + 512]).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True,
                          align_corners=False).clamp(0, 1)
        out.append((x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def train_tiles(root: str | Path, size: int | None) -> np.ndarray:
    """All train tiles of the photo set at ``root`` resized to ``size``²: uint8
    (n, size, size, 3), in file-name order; ``size`` None: as stored, (n, tile, tile, 3)."""
    from codec.image_io import load_rgb

    root = Path(root)
    _manifest(root)
    paths = sorted((root / "train").glob("*.png"))
    if not paths:
        raise FileNotFoundError(f"no train tiles under {root / 'train'}; rebuild with "
                                f"`sdgic data photos --out {root}`")
    tiles = np.stack([load_rgb(p) for p in paths])
    return tiles if size is None else resize_tiles(tiles, size)


def val_tiles(root: str | Path, n: int, size: int, seed: int):
    """A fixed subset of ``n`` val tiles of the photo set at ``root`` (``n`` ≤ 0: all), drawn
    evenly per source photo with a seeded generator, resized to ``size``² (``resize_tiles``).
    Returns uint8 (n, size, size, 3), the tile names and a description."""
    from codec.image_io import load_rgb

    root = Path(root)
    manifest = _manifest(root)
    val = sorted(p["name"] for p in manifest["photos"] if p["split"] == "val")
    by_photo = {v: sorted((root / "val").glob(f"{v}_s*.png")) for v in val}
    total = sum(len(t) for t in by_photo.values())
    if total == 0:
        raise FileNotFoundError(f"no val tiles under {root / 'val'}; rebuild with "
                                f"`sdgic data photos --out {root}`")
    rng = np.random.default_rng(seed)
    if n <= 0 or n >= total:
        paths = [p for v in val for p in by_photo[v]]
    else:  # equal share per photo; a photo with too few tiles gives its share to the others
        quota, left, todo = {}, n, sorted(val, key=lambda v: len(by_photo[v]))
        for i, v in enumerate(todo):
            quota[v] = min(len(by_photo[v]), left // (len(todo) - i))
            left -= quota[v]
        paths = []
        for v in val:
            pick = rng.choice(len(by_photo[v]), size=quota[v], replace=False)
            paths += [by_photo[v][i] for i in sorted(pick)]
    images = np.stack([load_rgb(p) for p in paths])
    tile = images.shape[1]
    images = resize_tiles(images, size)
    counts = {v: sum(p.name.startswith(v + "_s") for p in paths) for v in val}
    desc = (f"{len(paths)} of {total} val tiles ({tile}x{tile}) of the photo set {root} "
            f"(val photos: {counts}; fixed subset, seed {seed}), resized to {size}x{size} with "
            "antialiased bicubic interpolation (torch F.interpolate, antialias=True), rounded to "
            "uint8")
    return images, [p.name for p in paths], desc
