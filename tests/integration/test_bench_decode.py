import json

import pytest

from experiments.bench_decode import main


def test_bench_decode_records_the_settings_it_timed(tmp_path, tiny_preset, capsys):
    out = tmp_path / "bench.json"
    main(["--preset", str(tiny_preset), "--steps", "2", "--batches", "1,2", "--repeats", "1",
          "--guidance-scale", "3", "--guidance-interval", "0.3:1", "--out", str(out)])
    res = json.loads(out.read_text())
    assert set(res["seconds_per_image_by_batch_size"]) == {"1", "2"}
    assert all(v > 0 for v in res["seconds_per_image_by_batch_size"].values())
    assert res["guidance_interval"] == [0.3, 1.0] and res["guidance_scale"] == 3.0
    assert "--guidance-interval 0.3:1" in res["command"] and res["peak_rss_mib"] > 0
    with pytest.raises(SystemExit):
        main(["--preset", str(tiny_preset), "--guidance-interval", "0.3", "--out", str(out)])
    assert "guidance interval '0.3': expected lo:hi" in capsys.readouterr().err


def test_bench_decode_times_the_networks_at_another_resolution(tmp_path, tiny_preset,
                                                               capsys):
    out = tmp_path / "bench.json"
    main(["--preset", str(tiny_preset), "--steps", "1", "--batches", "1", "--repeats", "1",
          "--resolution", "32", "--out", str(out)])
    res = json.loads(out.read_text())
    assert (res["resolution"], res["trained_resolution"]) == (32, 16)
    assert res["command"].split("--out")[0].rstrip().endswith("--resolution 32")

    for bad, message in (("4", "at least 8 pixels"), ("34", "must be a multiple of 4")):
        with pytest.raises(SystemExit):
            main(["--preset", str(tiny_preset), "--resolution", bad, "--out", str(out)])
        assert message in capsys.readouterr().err
