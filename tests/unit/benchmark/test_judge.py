import numpy as np
import pytest
import torch

from benchmark.judge import ATTRIBUTES, JudgeNet, judge_loss, scene_targets, score_scene
from benchmark.scene_dataset import render_scenes


def test_judge_output_shapes_any_input_size():
    m = JudgeNet(width=8).eval()
    for s in (64, 128, 200):
        out = m(torch.rand(2, 3, s, s))
        assert out["present"].shape == (2, 9)
        assert out["shape"].shape == (2, 9, 8) and out["colour"].shape == (2, 9, 8)
        assert out["size"].shape == (2, 9, 2) and out["texture"].shape == (2, 9, 4)
        assert out["background"].shape == (2, 4)


def test_judge_rejects_wrong_shape():
    with pytest.raises(ValueError, match="B, 3, H, W"):
        JudgeNet(width=8)(torch.rand(3, 64, 64))


def test_loss_is_finite_and_falls_with_training():
    torch.manual_seed(0)
    imgs, scenes = render_scenes(8, seed=1, size=64)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    t = scene_targets(scenes)
    m = JudgeNet(width=8, input_size=64)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    first = None
    for _ in range(30):
        loss = judge_loss(m(x), t)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_shipped_judge_reads_fresh_scenes(judge):
    # 200 scenes from a seed the judge never trained on
    imgs, scenes = render_scenes(200, seed=7007)
    rows = judge.consistency(imgs, scenes)
    n = np.array([len(s.objects) for s in scenes])
    for a in ATTRIBUTES:
        v = np.array([r[a] for r in rows])
        acc = (v * n).sum() / n.sum() if a not in ("background", "count") else v.mean()
        assert acc >= 0.95, (a, acc)


def test_consistency_drops_when_the_picture_is_wrong(judge):
    imgs, scenes = render_scenes(40, seed=7008)
    good = np.mean([r["consistency"] for r in judge.consistency(imgs, scenes)])
    shuffled = np.mean([r["consistency"] for r in judge.consistency(imgs[::-1].copy(), scenes)])
    assert good > 0.95 and shuffled < good - 0.3


def test_score_scene_counts_hallucinated_objects():
    _, scenes = render_scenes(1, seed=3, size=32)
    sc = scenes[0]
    t = scene_targets(scenes)
    pred = {k: (v.numpy() > 0.5 if k == "present" else v.clamp_min(0).numpy())
            for k, v in t.items()}
    perfect = score_scene(pred, 0, sc)
    assert perfect["consistency"] == 1.0
    empty = [c for c in range(9) if c not in {o.cell for o in sc.objects}]
    pred["present"][0, empty[0]] = True
    assert score_scene(pred, 0, sc)["count"] == 0.0
