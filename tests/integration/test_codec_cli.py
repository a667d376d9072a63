"""sdgic encode / inspect / decode, like a user: good files, then bad ones."""

import numpy as np
import pytest
from PIL import Image

from benchmark.scenes import generate
from experiments.cli import main


@pytest.fixture()
def scene_png(tmp_path):
    img, sc = generate(4, seed=21, size=64)
    Image.fromarray(img).save(tmp_path / "s.png")
    (tmp_path / "s.txt").write_text(sc.caption + "\n")
    return tmp_path / "s.png", sc.caption


def test_encode_inspect_decode(tiny_preset, scene_png, tmp_path, capsys):
    png, caption = scene_png
    sdg = tmp_path / "s.sdg"
    assert main(["encode", str(png), "-o", str(sdg), "--preset", str(tiny_preset),
                 "--rate", "low", "--tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "caption from sidecar s.txt" in out and caption in out
    assert main(["inspect", str(sdg)]) == 0
    out = capsys.readouterr().out
    assert "tiny-16:low" in out and "3 tokens × 10 bits" in out and "total" in out
    rec = tmp_path / "rec.png"
    assert main(["decode", str(sdg), "-o", str(rec), "--steps", "2", "--preset",
                 str(tiny_preset), "--drop", "hci", "--lose-tokens", "0,2"]) == 0
    assert "['caption', 'rsrt']" in capsys.readouterr().out
    assert Image.open(rec).size == (64, 64)
    assert main(["decode", str(sdg), "-o", str(rec), "--steps", "2", "--preset",
                 str(tiny_preset), "--guidance", "3", "--guidance-interval", "0.3:1"]) == 0
    with pytest.raises(SystemExit):
        main(["decode", str(sdg), "--preset", str(tiny_preset), "--guidance-interval", "0.9:0.1"])
    err = capsys.readouterr().err
    assert "guidance interval '0.9:0.1'" in err and "0 <= lo <= hi <= 1" in err
    # any size and mode: a grey 37×23 image, caption given on the command line
    Image.fromarray(np.full((23, 37), 128, np.uint8)).save(tmp_path / "g.png")
    assert main(["encode", str(tmp_path / "g.png"), "--preset", str(tiny_preset),
                 "--caption", "grey"]) == 0
    assert main(["decode", str(tmp_path / "g.sdg"), "--steps", "1", "--preset",
                 str(tiny_preset)]) == 0
    assert Image.open(tmp_path / "g.png").size == (37, 23)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not an image"), "not a readable image"),
    (lambda p: p.write_bytes(b""), "not a readable image"),
    (lambda p: Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(p), "2×2"),
])
def test_encode_bad_images(tiny_preset, tmp_path, capsys, make, message):
    bad = tmp_path / "bad.png"
    make(bad)
    assert main(["encode", str(bad), "--preset", str(tiny_preset), "--no-caption"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_corrupt_and_foreign_containers(tiny_preset, scene_png, tmp_path, capsys):
    png, _ = scene_png
    sdg = tmp_path / "s.sdg"
    assert main(["encode", str(png), "-o", str(sdg), "--preset", str(tiny_preset)]) == 0
    data = sdg.read_bytes()
    (tmp_path / "cut.sdg").write_bytes(data[:-3])
    (tmp_path / "flip.sdg").write_bytes(data[:20] + bytes([data[20] ^ 4]) + data[21:])
    capsys.readouterr()
    for name in ("cut.sdg", "flip.sdg"):
        assert main(["inspect", str(tmp_path / name)]) == 2
        assert main(["decode", str(tmp_path / name), "--preset", str(tiny_preset)]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err or "CRC32" in err
    # a container of the tiny preset given to the shipped decoder names both presets
    assert main(["decode", str(sdg), "--preset", "scenes-64", "--steps", "1"]) == 2
    assert "preset 'tiny-16'" in capsys.readouterr().err
    assert main(["encode", str(png), "--preset", "no-such-preset"]) == 2
    assert "not found" in capsys.readouterr().err


def test_encode_with_a_preset_that_sends_no_captions(tiny_preset, scene_png, tmp_path, capsys):
    import json
    import shutil

    folder = tmp_path / "photos-16"
    shutil.copytree(tiny_preset, folder)
    cfg = json.loads((folder / "preset.json").read_text())
    (folder / "preset.json").write_text(json.dumps({**cfg, "caption_stream": False}))
    png, _ = scene_png                       # has a sidecar caption: still not sent
    assert main(["encode", str(png), "-o", str(tmp_path / "p.sdg"), "--preset",
                 str(folder)]) == 0
    assert "sends no caption stream" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "p.sdg")]) == 0
    out = capsys.readouterr().out
    assert "caption  absent" in out and "  hci " in out
    assert main(["encode", str(png), "--preset", str(folder), "--caption", "a cat"]) == 2
    assert "trained without captions" in capsys.readouterr().err


def test_a_sliced_hci_lists_its_slices_and_decodes_with_one_lost(tiny_native_preset, tmp_path,
                                                                  capsys):
    from image_support import photo

    from codec.preset import Preset

    folder = tmp_path / "sliced"           # the tiny native preset, sending its HCI in slices
    p = Preset.load(tiny_native_preset)
    p.replace(name="tiny-sliced", hci_slice_rows=2, modules=str(tiny_native_preset),
              hci_root=str(p.path(p.hci_root))).save(folder)
    Image.fromarray(photo(150, 40, seed=2)).save(tmp_path / "p.png")
    sdg = tmp_path / "p.sdg"
    assert main(["encode", str(tmp_path / "p.png"), "-o", str(sdg), "--preset", str(folder),
                 "--no-caption"]) == 0
    assert main(["inspect", str(sdg)]) == 0
    assert "3 slices" in capsys.readouterr().out
    rec = tmp_path / "rec.png"
    assert main(["decode", str(sdg), "-o", str(rec), "--preset", str(folder),
                 "--lose-slices", "1"]) == 0
    assert Image.open(rec).size == (40, 150)
    assert main(["decode", str(sdg), "--preset", str(folder), "--lose-slices", "5"]) == 2
    assert "the HCI has slices 0..2" in capsys.readouterr().err
