"""Experiment files and configs: the grid, and errors that name the bad key and value."""

import textwrap
from pathlib import Path

import pytest

from sim import SimConfig, make_policy
from sim.experiment import Experiment, load_experiment

SCEN = Path(__file__).resolve().parents[3] / "experiments" / "scenarios" / "awgn.toml"


def write(tmp_path, body: str) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(textwrap.dedent(body).replace("SCEN", str(SCEN)))
    return p


GOOD = """
    name = "t"
    codec = "sim.baseline_codec:BaselineCodec"
    num_images = 3
    [grid]
    scenarios = ["SCEN"]
    snr_db = [0, 5]
    budget_prbs = [2, "all"]
    policies = ["eep", "strong"]
    seeds = [0, 1]
    [traffic]
    arrival = "poisson"
    deadline_ms = 3.0
    [decode]
    enabled = false
    [policies.strong]
    preset = "uep"
    robust_mcs = 4
"""


def test_grid_from_toml(tmp_path):
    exp = load_experiment(write(tmp_path, GOOD))
    pts = exp.points()
    assert len(pts) == len(exp) == 2 * 2 * 2 * 2
    assert {p.budget_prbs for p in pts} == {2, None}
    assert {p.policy_obj.name for p in pts} == {"eep", "strong"}
    strong = next(p for p in pts if p.policy_obj.name == "strong")
    assert strong.policy_obj.caption.mcs == 4 and strong.arrival == "poisson"
    assert not strong.decode and strong.deadline_ms == 3.0
    assert strong.decode_guidance is None                     # the codec's own default
    guided = load_experiment(write(tmp_path, GOOD.replace(
        "enabled = false", "enabled = false\n    guidance_scale = 3"))).points()
    assert {p.decode_guidance for p in guided} == {3}
    assert guided[0].point_id() != pts[0].point_id()         # another decoder, another point
    assert "decode_precision" not in pts[0].to_dict()         # unset: old point ids hold
    bf16 = load_experiment(write(tmp_path, GOOD.replace(
        "enabled = false", 'enabled = false\n    precision = "bf16"'))).points()
    assert {p.decode_precision for p in bf16} == {"bf16"}
    assert bf16[0].point_id() != pts[0].point_id()
    assert "decode_guidance_interval" not in pts[0].to_dict()
    late = load_experiment(write(tmp_path, GOOD.replace(
        "enabled = false", "enabled = false\n    guidance_interval = [0.3, 1.0]"))).points()
    assert {p.decode_guidance_interval for p in late} == {(0.3, 1.0)}
    assert late[0].point_id() != pts[0].point_id()
    with pytest.raises(ValueError, match=r"decode\.guidance_interval"):
        load_experiment(write(tmp_path, GOOD.replace(
            "enabled = false", "enabled = false\n    guidance_interval = [1, 0]")))
    assert "decode_strength" not in pts[0].to_dict()
    weak = load_experiment(write(tmp_path, GOOD.replace(
        "enabled = false", "enabled = false\n    strength = 0.4"))).points()
    assert {p.decode_settings()["strength"] for p in weak} == {0.4}
    assert weak[0].point_id() != pts[0].point_id()
    with pytest.raises(ValueError, match=r"decode\.strength"):
        load_experiment(write(tmp_path, GOOD.replace(
            "enabled = false", "enabled = false\n    strength = 0")))
    assert len({p.point_id() for p in pts}) == len(pts)      # ids are distinct and stable
    assert [p.point_id() for p in load_experiment(write(tmp_path, GOOD)).points()] == \
        [p.point_id() for p in pts]


