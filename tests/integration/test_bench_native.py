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


def test_runs_compare_paired_and_borrow_equal_bit_references(tmp_path, tiny_native_preset):
    import numpy as np

    from experiments.native_compare import compare, load, markdown

    (tmp_path / "img").mkdir()
    Image.fromarray(photo(38, 54, seed=1)).save(tmp_path / "img" / "a.png")
    Image.fromarray(photo(50, 30, seed=2)).save(tmp_path / "img" / "b.png")
    common = ["--preset", str(tiny_native_preset), "--images", str(tmp_path / "img"), "--n", "2",
              "--threads", "1", "--no-inception", "--qualities", "0", "10", "--factors", "1", "2"]
    main(common + ["--out", str(tmp_path / "ref")])
    main(common + ["--steps", "1", "--no-equal-bits", "--out", str(tmp_path / "one")])
    main(common + ["--without", "rsrt", "--no-equal-bits", "--out", str(tmp_path / "hci")])
    runs = [load(tmp_path / d) for d in ("ref", "one", "hci")]
    ref, one, hci = compare(runs)["runs"]
    rows = runs[0]["images"]
    m = np.mean([r["psnr_sdgic_db"] - r["psnr_hci_db"] for r in rows])
    assert abs(ref["psnr_minus_hci_db"][0] - m) < 1e-9
    assert ref["psnr_minus_hci_db"][1] <= m <= ref["psnr_minus_hci_db"][2]
    # the 1-step run coded the same bits: the reference run's equal-bits rows serve it too
    assert "psnr_minus_hci_equal_bits_db" in one
    # without tokens the bits differ: no borrowed references, and fewer bits
    assert "psnr_minus_hci_equal_bits_db" not in hci
    assert all(r["bits"]["rsrt"] == 0 for r in runs[2]["images"])
    assert hci["bpp"] < ref["bpp"] and "without rsrt" in hci["label"]
    assert markdown(compare(runs)).count("\n| ") == 1 + 3      # the header, a row per run
    # blends read the decodes back from the grids: the ends are the two runs themselves
    from experiments.native_blend import main as blend

    blend([str(tmp_path / "ref"), str(tmp_path / "one"), "--alphas", "1", "0", "--patch", "16",
           "--out", str(tmp_path / "blend.json")])
    b = json.loads((tmp_path / "blend.json").read_text())["blends"]
    for key, run in (("alpha=1", runs[0]), ("alpha=0", runs[1])):
        want = np.mean([r["psnr_sdgic_db"] for r in run["images"]])
        assert abs(b[key]["psnr_db"] - want) < 1e-6


def test_hci_at_bits_searches_below_the_codec_rate_when_it_is_over():
    import numpy as np

    from experiments.bench_native import hci_at_bits

    class Model:
        n_rates = 4
        rate = 0.0

    class FakeHCI:             # 100 bytes at rate 0, 100 more per unit of rate
        model = Model()
        rate = 0.0

        def encode(self, img):
            return bytes(int(100 + 100 * self.rate))

        def decode(self, data):
            return np.full((2, 2, 3), len(data) % 256, np.uint8)

    h = FakeHCI()
    r, bits, _ = hci_at_bits(h, None, 8 * 250, lo=2.0)      # 2.0 is over: search [0, 2]
    assert 1.45 <= r < 1.51 and bits <= 8 * 250
    r, bits, _ = hci_at_bits(h, None, 8 * 350, lo=2.0)      # within [2, 3]
    assert 2.45 <= r < 2.51
    assert hci_at_bits(h, None, 8 * 1000, lo=2.0)[0] == 3.0   # the top fits
    assert hci_at_bits(h, None, 8 * 50, lo=2.0) is None       # even rate 0 is over


def test_no_classical_point_within_the_bits_is_reported_not_fatal(tmp_path, tiny_native_preset):
    (tmp_path / "img").mkdir()
    Image.fromarray(photo(38, 54, seed=1)).save(tmp_path / "img" / "a.png")
    # JPEG/WebP/AVIF at quality 95 without downscaling never fit the tiny preset's bits
    main(["--preset", str(tiny_native_preset), "--images", str(tmp_path / "img"), "--n", "1",
          "--threads", "1", "--no-inception", "--qualities", "95", "--factors", "1",
          "--out", str(tmp_path / "out")])
    d = json.loads((tmp_path / "out" / "bench_native.json").read_text())
    row = d["equal_bits"]["photos"][0]
    assert row["best_classical_bits"] is None and row["best_classical_psnr_db"] is None
    assert "best_classical" not in d["equal_bits"]["mean_psnr_db"]
