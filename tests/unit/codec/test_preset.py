"""preset.json has one owner (codec.preset): every shipped preset reads back to the same file
contents, a misspelt key is an error naming it, and SDGIC.save_pretrained writes a folder that
loads to a codec giving the same bytes and the same decoded pixels."""

import json

import numpy as np
import pytest

from codec.preset import PRESET_FILE, DecodeSettings, Preset
from codec.sdgic import WEIGHTS


@pytest.mark.parametrize("name", sorted(d.name for d in WEIGHTS.iterdir()
                                        if (d / PRESET_FILE).is_file()))
def test_every_shipped_preset_reads_back_to_its_file(name):
    folder = WEIGHTS / name
    raw = json.loads((folder / PRESET_FILE).read_text())
    preset = Preset.load(folder)
    assert preset.to_json() == {**raw, "hci": {**raw["hci"]}}     # nothing lost or added
    assert preset.path(preset.hci_root).is_dir()


def test_a_misspelt_key_is_an_error_naming_it(tmp_path):
    raw = json.loads((WEIGHTS / "scenes-64" / PRESET_FILE).read_text())
    (tmp_path / PRESET_FILE).write_text(json.dumps({**raw, "guidance_sacle": 3.0}))
    with pytest.raises(ValueError, match=r"unknown keys \['guidance_sacle'\]"):
        Preset.load(tmp_path)
    (tmp_path / PRESET_FILE).write_text(json.dumps({**raw, "steps": 0}))
    with pytest.raises(ValueError, match="preset.json: steps=0"):
        Preset.load(tmp_path)
    (tmp_path / PRESET_FILE).write_text(json.dumps({**raw, "guidance_interval": [0.9, 0.1]}))
    with pytest.raises(ValueError, match="guidance_interval"):
        Preset.load(tmp_path)
    (tmp_path / PRESET_FILE).write_text(json.dumps({**raw, "hci": {**raw["hci"],
                                                                  "rate_points": "mid"}}))
    with pytest.raises(ValueError, match="rate_points='mid'"):
        Preset.load(tmp_path)
    (tmp_path / PRESET_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Preset.load(tmp_path)


def test_decode_settings_update_and_key():
    s = DecodeSettings(steps=4, guidance_scale=5, guidance_interval=[0.3, 1])
    assert s.guidance_interval == (0.3, 1.0) and s.guidance_scale == 5.0
    assert s.updated(steps=None, precision="bf16") == DecodeSettings(4, 5.0, (0.3, 1.0), "bf16")
    assert s.key() != s.updated(guidance_interval=(0, 1)).key()
    with pytest.raises(TypeError, match="unknown decode settings"):
        s.updated(guidance=2)
    with pytest.raises(ValueError, match="precision"):
        DecodeSettings(precision="fp16")
    assert s.updated(strength=0.4).key() != s.key()
    assert "strength" not in s.key()                 # keys made before strength existed hold
    for bad in (0, 1.5, -0.2, True):
        with pytest.raises(ValueError, match="strength"):
            DecodeSettings(strength=bad)


def test_save_pretrained_round_trips_bit_for_bit(tiny_preset, tmp_path):
    from benchmark.scenes import generate
    from codec.sdgic import SDGIC

    codec = SDGIC.from_pretrained(tiny_preset, steps=2)
    img, scene = generate(3, seed=5, size=16)
    enc = codec.encode(img, caption=scene.describe())
    out = codec.save_pretrained(tmp_path / "copy")
    again = SDGIC.from_pretrained(out)
    assert again.decode_settings == codec.decode_settings
    assert again.encode(img, caption=scene.describe()).to_bytes() == enc.to_bytes()
    np.testing.assert_array_equal(again.decode(enc, seed=1), codec.decode(enc, seed=1))
    assert Preset.load(out).hci_root == "hci"          # self-contained: its own HCI points