@pytest.mark.parametrize("old,new,match", [
    ("arrival = \"poisson\"", "arival = \"poisson\"", r"unknown key traffic\.arival"),
    ("num_images = 3", "num_imgs = 3", r"unknown key 'num_imgs'"),
    ("snr_db = [0, 5]", "snr_db = [0, 5]\nmodes = [\"fast\"]",
     r"grid\.modes = \['fast'\] is not supported; allowed: .*abstraction, bit"),
    ("deadline_ms = 3.0", "deadline_ms = -1", r"traffic\.deadline_ms = -1 is not supported"),
    ("policies = [\"eep\", \"strong\"]", "policies = [\"eep\", \"nope\"]",
     r"grid\.policies = 'nope' is not supported; allowed: presets .*strong"),
    ("robust_mcs = 4", "robust_mcs = 4\nrobustness = 2", r"unknown key policies\.strong\.robustness"),
    ("budget_prbs = [2, \"all\"]", "budget_prbs = [2, 99]",
     r"grid\.budget_prbs = 99 is not supported; allowed: an integer in \[1, 11\]"),
    ("enabled = false", "enabled = \"no\"", r"decode\.enabled = 'no' is not supported"),
    ("enabled = false", "enabled = false\nguidance_scale = 0",
     r"decode\.guidance_scale = 0 is not supported; allowed: a number in \(0, 100\]"),
    ("enabled = false", "enabled = false\nprecision = \"fp16\"",
     r"decode\.precision = 'fp16' is not supported; allowed: \"fp32\" or \"bf16\""),
    ("deadline_ms = 3.0", "deadline_ms = 3.0\n[packets]\nharq_rtt_slots = 0",
     r"packets\.harq_rtt_slots = 0 is not supported; allowed: an integer in \[1, "),
    ("num_images = 3", "num_images = 3\n[dataset]\nkind = \"scenes\"\nsize = 8",
     r"dataset\.size = 8 is not supported; allowed: an integer in \[16, 1024\]"),
    ("num_images = 3", "num_images = 3\n[dataset]\nkind = \"folder\"",
     r"missing key dataset\.path"),
    ("num_images = 3", "num_images = 3\n[dataset]\nkind = \"folder\"\npath = \"nowhere\"",
     r"dataset\.path = '.*nowhere' is not supported; allowed: an existing folder"),
    ("num_images = 3", "num_images = 3\n[dataset]\nkind = \"scenes\"\npath = \"x\"",
     r"unknown key dataset\.path for dataset kind 'scenes'; allowed keys: kind, size, seed"),
    ("num_images = 3", "num_images = 3\n[dataset]\nkind = \"photos\"",
     r"dataset\.kind = 'photos' is not supported; allowed: scenes, folder"),
    ("[decode]", "[link]\ncalibration = \"always\"\n[decode]",
     r"link\.calibration = 'always' is not supported; allowed: auto, strict, off"),
    ("[decode]", "[link]\ncalibrate = \"strict\"\n[decode]", r"link\.'?calibrate"),
])
def test_bad_file_names_the_key(tmp_path, old, new, match):
    body = GOOD.replace(old, new)
    assert body != GOOD
    with pytest.raises(ValueError, match=match) as e:
        load_experiment(write(tmp_path, body))
    assert "exp.toml" in str(e.value)


def test_missing_scenario_file(tmp_path):
    with pytest.raises(ValueError, match=r"grid\.scenarios = 'nowhere\.toml' .*existing"):
        load_experiment(write(tmp_path, GOOD.replace('"SCEN"', '"nowhere.toml"')))


def test_python_api_validates_the_same_way():
    with pytest.raises(ValueError, match=r"mode = 'fast' is not supported; allowed: "):
        SimConfig(SCEN, snr_db=0, mode="fast")
    with pytest.raises(ValueError, match=r"policy = 'best' is not supported"):
        SimConfig(SCEN, snr_db=0, policy="best")
    with pytest.raises(ValueError, match=r"snr_db = 'x' is not supported"):
        SimConfig(SCEN, snr_db="x")
    with pytest.raises(ValueError, match=r"grid\.seeds = \[-1\] is not supported"):
        Experiment("e", scenarios=[SCEN], snr_db=[0], seeds=[-1])
    with pytest.raises(ValueError, match=r"policy preset = 'x' is not supported; allowed: eep"):
        make_policy("x")
    with pytest.raises(ValueError, match=r"mcs = 40 is not supported"):
        make_policy("eep", mcs=40)


CUSTOM = """
    [policies.la.caption]
    priority = 0
    mcs = "auto"
    bler_target = 0.01
    [policies.la.hci]
    priority = 2
    mcs = 9
    [policies.la.rsrt]
    priority = 1
    mcs = "auto"
"""


def test_explicit_policy_tables_with_auto_mcs(tmp_path):
    body = GOOD.replace('policies = ["eep", "strong"]', 'policies = ["eep", "la"]') + CUSTOM
    pol = next(p for p in load_experiment(write(tmp_path, body)).points()
               if p.policy_obj.name == "la").policy_obj
    assert pol.caption.mcs is None and pol.rsrt.mcs is None and pol.hci.mcs == 9
    assert pol.adaptive and pol.caption.bler_target == 0.01


@pytest.mark.parametrize("drop,missing", [("[policies.la.hci]\n    priority = 2\n    mcs = 9\n",
                                           "hci"),
                                          ("[policies.la.rsrt]\n    priority = 1\n"
                                           "    mcs = \"auto\"\n", "rsrt")])
def test_explicit_policy_needs_all_three_streams(tmp_path, drop, missing):
    custom = CUSTOM.replace(drop, "")
    assert custom != CUSTOM
    body = GOOD.replace('policies = ["eep", "strong"]', 'policies = ["eep", "la"]') + custom
    with pytest.raises(ValueError, match=rf"exp\.toml: missing table policies\.la\.{missing}"):
        load_experiment(write(tmp_path, body))


