import json

import numpy as np
import pandas as pd
import pytest

from experiments.dpcd_eval import main, run


def test_dpcd_eval_variants_subsets_and_outputs(tmp_path, tiny_preset, capsys):
    s = run(str(tiny_preset), n=3, out=tmp_path / "all", steps=2, batch=2, rates=["mid"],
            inception=False, guidance_scale=1.0)
    names = set(s["variant"])
    assert {"hci_codec", "sdgic", "no_rsrt", "no_caption", "no_hci"} <= names
    by = s.set_index("variant")
    floors = by.loc[["jpeg_q1", "webp_q0"]]       # lowest JPEG/WebP: above SDGIC's bits
    assert (floors["bits"] > by.loc["sdgic", "bits"]).all()
    assert floors["consistency"].between(0, 1).all()
    subsets = {v for v in names if v.startswith("subset:")}
    assert len(subsets) == 8 and "subset:none" in subsets    # every subset of 3 streams
    row = s.set_index("variant").loc["sdgic"]
    assert 0 <= row["consistency"] <= 1 and row["bits"] > s.set_index("variant").loc[
        "no_rsrt", "bits"]
    per = pd.read_csv(tmp_path / "all" / "per_image.csv")
    assert len(per) == 3 * len(names)
    gains = pd.read_csv(tmp_path / "all" / "gains.csv").set_index("stream")
    assert list(gains.index) == ["caption", "hci", "rsrt"] and (gains["n"] == 3).all()
    sd, nr = (per[(per.variant == v) & (per.rate == "mid")].set_index("image")
              for v in ("sdgic", "no_rsrt"))
    assert np.isclose(gains.loc["rsrt", "gain"], (sd.consistency - nr.consistency).mean())
    assert np.isclose(gains.loc["rsrt", "bits"], (sd.bits - nr.bits).mean())
    assert "What each stream adds" in (tmp_path / "all" / "summary.md").read_text()
    for f in ("summary.csv", "summary.md", "consistency_vs_bpp.png", "grid.png"):
        assert (tmp_path / "all" / f).stat().st_size > 0
    rec = json.loads((tmp_path / "all" / "command.json").read_text())
    assert rec["command"].startswith("experiments.dpcd_eval.run(") and "subsets=True" in rec["command"]
    assert rec["decoder"]["precision"] == "fp32" and rec["decoder"]["guidance_interval"] == "0:1"

    s = run(str(tiny_preset), n=2, out=tmp_path / "few", steps=2, batch=2, rates=["mid"],
            inception=False, guidance_scale=2.0, subsets=False, precision="bf16",
            guidance_interval=(0.2, 1.0))
    subsets = {v for v in s["variant"] if v.startswith("subset:")}
    assert subsets == {"subset:caption+hci+rsrt", "subset:caption+hci", "subset:hci+rsrt",
                       "subset:caption+rsrt"}                # the free ones: variants' decodes
    rec = json.loads((tmp_path / "few" / "command.json").read_text())
    assert "subsets=False" in rec["command"] and "precision='bf16'" in rec["command"]
    assert rec["decoder"] == {"steps": 2, "guidance_scale": 2.0, "guidance_interval": "0.2:1",
                              "precision": "bf16"}
    assert "guidance scale 2 at t/T in [0.2, 1]" in (tmp_path / "few" / "summary.md").read_text()
    with pytest.raises(SystemExit):
        main(["--preset", str(tiny_preset), "--guidance-interval", "1:0", "--out",
              str(tmp_path / "bad")])
    assert "guidance interval '1:0'" in capsys.readouterr().err


