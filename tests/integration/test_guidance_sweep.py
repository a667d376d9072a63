import json

from experiments.guidance_sweep import run


def test_guidance_sweep_pairs_every_scale_with_scale_one(tmp_path, tiny_preset):
    res = run(str(tiny_preset), n=3, scales=[1.0, 2.0], out=tmp_path, steps=2, batch=2)
    rows = json.loads((tmp_path / "guidance.json").read_text())["rows"]
    assert rows == res["rows"] and len(rows) == 4  # 2 stream sets × 2 scales
    for r in rows:
        assert 0.0 <= r["consistency"] <= 1.0 and r["seconds_per_image"] > 0
        if r["guidance_scale"] == 2.0:  # paired difference to the unguided decode of the set
            base = next(b for b in rows if b["streams"] == r["streams"]
                        and b["guidance_scale"] == 1.0)
            assert abs(r["diff_vs_1"] - (r["consistency"] - base["consistency"])) < 1e-9
        else:
            assert "diff_vs_1" not in r
    assert (tmp_path / "guidance.png").stat().st_size > 0
