"""Any folder of images (Kodak, CLIC, DIV2K, your own): RGB uint8, any size, bad files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded; ``path`` names it."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"cannot read image {path}: {why}")
        self.path = path


MAX_PIXELS = 64 * 1024 * 1024  # larger images are refused before their pixels are decoded


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read one image as uint8 RGB (H, W, 3). Grayscale, palette and RGBA (composited on
    white) are converted. Raises ``UnreadableImageError`` naming the file, also for an image
    of more than ``max_pixels`` pixels (checked from the header, before decoding)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise UnreadableImageError(path, f"{w}×{h} is {w * h} pixels, above the limit "
                                                 f"of {max_pixels}; downscale it first")
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, rgba)
            if im.mode in ("I;16", "I;16B", "I", "F"):
                a = np.asarray(im, dtype=np.float64)
                a = (a - a.min()) / max(a.max() - a.min(), 1e-12) * 255.0
                im = Image.fromarray(a.astype(np.uint8))
            arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise UnreadableImageError(path, "no such file") from None
    except UnreadableImageError:
        raise
    except Image.DecompressionBombError as e:
        raise UnreadableImageError(path, f"above Pillow's pixel limit ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UnreadableImageError(path, f"not a readable image ({e})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UnreadableImageError(path, f"empty image of size {arr.shape[1]}x{arr.shape[0]}")
    return arr


def list_images(folder: str | Path) -> list[Path]:
    """Image files in ``folder`` (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ImageFolder:
    """Images of a folder, in name order; ``folder[i]`` → (name, uint8 RGB (H, W, 3)).

    ``skip_unreadable=False`` (default) raises ``UnreadableImageError`` at the first bad file;
    with ``True`` bad files are left out and listed in ``unreadable`` as (path, reason).
    Unreadable files are found when the folder is opened, so a long run never dies halfway.
    """

    def __init__(self, folder: str | Path, skip_unreadable: bool = False):
        self.folder = Path(folder)
        self.paths, self.unreadable = [], []
        for p in list_images(self.folder):
            try:
                with Image.open(p) as im:
                    im.verify()
                self.paths.append(p)
            except Exception as e:  # PIL raises many types on corrupt data
                err = UnreadableImageError(p, f"not a readable image ({type(e).__name__}: {e})")
                if not skip_unreadable:
                    raise err from None
                self.unreadable.append((p, str(err)))
        if not self.paths:
            raise FileNotFoundError(f"no readable images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray]:
        return self.paths[i].name, load_rgb(self.paths[i])
