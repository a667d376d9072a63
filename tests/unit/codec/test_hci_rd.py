import json

from experiments.hci_rd import _classical_rows


def _write(path, n=10, size=(64, 64), inception=0.5, rows=21):
    classical = [{"codec": "JPEG" if i < 10 else "WebP", "setting": f"q{i}",
                  "inception_sim": inception} for i in range(rows)]
    path.write_text(json.dumps({"command": "python -m experiments.hci_rd X", "n_images": n,
                                "image_size": list(size),
                                "rows": [{"codec": "HCI", "setting": "mid"}] + classical}))


def test_classical_rows_are_reused_only_on_the_same_data(tmp_path):
    p = tmp_path / "rd.json"
    assert _classical_rows(p, 10, [64, 64], True) is None             # no earlier run
    _write(p)
    rows, cmd = _classical_rows(p, 10, [64, 64], True)
    assert len(rows) == 21 and {r["codec"] for r in rows} == {"JPEG", "WebP"}
    assert cmd == "python -m experiments.hci_rd X"
    assert _classical_rows(p, 11, [64, 64], True) is None             # other images
    assert _classical_rows(p, 10, [32, 32], True) is None
    assert _classical_rows(p, 10, [64, 64], False) is None            # Inception mismatch
    _write(p, inception=float("nan"))
    assert _classical_rows(p, 10, [64, 64], False) is not None
    _write(p, rows=5)
    assert _classical_rows(p, 10, [64, 64], True) is None             # incomplete
