"""Subset tables are data: measured by one command, saved and loaded whole, found beside a
preset, refused when incomplete."""

import json

import pytest

from benchmark.subset_table import SUBSETS, SubsetTable, subset_name, table_for_codec


def test_subset_names_and_values_order():
    assert subset_name([]) == "none" and subset_name({"rsrt", "caption"}) == "caption+rsrt"
    value = {subset_name(s): 0.1 * len(s) + 0.01 * ("hci" in s) for s in SUBSETS}
    t = SubsetTable("p", "toy", {("mid", 8): {"bits": {}, "value": value, "ci95": {}}})
    v = t.values()
    assert v[0] == 0 and v[2] == pytest.approx(0.11) and v[7] == pytest.approx(0.31)
    with pytest.raises(KeyError, match="no point"):
        t.values("top")
    with pytest.raises(ValueError, match="no value for subsets"):
        SubsetTable("p", "toy", {("mid", 8): {"value": {"none": 0.0}}})
    with pytest.raises(ValueError, match="sdgic subset-table"):
        table_for_codec(object())


def test_sdgic_subset_table_measures_every_subset(tiny_preset, tmp_path):
    from codec.sdgic import SDGIC
    from experiments.cli import main

    out = tmp_path / "table.json"
    assert main(["subset-table", "--preset", str(tiny_preset), "--n", "3", "--steps", "1",
                 "--rates", "low", "top", "--out", str(out)]) == 0
    t = SubsetTable.load(out)
    assert t.metric == "consistency" and t.keys() == [("low", 4), ("top", 4)]
    assert set(t.point("top")["value"]) == {subset_name(s) for s in SUBSETS}
    assert all(0.0 <= v <= 1.0 for p in t.points.values() for v in p["value"].values())
    assert t.point("top")["bits"]["hci"] > t.point("low")["bits"]["hci"]
    raw = json.loads(out.read_text())
    assert raw["command"].startswith("sdgic subset-table --preset") and raw["images"] == 3
    # a preset folder with the file: the semantic policy finds it there
    codec = SDGIC.from_pretrained(tiny_preset)
    codec.folder = tmp_path
    t.save(tmp_path / "subset_table.json")
    assert table_for_codec(codec).points == t.points
