import json

import numpy as np
import pandas as pd
import pytest

from experiments.rate_frontier import equal_bits_pairs, frontier, main, run, write_tables


def test_frontier_keeps_only_undominated_points():
    points = pd.DataFrame({"bits": [10, 20, 20, 30, 40, 50],
                           "score": [0.5, 0.4, 0.6, 0.55, 0.7, 0.7]})
    # 20/0.4 loses to 10/0.5; 30/0.55 loses to 20/0.6; 50/0.7 costs more than 40/0.7
    assert list(frontier(points, "score")) == [True, False, True, False, True, False]


def test_equal_bits_pairs_interpolate_the_ladder_per_image():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 5)                               # image-to-image spread
    rows = []
    for rate, k, bits, lift in (("low", 0, 100, 0.0), ("mid", 0, 200, 0.2),
                                ("low", 4, 140, 0.3), ("mid", 4, 240, 0.25)):
        rows += [{"rate": rate, "tokens": k, "image": i, "bits": bits, "score": b + lift}
                 for i, b in enumerate(base)]
    pairs = equal_bits_pairs(pd.DataFrame(rows).sample(frac=1, random_state=2), "score")
    low = pairs.set_index("rate").loc["low"]
    assert (low["below"], low["above"]) == ("low", "mid")
    assert np.isclose(low["gain_vs_below"], 0.3) and np.isclose(low["gain_vs_above"], 0.1)
    # the ladder at 140 bits: log(1.4) / log(2) of the way from low to mid (in log bits)
    assert np.isclose(low["gain_equal_bits"], 0.3 - 0.2 * np.log(1.4) / np.log(2))
    assert np.isclose(low["gain_equal_bits_ci95"], 0.0)          # paired: no image spread
    mid = pairs.set_index("rate").loc["mid"]                     # past the ladder's top
    assert mid["below"] == "mid" and pd.isna(mid["above"])
    assert np.isnan(mid["gain_equal_bits"]) and np.isclose(mid["gain_vs_below"], 0.05)


def test_equal_bits_pairs_pick_the_rungs_around_the_point_and_interpolate_in_log_bits():
    rows = []
    for rate, k, bits, score in (("low", 0, 50, 0.1), ("mid", 0, 100, 0.3), ("top", 0, 400, 0.7),
                                 ("low", 4, 200, 0.6), ("mid", 4, 100, 0.4)):
        rows += [{"rate": rate, "tokens": k, "image": i, "bits": bits, "score": score}
                 for i in range(3)]
    pairs = equal_bits_pairs(pd.DataFrame(rows), "score").set_index("rate")
    low = pairs.loc["low"]                    # 200 bits: between mid (100) and top (400)
    assert (low["below"], low["above"]) == ("mid", "top")
    # log2(200/100) / log2(400/100) = 1/2 of the way: the ladder gives 0.5 there
    assert np.isclose(low["gain_equal_bits"], 0.1)
    mid = pairs.loc["mid"]                    # on a rung: both neighbours are that rung
    assert mid["below"] == mid["above"] == "mid" and np.isclose(mid["gain_equal_bits"], 0.1)


def test_rate_frontier_measures_every_operating_point(tmp_path, tiny_preset, tiny_photo_set,
                                                      capsys):
    res = run(str(tiny_preset), n=3, out=tmp_path / "sc", tokens=[0, 2, 4],
              rates=["low", "mid"], steps=1, batch=2)
    points = res["points"].set_index(["rate", "tokens"])
    assert len(points) == 6 and points["consistency"].between(0, 1).all()
    # every token costs its 10 bits (tiny preset: 4 tokens, FSQ 8·5·5·5)
    assert np.allclose(points.loc[("mid", 2), "bits"] - points.loc[("mid", 0), "bits"], 20)
    assert points["frontier_consistency"].equals(frontier(res["points"], "consistency")
                                                  .set_axis(points.index))
    md = (tmp_path / "sc" / "summary.md").read_text()
    marked = points[["frontier_consistency", "frontier_psnr"]].to_numpy().sum()
    assert md.count(" ★ |") == marked        # the table's marks (the footnote has one more)
    assert "decoder: 1 steps, guidance scale" in md
    pairs = pd.read_csv(tmp_path / "sc" / "pairs.csv")
    assert len(pairs) == 2 * 2 * 2 and set(pairs["metric"]) == {"consistency", "psnr"}
    for f in ("per_image.csv", "points.csv", "summary.md", "consistency_frontier.png",
              "psnr_frontier.png"):
        assert (tmp_path / "sc" / f).stat().st_size > 0
    record = json.loads((tmp_path / "sc" / "command.json").read_text())
    assert "rates=['low', 'mid']" in record["command"] and "steps=1" in record["command"]
    assert record["decoder"]["steps"] == 1 and record["metrics"] == ["consistency", "psnr"]
    # the tables can be redone from the saved per-image rows and the record
    again, _ = write_tables(pd.read_csv(tmp_path / "sc" / "per_image.csv"), record,
                            tmp_path / "sc")
    assert np.allclose(again["consistency"], res["points"]["consistency"])

    import shutil

    fewer = tmp_path / "fewer"                 # a preset that sends 2 tokens by default
    shutil.copytree(tiny_preset, fewer)
    cfg = json.loads((fewer / "preset.json").read_text())
    (fewer / "preset.json").write_text(json.dumps({**cfg, "num_tokens": 2}))
    res = run(str(fewer), n=2, out=tmp_path / "fewer-out", tokens=[0, 4], rates=["mid"],
              steps=1, batch=2)
    assert res["points"]["bits"].diff().iloc[1] == 40    # still all 4 tokens when asked

    photos = tiny_photo_set(tmp_path / "photos", n_val=3)
    res = run(str(tiny_preset), n=2, out=tmp_path / "ph", tokens=[0, 4], rates=["mid"],
              photos=photos, steps=1, batch=2, inception=False)
    assert {"psnr", "ms_ssim"} <= set(res["points"].columns)
    assert "consistency" not in res["points"].columns
    assert res["points"]["bits"].diff().iloc[1] == 40                 # no caption bits

    for args, message in ((["--tokens", "2,4"], "need 0"),
                          (["--tokens", "0,9"], "in [1, 4]"),
                          (["--tokens", "0,x"], "comma-separated integers"),
                          (["--rates", "mid,huge"], "not in preset")):
        with pytest.raises(SystemExit):
            main(["--preset", str(tiny_preset), "--n", "2", "--out", str(tmp_path / "bad"),
                  *args])
        assert message in capsys.readouterr().err


def test_the_command_line_recorded_is_the_one_run(tmp_path, tiny_preset):
    argv = ["--preset", str(tiny_preset), "--n", "2", "--tokens", "0,4", "--rates", "mid",
            "--steps", "1", "--batch", "2", "--out", str(tmp_path / "cli")]
    main(argv)
    record = json.loads((tmp_path / "cli" / "command.json").read_text())
    assert record["command"] == "python -m experiments.rate_frontier " + " ".join(argv)
    assert len(record["commit"]) in (40, 7) or record["commit"] == "unknown"
