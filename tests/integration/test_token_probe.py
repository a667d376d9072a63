import json

import pytest

from experiments.token_probe import TOKEN_CASES, main, run


def test_token_probe_measures_loss_cases_and_the_paired_gain(tmp_path, tiny_preset):
    res = run([str(tiny_preset)], n=3, loss_images=4, out=tmp_path, batch=2)
    assert json.loads((tmp_path / "token_probe.json").read_text()) == res
    row = res["presets"][0]
    cases = {(r["caption"], r["tokens"]) for r in row["denoising_loss"]}
    assert cases == {(c, t) for c in (True, False) for t in TOKEN_CASES}
    assert sum(r["n"] for r in row["denoising_loss"]) == 4 * 3 * 2 * 3  # images×repeats×caps×cases
    assert all(r["loss"] > 0 and r["n"] > 0 for r in row["denoising_loss"])
    by_case = {}
    for r in row["denoising_loss"]:
        by_case.setdefault((r["caption"], r["tokens"]), []).append(r["loss"] * r["n"])
    # the random tiny decoder reads its tokens: losing or shuffling them changes the loss
    assert sum(by_case[(True, "all")]) != sum(by_case[(True, "none")])
    c = row["consistency"]
    assert row["rsrt_gain"] == pytest.approx(c["sdgic"] - c["no_rsrt"])


def test_token_probe_rejects_bad_sizes(tmp_path):
    with pytest.raises(SystemExit):
        main(["--n", "1", "--out", str(tmp_path)])
