"""The judge and the captioner train through one loop (training/scene_fit.py), seeded: the same
call gives the same weights."""

import torch
from safetensors.torch import load_file


def _eval_seed():
    from benchmark import seeds

    return seeds.JUDGE_EVAL


def test_judge_trains_deterministically_through_the_shared_loop(tmp_path):
    from training.judge import train_judge

    torch.set_num_threads(1)
    cards = [train_judge(tmp_path / name, steps=3, batch_size=4, train_scenes=12,
                         eval_scenes=8, workers=1) for name in ("a", "b")]
    m = cards[0]["metrics"]["accuracy_8_fresh_scenes_128px_seed" + str(_eval_seed())]
    assert 0.0 <= m["consistency"] <= 1.0 and cards[0]["metrics"] == cards[1]["metrics"]
    wa, wb = (load_file(str(next((tmp_path / n).glob("*.safetensors")))) for n in ("a", "b"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
