"""Whole photographs at their own size: train / val / test split by photo (``sdgic data photos``).

Sources (every image inspected by eye; photographs only):

- the Debian wallpaper photos of ``benchmark.photos.PHOTOS``;
- ``palapeli-data`` (Debian): five 1–2 MP photos (a castle, a bridge, citrus fruit, a bee, a
  chameleon);
- images inside the installed scikit-image, scikit-learn and matplotlib wheels (never the ones
  scikit-image would fetch from the network);
- the photographs of ``photo_sources.json``: GCompris (``gcompris-qt-data``: animals,
  monuments, musicians, the sea floor; inside Qt ``.rcc`` bundles, read by ``qt_rcc``),
  Tux Paint's templates (``tuxpaint-data``) and ``puzzle-jigsaw``'s samples.

Written under ``out``:

- ``full/{train,val}/<name>.jpg``: each photo resized so its long side is at most
  ``FULL_LONG_SIDE`` (never enlarged), JPEG quality 95 — compact enough to carry to a GPU
  machine (see ``full_manifest.json`` for the bytes);
- ``test/768/<name>.png`` and ``test/512/<name>.png``: the test photos, never cropped, resized
  so the long side is 768 (only photos at least that large) and 512;
- ``full_manifest.json``: name, source, original size, split and category of every photo.

The test photos are the six val photos of the tile set (never trained on by any shipped
model) and seven more; no test or val photo contributes a pixel to ``full/train``.
"""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

from PIL import Image

FULL_LONG_SIDE = 1536
TEST_SIDES = (768, 512)

# (name, source, path, category). ``source`` is a Debian package (its unpacked tree) or
# ``wheel:<module>`` (a file inside an installed package).
EXTRA_PHOTOS = [
    ("castle-maintenon", "palapeli-data", "usr/share/palapeli/collection/castle-maintenon.jpg",
     "man-made"),
    ("cincinnati-bridge", "palapeli-data", "usr/share/palapeli/collection/cincinnati-bridge.jpg",
     "man-made"),
    ("citrus-fruits", "palapeli-data", "usr/share/palapeli/collection/citrus-fruits.jpg",
     "nature"),
    ("european-honey-bee", "palapeli-data",
     "usr/share/palapeli/collection/european-honey-bee.jpg", "animals"),
    ("panther-chameleon", "palapeli-data",
     "usr/share/palapeli/collection/panther-chameleon-female.jpg", "animals"),
    ("astronaut", "wheel:skimage", "data/astronaut.png", "people"),
    ("chelsea", "wheel:skimage", "data/chelsea.png", "animals"),
    ("coffee", "wheel:skimage", "data/coffee.png", "man-made"),
    ("rocket", "wheel:skimage", "data/rocket.jpg", "man-made"),
    ("motorcycle", "wheel:skimage", "data/motorcycle_left.png", "man-made"),
    ("china", "wheel:sklearn", "datasets/images/china.jpg", "man-made"),
    ("flower", "wheel:sklearn", "datasets/images/flower.jpg", "nature"),
    ("grace_hopper", "wheel:matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "people"),
]
SOURCES_FILE = Path(__file__).with_name("photo_sources.json")  # photos of GCompris, Tux Paint
                                                               # and puzzle-jigsaw


def package_photos() -> list[dict]:
    """The photos listed in ``photo_sources.json`` (name, package, path, member, category)."""
    return json.loads(SOURCES_FILE.read_text())["photos"]


EXTRA_PACKAGES = ("palapeli-data",) + tuple(sorted({e["package"] for e in package_photos()}))

# The tile set's val photos (benchmark.photos.val_photos) plus five more, one per kind.
TEST_PHOTOS = ("BytheWater", "EveningGlow", "Kite", "Picture_1A_by_freespace", "YellowFlower",
               "picosdeeuropa_by_Aitzol_Berasategi", "astronaut", "chelsea", "coffee",
               "castle-maintenon", "panther-chameleon", "gcompris-explore_world_music-mexico",
               "gcompris-erase-crab")
VAL_PHOTOS = ("flower", "rocket")


def split_of(name: str) -> str:
    """'test', 'val' or 'train' for a photo name."""
    return "test" if name in TEST_PHOTOS else "val" if name in VAL_PHOTOS else "train"


def _wheel_file(module: str, rel: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {module} is not installed; `pip install -e .` "
                                "installs it")
    p = Path(list(spec.submodule_search_locations)[0]) / rel
    if not p.is_file():
        raise FileNotFoundError(f"expected {rel} inside the installed {module}; not found")
    return p


def all_photos(root: Path) -> list[tuple[str, Path, str]]:
    """(name, file, category) of every photo, wallpapers first; ``root`` is the unpacked
    Debian tree (``benchmark.photos.fetch_packages``)."""
    from benchmark.photos import PHOTOS, _resolve, photo_name

    out = [(photo_name(rel), _resolve(root, rel), "nature") for rels in PHOTOS.values()
           for rel in rels]
    for name, source, rel, cat in EXTRA_PHOTOS:
        path = _wheel_file(source[6:], rel) if source.startswith("wheel:") else _resolve(root, rel)
        out.append((name, path, cat))
    bundles: dict = {}
    for e in package_photos():
        path = _resolve(root, e["path"])
        if "member" in e:  # a file inside a Qt resource bundle: extracted once, cached
            from benchmark.qt_rcc import rcc_members

            members = bundles.setdefault(path, rcc_members(path))
            if e["member"] not in members:
                raise FileNotFoundError(f"{e['member']} is not in {path}")
            path = io.BytesIO(members[e["member"]])
        out.append((e["name"], path, e["category"]))
    return out


def resize_long_side(image: Image.Image, side: int) -> Image.Image:
    """``image`` resized (Lanczos) so its long side is ``side``; never enlarged."""
    w, h = image.size
    f = side / max(w, h)
    if f >= 1.0:
        return image
    return image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS)


