"""Train the scene captioner (``sdgic train captioner``).

Training scenes come from data set seed 5005 at 64 px (the judge trains on seed 1001 at 128 px
and evaluation uses other seeds), with the judge's reconstruction-like corruptions so the
captioner also reads slightly degraded inputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from benchmark import seeds
from benchmark.captioner import (CaptionerNet, SceneCaptioner, background_words, captioner_loss,
                                 captioner_targets)
from benchmark.scene_dataset import render_scenes
from codec.provenance import git_commit, write_model_card
from training.scene_fit import fit_on_scenes
from training.stages import CaptionerConfig

TRAIN_SEED = seeds.CAPTIONER_TRAIN
EVAL_SEED = seeds.CAPTIONER_EVAL


def evaluate_captioner(captioner: SceneCaptioner, n: int = 1000, seed: int = EVAL_SEED,
                       size: int = 64) -> dict:
    """Exact-caption rate and per-attribute accuracy on ``n`` fresh scenes."""
    images, scenes = render_scenes(n, seed=seed, size=size)
    pred = captioner.scenes(images)
    exact = np.mean([p.caption == s.caption for p, s in zip(pred, scenes)])
    hits = {k: [] for k in ("position", "shape", "colour", "size", "texture")}
    for p, s in zip(pred, scenes):
        by_cell = {o.cell: o for o in p.objects}
        for o in s.objects:
            q = by_cell.get(o.cell)
            hits["position"].append(q is not None)
            for k in ("shape", "colour", "size", "texture"):
                hits[k].append(q is not None and getattr(q, k) == getattr(o, k))
    out = {"exact_caption": float(exact)}
    out.update({k: float(np.mean(v)) for k, v in hits.items()})
    out["background_word"] = float(np.mean([p.background_word == s.background_word
                                            for p, s in zip(pred, scenes)]))
    out["count"] = float(np.mean([len(p.objects) == len(s.objects) for p, s in zip(pred, scenes)]))
    return out


def train_captioner(out: str | Path, **options) -> dict:
    """Train into ``out`` with the :class:`~training.stages.CaptionerConfig` fields given as keywords;
    returns the model card."""
    return run_captioner(CaptionerConfig(out=str(out), **options))


def run_captioner(cfg: CaptionerConfig) -> dict:
    """Train the model ``cfg`` describes, save it to ``cfg.out`` with a model card, and return
    the card."""
    out, steps, batch_size, lr, seed = Path(cfg.out), cfg.steps, cfg.batch_size, cfg.lr, cfg.seed
    train_scenes, size, eval_scenes = cfg.train_scenes, cfg.size, cfg.eval_scenes
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    images, scenes = render_scenes(train_scenes, seed=TRAIN_SEED, size=size, progress=True)
    images = torch.from_numpy(images).permute(0, 3, 1, 2)
    targets = captioner_targets(scenes)
    model = CaptionerNet(input_size=size, num_words=len(background_words()))
    fit_on_scenes(model, captioner_loss, images, targets, steps, batch_size, lr, g,
                  "train captioner")
    model.save_pretrained(out)
    train_s = time.time() - t0
    metrics = evaluate_captioner(SceneCaptioner(out), eval_scenes, size=size)
    card = {
        "model": "CaptionerNet (benchmark/captioner.py)",
        "purpose": "caption stream of SDGIC on procedural scenes (not the judge)",
        "training_command": cfg.command_line("sdgic train captioner"),
        "commit": git_commit(),
        "data": f"{train_scenes} procedural scenes at {size} px, data set seed {TRAIN_SEED}, "
                "mirrored, down/up-sampled, blurred and noised at random",
        "steps": steps, "batch_size": batch_size, "lr": lr, "config": cfg.record(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(train_s, 1), "status": "complete",
        "metrics": {f"{eval_scenes}_fresh_scenes_{size}px_seed{EVAL_SEED}": metrics},
    }
    write_model_card(out, card)
    return card