def test_stream_gains_pair_images_within_each_rate():
    from benchmark.codec_eval import stream_gains

    rng = np.random.default_rng(0)
    rows = []
    for rate, offset in (("low", 0.0), ("mid", 0.5)):
        base = rng.uniform(0, 0.5, 6)                     # scene-to-scene spread
        for variant, gain, bits in (("sdgic", 0.1, 150), ("no_rsrt", 0.0, 70)):
            rows += [{"variant": variant, "rate": rate, "image": i, "bits": bits,
                      "consistency": offset + b + gain + 0.01 * (i % 2) * (variant == "sdgic")}
                     for i, b in enumerate(base)]
    per = pd.DataFrame(rows).sample(frac=1, random_state=1)          # any row order
    g = stream_gains(per).set_index("rate")
    assert list(g["stream"]) == ["rsrt", "rsrt"] and (g["n"] == 6).all()
    assert np.allclose(g["gain"], 0.105) and np.allclose(g["bits"], 80)
    # paired: the spread of the differences (0 or 0.01), not of the scenes (0 to 0.5)
    from scipy import stats

    assert np.allclose(g["gain_ci95"], stats.t.ppf(0.975, 5) * np.std([0, .01] * 3, ddof=1)
                       / np.sqrt(6))


def test_dpcd_eval_on_photos_sends_no_caption_and_scores_without_a_judge(tmp_path, tiny_preset,
                                                                          tiny_photo_set):
    photos = tiny_photo_set(tmp_path / "photos", n_val=4)
    out = tmp_path / "ph"
    s = run(str(tiny_preset), n=3, out=out, steps=2, batch=2, rates=["mid"], inception=False,
            guidance_scale=1.0, photos=photos)
    names = set(s["variant"])
    assert {"hci_codec", "sdgic", "no_rsrt", "no_hci", "jpeg_q1", "webp_q0"} <= names
    assert "no_caption" not in names and "consistency" not in s.columns
    assert {v for v in names if v.startswith("subset:")} == {
        "subset:none", "subset:hci", "subset:rsrt", "subset:hci+rsrt"}
    by = s.set_index("variant")
    # 4 tokens × 10 bits (FSQ levels 8·5·5·5), and no caption bits
    assert by.loc["sdgic", "bits"] == by.loc["no_rsrt", "bits"] + 4 * 10
    per = pd.read_csv(out / "per_image.csv")
    assert len(per) == 3 * len(names)
    gains = pd.read_csv(out / "gains.csv")
    assert set(gains["metric"]) == {"psnr", "ms_ssim"}                  # no Inception here
    assert set(gains["stream"]) == {"hci", "rsrt"} and (gains["n"] == 3).all()
    md = (out / "summary.md").read_text()
    assert "3 of 4 val tiles" in md and "captions: none (photos)" in md
    assert (out / "psnr_vs_bpp.png").stat().st_size > 0 and (out / "grid.png").is_file()
    assert str(photos) in json.loads((out / "command.json").read_text())["command"]
    s = run(str(tiny_preset), n=2, out=tmp_path / "two", steps=1, batch=2, rates=["mid"],
            inception=False, subsets=False, photos=photos, tokens=2)
    by = s.set_index("variant")
    assert by.loc["sdgic", "bits"] == by.loc["no_rsrt", "bits"] + 2 * 10
    assert "tokens=2" in json.loads((tmp_path / "two" / "command.json").read_text())["command"]
    assert "RSRT tokens sent: 2 of 4 (20 bits)" in (tmp_path / "two" / "summary.md").read_text()


def test_dpcd_eval_of_a_captionless_preset_on_scenes_sends_no_caption(tmp_path, tiny_preset,
                                                                       capsys, tiny_photo_set):
    import shutil

    folder = tmp_path / "nocap"
    shutil.copytree(tiny_preset, folder)
    cfg = json.loads((folder / "preset.json").read_text())
    (folder / "preset.json").write_text(json.dumps({**cfg, "caption_stream": False}))
    s = run(str(folder), n=2, out=tmp_path / "sc", steps=1, batch=2, rates=["mid"],
            inception=False, subsets=False)
    assert "no_caption" not in set(s["variant"]) and s["consistency"].between(0, 1).all()
    assert "none (the preset sends no caption stream)" in (tmp_path / "sc" / "summary.md").read_text()
    photos = tiny_photo_set(tmp_path / "photos", n_val=2)
    s = run(str(tiny_preset), n=10, out=tmp_path / "ph", steps=1, batch=2, rates=["mid"],
            inception=False, subsets=False, photos=photos)
    assert "--n 10 but the photo set has 2 val tiles" in capsys.readouterr().out
    assert (s.set_index("variant").loc["sdgic", "n"]) == 2
