"""Train the scene judge on freshly rendered scenes (``sdgic train judge``).

Training scenes come from data set seed ``train_seed`` (default ``seeds.JUDGE_TRAIN``);
evaluation uses a different seed, so no evaluation scene was seen. Mild corruptions (down/up-sampling to half
resolution, blur, noise) keep the judge reliable on reconstructions, not only on clean renders.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from benchmark.judge import ATTRIBUTES, JudgeNet, SceneJudge, judge_loss, scene_targets, score_scene
from benchmark.scene_dataset import render_scenes
from codec.provenance import git_commit, write_model_card
from training.scene_fit import fit_on_scenes
from training.stages import JudgeConfig


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


def train_judge(out: str | Path, **options) -> dict:
    """Train into ``out`` with the :class:`~training.stages.JudgeConfig` fields given as keywords;
    returns the model card."""
    return run_judge(JudgeConfig(out=str(out), **options))


def run_judge(cfg: JudgeConfig) -> dict:
    """Train the model ``cfg`` describes, save it to ``cfg.out`` with a model card, and return
    the card."""
    out, steps, batch_size, lr, seed = Path(cfg.out), cfg.steps, cfg.batch_size, cfg.lr, cfg.seed
    train_scenes, train_seed, workers = cfg.train_scenes, cfg.train_seed, cfg.workers
    eval_scenes, eval_seed = cfg.eval_scenes, cfg.eval_seed
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
        "training_command": cfg.command_line("sdgic train judge"),
        "commit": git_commit(),
        "data": f"{train_scenes} procedural scenes at 128 px, data set seed {train_seed}, "
                "mirrored, down/up-sampled, blurred and noised at random",
        "steps": steps, "batch_size": batch_size, "lr": lr, "config": cfg.record(),
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
    from training.stage_cli import stage_main

    stage_main("judge")
