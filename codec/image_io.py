"""Images in: any folder (Kodak, CLIC, DIV2K, your own), any file, any in-memory image (PIL,
array, tensor) → RGB uint8 (H, W, 3), any size; bad files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded; ``path`` names it."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"cannot read image {path}: {why}")
        self.path = path


MAX_SIDE = 1 << 16  # the HCI header stores each side minus one in 16 bits
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


def to_rgb_uint8(image) -> np.ndarray:
    """PIL image (any mode), array (H, W), (H, W, 1|3|4) uint8/uint16/float in [0, 1], or tensor
    (3, H, W) / (1, 3, H, W) float in [0, 1] → uint8 (H, W, 3). Alpha is dropped."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise ValueError(f"image tensor must be (3, H, W) or (1, 3, H, W); got {tuple(t.shape)}")
        image = t.permute(1, 2, 0).numpy()
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {a.shape}")
    if a.shape[-1] == 4:
        a = a[..., :3]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("float image contains NaN or inf")
        a = (np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    else:
        raise ValueError(f"image dtype {a.dtype} not supported; use uint8, uint16 or float")
    h, w = a.shape[:2]
    if h < 2 or w < 2:
        raise ValueError(f"image is {h}×{w}; the HCI codec needs at least 2×2 pixels")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(f"image is {h}×{w}; sides up to {MAX_SIDE} are supported")
    return np.ascontiguousarray(a)
