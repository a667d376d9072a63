import json

import pytest

from experiments.decode_sweep import main, run


def test_decode_sweep_pairs_every_value_with_the_reference(tmp_path, tiny_preset):
    res = run(str(tiny_preset), n=3, vary="guidance_scale", values=[1.0, 2.0], out=tmp_path,
              streams=("sdgic", "caption"), batch=2, steps=2)
    rows = json.loads((tmp_path / "decode_guidance_scale.json").read_text())["rows"]
    assert rows == res["rows"] and len(rows) == 4  # 2 stream sets × 2 values
    assert res["fixed"]["steps"] == 2 and "--steps 2" in res["command"]
    assert "--precision fp32" in res["command"]
    with pytest.raises(ValueError, match="unknown settings"):
        run(str(tiny_preset), 2, "steps", [2], tmp_path, step=3)
    for r in rows:
        assert 0.0 <= r["consistency"] <= 1.0 and r["seconds_per_image"] > 0
        assert {"shape", "colour", "count"} <= set(r["judge"])
        assert all(0.0 <= v <= 1.0 for v in r["judge"].values())
        if r["guidance_scale"] == 2.0:  # paired difference to the reference of its stream set
            base = next(b for b in rows if b["streams"] == r["streams"]
                        and b["guidance_scale"] == 1.0)
            assert abs(r["diff_vs_ref"] - (r["consistency"] - base["consistency"])) < 1e-9
        else:
            assert "diff_vs_ref" not in r
    assert (tmp_path / "decode_guidance_scale.png").stat().st_size > 0

    res = run(str(tiny_preset), n=2, vary="precision", values=["fp32", "bf16"], out=tmp_path,
              batch=2, steps=2)
    assert [r["precision"] for r in res["rows"]] == ["fp32", "bf16"]
    assert (tmp_path / "decode_precision.png").stat().st_size > 0

    main(["--preset", str(tiny_preset), "--out", str(tmp_path), "--n", "2", "--steps", "2",
          "--guidance-scale", "3", "--vary", "guidance_interval", "--values", "0:1,0:0.5"])
    res = json.loads((tmp_path / "decode_guidance_interval.json").read_text())
    assert [r["guidance_interval"] for r in res["rows"]] == ["0:1", "0:0.5"]
    assert res["reference"] == "0:1" and "--values 0:1,0:0.5" in res["command"]
    assert res["fixed"]["guidance_scale"] == 3.0
    assert (tmp_path / "decode_guidance_interval.png").stat().st_size > 0


def test_decode_sweep_rejects_bad_values(tmp_path, tiny_preset, capsys):
    for args, message in (
            (["--vary", "steps", "--values", "20,ten"], "not all steps values"),
            (["--vary", "steps", "--values", "0"], "must be positive"),
            (["--vary", "precision", "--values", "fp32,fp8"], "precision values must be"),
            (["--vary", "steps", "--values", "2", "--n", "1"], "--n must be at least 2"),
            (["--vary", "guidance_interval", "--values", "0:1,0.6"], "guidance interval '0.6'"),
            (["--vary", "guidance_interval", "--values", "0.8:0.2"], "0 <= lo <= hi <= 1"),
            (["--vary", "steps", "--values", "2", "--guidance-interval", "2:3"],
             "guidance interval '2:3'")):
        with pytest.raises(SystemExit):
            main(["--preset", str(tiny_preset), "--out", str(tmp_path), *args])
        assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown stream sets"):
        run(str(tiny_preset), 2, "steps", [2], tmp_path, streams=("hci",))