def build_full_photo_set(out: str | Path, root: str | Path, progress: bool = True) -> dict:
    """Write the whole-photo train/val set and the full-size test set (module docstring)."""
    from tqdm import tqdm

    out, root = Path(out), Path(root)
    manifest = {"full_long_side": FULL_LONG_SIDE, "test_sides": list(TEST_SIDES),
                "photos": []}
    for name, path, cat in tqdm(all_photos(root), desc="whole photos", disable=not progress):
        split = split_of(name)
        image = Image.open(path).convert("RGB")
        entry = {"name": name, "file": getattr(path, "name", "(in a Qt resource bundle)"),
                 "size": list(image.size),
                 "split": split, "category": cat}
        if split == "test":
            for side in TEST_SIDES:
                if max(image.size) < side:
                    continue
                d = out / "test" / str(side)
                d.mkdir(parents=True, exist_ok=True)
                resize_long_side(image, side).save(d / f"{name}.png")
        else:
            d = out / "full" / split
            d.mkdir(parents=True, exist_ok=True)
            im = resize_long_side(image, FULL_LONG_SIDE)
            im.save(d / f"{name}.jpg", quality=95)
            entry["stored_size"] = list(im.size)
            entry["bytes"] = (d / f"{name}.jpg").stat().st_size
        manifest["photos"].append(entry)
    manifest["counts"] = {s: sum(p["split"] == s for p in manifest["photos"])
                          for s in ("train", "val", "test")}
    manifest["train_bytes"] = sum(p.get("bytes", 0) for p in manifest["photos"]
                                  if p["split"] == "train")
    (out / "full_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def full_photos(root: str | Path, split: str) -> list[Path]:
    """Files of ``split`` ('train' or 'val') of the whole-photo set at ``root``, by name."""
    root = Path(root)
    if not (root / "full_manifest.json").is_file():
        raise FileNotFoundError(f"no whole-photo set at {root} (full_manifest.json missing); "
                                f"build it with `sdgic data photos --out {root}`")
    paths = sorted((root / "full" / split).glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no {split} photos under {root / 'full' / split}; rebuild "
                                f"with `sdgic data photos --out {root}`")
    return paths
