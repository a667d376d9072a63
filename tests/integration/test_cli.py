import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from experiments.cli import main


def test_data_scenes_writes_pngs_and_jsonl(tmp_path):
    assert main(["data", "scenes", "--n", "5", "--size", "64", "--seed", "3",
                 "--out", str(tmp_path)]) == 0
    recs = [json.loads(l) for l in (tmp_path / "scenes.jsonl").read_text().splitlines()]
    assert len(recs) == 5 and all((tmp_path / r["file"]).is_file() for r in recs)
    assert Image.open(tmp_path / recs[0]["file"]).size == (64, 64)
    assert recs[0]["caption"] and recs[0]["objects"]


def test_eval_identical_folders(tmp_path, capsys):
    ref = tmp_path / "ref"
    assert main(["data", "scenes", "--n", "6", "--seed", "8", "--out", str(ref)]) == 0
    rec = tmp_path / "rec"
    rec.mkdir()
    for p in ref.glob("*.png"):
        shutil.copy(p, rec / p.name)
    assert main(["eval", "--ref", str(ref), "--rec", str(rec), "--out", str(tmp_path / "ev")]) == 0
    df = pd.read_csv(tmp_path / "ev" / "per_image.csv")
    assert len(df) == 6
    assert (df["psnr"] == 100.0).all()
    np.testing.assert_allclose(df["inception_similarity"], 1.0, atol=1e-5)
    assert df["consistency"].mean() > 0.9
    summary = pd.read_csv(tmp_path / "ev" / "summary.csv", index_col=0)
    assert abs(summary.loc["fid", "mean"]) < 1e-2


def test_eval_names_a_corrupt_reference(tmp_path, capsys):
    ref = tmp_path / "ref"
    ref.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(ref / "a.png")
    (ref / "b.png").write_bytes(b"garbage")
    assert main(["eval", "--ref", str(ref), "--rec", str(ref), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "b.png" in err and "Traceback" not in err


def test_bad_arguments_exit_cleanly(tmp_path, capsys):
    assert main(["data", "scenes", "--n", "2", "--size", "4", "--out", str(tmp_path)]) == 2
    assert "--size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["data", "scenes", "--n", "-1", "--out", str(tmp_path)])
    assert e.value.code == 2


def test_train_lists_every_stage_with_its_flags(capsys):
    from pathlib import Path

    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    listed = capsys.readouterr().out
    root = Path(__file__).resolve().parents[2]
    trainers = sorted(p.stem for p in (root / "training").glob("*.py")
                      if "def main" in p.read_text() or "def train_" in p.read_text())
    stage = {"hci_photos": "hci-photos"}
    helpers = {"dpcd_data", "native_pairs", "token_head"}   # used by the trainers, not trainers
    for t in set(trainers) - helpers:
        assert stage.get(t, t) in listed, f"training/{t}.py has no `sdgic train` stage"
    with pytest.raises(SystemExit) as e:
        main(["train", "hci-photos", "--help"])
    assert e.value.code == 0 and "usage: sdgic train hci-photos" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:   # the trainer's own flag checks
        main(["train", "hci", "--out", "x"])
    assert e.value.code == 2 and "--lmbda" in capsys.readouterr().err