def test_bad_auto_mcs_spelling(tmp_path):
    body = (GOOD.replace('policies = ["eep", "strong"]', 'policies = ["eep", "la"]')
            + CUSTOM.replace('mcs = "auto"\n    bler', 'mcs = "adaptive"\n    bler'))
    with pytest.raises(ValueError, match=r"policies\.la\.caption\.mcs = 'adaptive' is not "
                                         r"supported; allowed: .*\"auto\""):
        load_experiment(write(tmp_path, body))


def test_relative_codec_folder_resolves_next_to_the_file(tmp_path):
    (tmp_path / "my-preset").mkdir()
    exp = load_experiment(write(tmp_path, GOOD.replace(
        'codec = "sim.baseline_codec:BaselineCodec"', 'codec = "my-preset"')))
    assert {p.codec for p in exp.points()} == {str(tmp_path / "my-preset")}
    # a preset name with no such folder stays a name
    exp = load_experiment(write(tmp_path, GOOD.replace(
        'codec = "sim.baseline_codec:BaselineCodec"', 'codec = "scenes-64"')))
    assert {p.codec for p in exp.points()} == {"scenes-64"}


def test_snr_given_as_int_or_float_is_the_same_point(tmp_path):
    a = load_experiment(write(tmp_path, GOOD)).points()
    b = load_experiment(write(tmp_path, GOOD.replace("[0, 5]", "[0.0, 5.0]"))).points()
    assert [p.point_id() for p in a] == [p.point_id() for p in b]
    c = SimConfig(SCEN, snr_db=5, codec=a[0].codec, num_images=3)
    assert c.point_id() == c.replace(snr_db=5.0).point_id()


def test_photos_quick_experiment_loads_and_a_folder_run_plots_psnr(tmp_path, tiny_photo_set):
    from experiments.cli import main

    photos = tiny_photo_set(tmp_path / "photos")
    shipped = Path(__file__).resolve().parents[3] / "experiments" / "photos_quick.toml"
    body = shipped.read_text().replace('"../data/photos/val"', f'"{photos / "val"}"').replace(
        '"scenarios/tdl_a_30khz.toml"', f'"{SCEN}"')
    exp = load_experiment(write(tmp_path, body))
    assert {p.codec for p in exp.points()} == {"photos-64"}
    uep = {p.policy.name: p.policy for p in exp.points()}["uep_photos"]
    assert uep.hci.mcs == 3 and uep.hci.priority == 0 and uep.rsrt.mcs == 9
    # a folder data set has no judge: the run's plot is PSNR against SNR
    small = body.replace('codec = "photos-64"',
                         'codec = "sim.baseline_codec:BaselineCodec"').replace(
        "num_images = 8", "num_images = 2").replace("[-2.0, 2.0, 6.0, 10.0]", "[5.0]").replace(
        '["eep", "uep", "uep_photos"]', '["uep_photos"]').replace("[0, 1, 2, 3]", "[0]")
    assert main(["sim", str(write(tmp_path, small)), "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "plots" / "psnr_vs_snr.png").is_file()


def test_link_calibration_setting_reaches_every_point(tmp_path):
    exp = load_experiment(write(tmp_path, GOOD.replace("[decode]",
                                                       "[link]\ncalibration = \"off\"\n[decode]")))
    assert {p.calibration for p in exp.points()} == {"off"}
    assert {p.calibration for p in load_experiment(write(tmp_path, GOOD)).points()} == {"auto"}


def test_every_simconfig_field_has_one_toml_key_and_every_section_key_sets_a_field():
    """SimConfig's field metadata is the one table of TOML keys: sections, unknown-key checks
    and error names all derive from it."""
    import dataclasses

    from sim.config import SimConfig, fields_from_toml, rename_error, toml_keys
    from sim.experiment import _sections

    keys = toml_keys()
    assert set(keys) == {f.name for f in dataclasses.fields(SimConfig)}
    assert len(set(keys.values())) == len(keys)
    for sec, allowed in _sections().items():
        if sec == "grid":
            continue
        for k in allowed:
            assert fields_from_toml({sec: {k: 1}}, (sec,)), f"{sec}.{k} sets no field"
    assert fields_from_toml({"decode": {"steps": 7}, "traffic": {"deadline_ms": 3}},
                            ("decode", "traffic")) == {"decode_steps": 7, "deadline_ms": 3}
    assert rename_error("decode_steps = 0 is not supported") == "decode.steps = 0 is not supported"
