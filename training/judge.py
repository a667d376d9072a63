"""Train the scene judge on freshly rendered scenes (``sdgic train judge``).

Training scenes come from data set seed ``train_seed`` (default ``seeds.JUDGE_TRAIN``);
evaluation uses a different seed, so no evaluation scene was seen. Mild corruptions (down/up-sampling to half
resolution, blur, noise) keep the judge reliable on reconstructions, not only on clean renders.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmark import seeds
from benchmark.judge import ATTRIBUTES, JudgeNet, SceneJudge, judge_loss, scene_targets, score_scene
from benchmark.scene_dataset import render_scenes
from codec.provenance import git_commit, write_model_card
from training.scene_fit import fit_on_scenes


def evaluate(judge: SceneJudge, n: int, seed: int, size: int = 128, workers: int = 1) -> dict:
    """Per-attribute accuracy of ``judge`` on ``n`` fresh scenes of data set ``seed``."""
    images, scenes = render_scenes(n, seed=seed, size=size, workers=workers)
    pred = judge.predict(images)
    rows = [score_scene(pred, i, sc) for i, sc in enumerate(scenes)]
    # accuracy per attribute over attribute instances (objects for object attributes)
    n_obj = np.array([len(sc.objects) for sc in scenes], dtype=float)
    acc = {}
    for a in ATTRIBUTES:
        v = np.array([r[a] for r in rows])
        acc[a] = float((v * n_obj).sum() / n_obj.sum()) if a not in ("background", "count") \
            else float(v.mean())
    acc["consistency"] = float(np.mean([r["consistency"] for r in rows]))
    return acc


def train_judge(out: str | Path, steps: int = 3000, batch_size: int = 32, lr: float = 2e-3,
                train_scenes: int = 20000, train_seed: int = seeds.JUDGE_TRAIN,
                eval_seed: int = seeds.JUDGE_EVAL,
                eval_scenes: int = 2000, workers: int = 2, seed: int = 0) -> dict:
    """Train a JudgeNet, save it to ``out`` with a model card, and return its metrics."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    images, scenes = render_scenes(train_scenes, seed=train_seed, size=128, workers=workers,
                                   progress=True)
    images = torch.from_numpy(images).permute(0, 3, 1, 2)  # uint8 (N, 3, H, W)
    targets = scene_targets(scenes)
    model = JudgeNet()
    fit_on_scenes(model, judge_loss, images, targets, steps, batch_size, lr, g, "train judge")
    model.save_pretrained(out)
    train_s = time.time() - t0
    metrics = evaluate(SceneJudge(out), eval_scenes, seed=eval_seed, workers=workers)
    metrics_64 = evaluate(SceneJudge(out), eval_scenes // 4, seed=eval_seed + 1, size=64,
                          workers=workers)
    card = {
        "model": "JudgeNet (benchmark/judge.py)",
        "purpose": "referee of scene semantic consistency",
        "training_command": f"sdgic train judge --out {out} --steps {steps}",
        "commit": git_commit(),
        "data": f"{train_scenes} procedural scenes at 128 px, data set seed {train_seed}, "
                "mirrored, down/up-sampled, blurred and noised at random",
        "steps": steps, "batch_size": batch_size, "lr": lr,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(train_s, 1),
        "status": "complete",
        "metrics": {
            f"accuracy_{eval_scenes}_fresh_scenes_128px_seed{eval_seed}": metrics,
            f"accuracy_{eval_scenes // 4}_fresh_scenes_64px_seed{eval_seed + 1}": metrics_64,
        },
    }
    write_model_card(out, card)
    return card


if __name__ == "__main__":
    print(json.dumps(train_judge("benchmark/weights/judge"), indent=2))
