"""experiments.bench_native on a tiny native-size preset: timings, PSNRs, seam ratios, grid."""

import json

from image_support import photo
from PIL import Image

from experiments.bench_native import main, seam_ratio


def test_bench_native_writes_its_table_and_grid(tmp_path, tiny_native_preset):
    (tmp_path / "img").mkdir()
    Image.fromarray(photo(38, 54, seed=1)).save(tmp_path / "img" / "a.png")
    Image.fromarray(photo(50, 30, seed=2)).save(tmp_path / "img" / "b.png")
    main(["--preset", str(tiny_native_preset), "--images", str(tmp_path / "img"), "--n", "2",
          "--threads", "1", "--patch", "16", "--out", str(tmp_path / "out")])
    d = json.loads((tmp_path / "out" / "bench_native.json").read_text())
    assert [r["image"] for r in d["images"]] == ["a.png", "b.png"]
    assert all(r["tiles"] > 1 and r["decode_s"] > 0 and r["bpp"] > 0 for r in d["images"])
    assert (tmp_path / "out" / "grid.png").is_file()
    per = d["perceptual"]
    assert per["patches"] == 2 * 3 + 3 * 1                   # 16 px patches of 38x54, 50x30
    for k in ("hci", "sdgic"):
        assert all(-1 <= v <= 1 for v in per[k]["inception_similarity"])
        assert per[k]["patch_fid"] >= 0


def test_patches_tile_the_image_without_overlap():
    import numpy as np

    from experiments.bench_native import patches

    img = np.arange(5 * 7 * 3).reshape(5, 7, 3)
    p = patches(img, 2)
    assert p.shape == (2 * 3, 2, 2, 3)
    assert (p[4] == img[2:4, 2:4]).all()        # row 1, column 1


def test_seam_ratio_sees_a_seam():
    import numpy as np

    img = photo(40, 60, seed=3)
    assert 0.5 < seam_ratio(img, [20], [30]) < 2.0
    cut = img.copy()
    cut[:, 30:] = np.clip(cut[:, 30:].astype(int) + 60, 0, 255)    # a step at column 30
    assert seam_ratio(cut, [], [30]) > 3 * seam_ratio(img, [], [30])
