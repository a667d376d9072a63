"""The supervised loop the scene judge and the scene captioner share: random batches of
rendered scenes, mirrored half of the time (with their per-cell targets) and corrupted like a
reconstruction, AdamW with a one-cycle learning rate."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.harness import TrainLoop

__all__ = ["fit_on_scenes", "corrupt", "mirror"]


def fit_on_scenes(model, loss_fn, images: torch.Tensor, targets: dict, steps: int,
                  batch_size: int, lr: float, g: torch.Generator, desc: str) -> None:
    """Train ``model`` in place (left in eval mode) on uint8 ``images`` (N, 3, H, W) and their
    ``targets`` (name → (N, ...)) with ``loss_fn(model(x), targets)``; ``g`` draws every
    batch, flip and corruption."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()

    def step_fn(step: int) -> dict:
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        x = images[idx].float() / 255.0
        t = {k: v[idx] for k, v in targets.items()}
        if torch.rand(1, generator=g).item() < 0.5:
            x, t = mirror(x, t)
        loss = loss_fn(model(corrupt(x, g)), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": loss.detach()}

    TrainLoop(desc, 0, steps, log_every=50).run(step_fn)
    model.eval()


def corrupt(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random reconstruction-like corruptions of float (B, 3, H, W) images in [0, 1]."""
    b, _, h, w = x.shape
    out = x.clone()
    r = torch.rand(b, 3, generator=g)
    half = r[:, 0] < 0.35
    if half.any():
        lo = F.interpolate(out[half], scale_factor=0.5, mode="bilinear", antialias=True)
        out[half] = F.interpolate(lo, size=(h, w), mode="bilinear")
    blur = r[:, 1] < 0.2
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0]) / 4.0
        kern = (k[:, None] * k[None, :]).expand(3, 1, 3, 3)
        out[blur] = F.conv2d(F.pad(out[blur], (1, 1, 1, 1), mode="replicate"), kern, groups=3)
    noisy = r[:, 2] < 0.25
    if noisy.any():
        sigma = torch.rand(int(noisy.sum()), 1, 1, 1, generator=g) * 0.05
        out[noisy] = out[noisy] + sigma * torch.randn(out[noisy].shape, generator=g)
    return out.clamp(0, 1)


def mirror(x: torch.Tensor, targets: dict[str, torch.Tensor]) -> tuple:
    """Mirror images (B, 3, H, W) left–right with their per-cell targets (B, 9) (row-major
    3×3 cells flip with them; per-image targets stay)."""
    b = len(x)
    return x.flip(-1), {k: (v.view(b, 3, 3).flip(-1).reshape(b, 9) if v.ndim == 2 else v)
                        for k, v in targets.items()}
