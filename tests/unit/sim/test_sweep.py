"""Sweeps: crash-safe store, resume without recomputation, same numbers serial and on Ray."""

import pandas as pd
import pytest
from simtest_support import BASELINE, RAYLEIGH, RAYLEIGH_LS

from sim.experiment import Experiment
from sim.sweep import ResultsStore, run_sweep


def experiment(scenario=RAYLEIGH, snr_db=(2.0, 8.0), **kw):
    base = dict(num_images=3, codec=BASELINE, decode=False, interval_ms=1.0, deadline_ms=2.0)
    base.update(kw)
    return Experiment("t", scenarios=[scenario], snr_db=list(snr_db), policies=["eep", "uep"],
                      seeds=[0, 1], budget_prbs=[4], base=base)


class Boom(RuntimeError):
    pass


def test_killed_sweep_resumes_without_recomputing(tmp_path, baseline_codec):
    exp = experiment()
    ids = [p.point_id() for p in exp.points()]
    done = []

    def crash_after_three(cfg, rec):
        done.append(cfg.point_id())
        if len(done) == 3:
            raise Boom("killed")

    with pytest.raises(Boom):
        run_sweep(exp, tmp_path, progress=False, callback=crash_after_three)
    store = ResultsStore(tmp_path)
    assert [i for i in ids if store.done(i)] == done == ids[:3]
    mtimes = {i: store.path(i).stat().st_mtime_ns for i in done}
    assert not list((tmp_path / "points").glob(".*tmp*"))       # no half-written file

    again = []
    df = run_sweep(exp, tmp_path, progress=False, callback=lambda c, r: again.append(c.point_id()))
    assert again == ids[3:]                                        # only the missing points
    assert {i: store.path(i).stat().st_mtime_ns for i in done} == mtimes
    assert len(df) == len(ids) * 3 and list(df.point_id.unique()) == ids
    assert (tmp_path / "results.parquet").is_file()

    fresh = run_sweep(exp, tmp_path / "fresh", progress=False)
    pd.testing.assert_frame_equal(df, fresh)                       # resuming changed nothing
    # encoded once, reused by every point
    assert len(list((tmp_path / "encoded").rglob("*.sdg"))) == 2 * 3


def test_changed_experiment_does_not_reuse_points(tmp_path, baseline_codec):
    a = run_sweep(experiment(), tmp_path, progress=False)
    b = run_sweep(experiment(deadline_ms=3.0), tmp_path, progress=False)
    assert set(a.point_id).isdisjoint(b.point_id)


@pytest.mark.ray
def test_ray_two_workers_match_serial(tmp_path):
    # real Ray, 2 local workers: each builds its own link and runs its share of the points
    # after others; records equal the serial run's. LS estimation at SNRs where the pilots
    # and the noise on them decide outcomes
    pytest.importorskip("ray")
    exp = experiment(RAYLEIGH_LS, snr_db=(-6.0, -3.0))
    serial = run_sweep(exp, tmp_path / "serial", progress=False)
    ray_df = run_sweep(exp, tmp_path / "ray", workers=2, progress=False)
    assert len(serial) == len(exp) * 3
    pd.testing.assert_frame_equal(serial, ray_df)


def test_codec_object_override_is_part_of_the_points(tmp_path, baseline_codec):
    from sim.baseline_codec import BaselineCodec

    exp = experiment()
    by_spec = run_sweep(exp, tmp_path, progress=False)
    other = BaselineCodec(rate="low")
    ran = []
    df = run_sweep(exp, tmp_path, progress=False, codec=other,
                   callback=lambda c, r: ran.append(c.point_id()))
    assert len(ran) == len(exp)                          # nothing reused from the spec's run
    assert set(df.point_id).isdisjoint(by_spec.point_id)
    assert (df.codec == "object:baseline-hci-low").all()
    assert (df.codec_fingerprint == other.fingerprint).all()
    assert df.bits_hci.sum() != by_spec.bits_hci.sum()   # it really ran with the override
    again = run_sweep(exp, tmp_path, progress=False, codec=other,
                      callback=lambda c, r: pytest.fail("a finished point was recomputed"))
    pd.testing.assert_frame_equal(df, again)


def test_retrained_weights_get_new_point_ids_and_encodings(tmp_path, tiny_preset):
    import json
    import os
    import shutil

    from sim import SimConfig
    from sim.codec_api import load_codec
    from sim.source import codec_cache_key

    folder = tmp_path / "preset"
    shutil.copytree(tiny_preset, folder)
    cfg = SimConfig(RAYLEIGH, snr_db=0.0, codec=str(folder), decode=False)
    ids, keys = [cfg.point_id()], [codec_cache_key(load_codec(str(folder)))]
    # "retrain": same preset name, new weights (file rewritten: new mtime) and model card
    w = next((folder / "unet").glob("*.safetensors"))
    st = w.stat()
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    (folder / "model_card.json").write_text(json.dumps({"step": 2}))
    fresh = SimConfig(RAYLEIGH, snr_db=0.0, codec=str(folder), decode=False)
    ids.append(fresh.point_id())
    keys.append(codec_cache_key(load_codec(str(folder))))
    assert ids[0] != ids[1] and keys[0] != keys[1]
    assert load_codec(str(folder)).preset == "tiny-16"
    # same files -> same fingerprint (stable ids, a resumed sweep finds its points)
    assert SimConfig(RAYLEIGH, snr_db=0.0, codec=str(folder), decode=False).point_id() == ids[1]


def test_point_ids_do_not_depend_on_int_or_float_snr():
    from sim import SimConfig

    assert SimConfig(RAYLEIGH, snr_db=4, codec=BASELINE).point_id() == \
        SimConfig(RAYLEIGH, snr_db=4.0, codec=BASELINE).point_id()
    assert SimConfig(RAYLEIGH, snr_db=4, codec=BASELINE, deadline_ms=3).point_id() == \
        SimConfig(RAYLEIGH, snr_db=4.0, codec=BASELINE, deadline_ms=3.0).point_id()


class FakeRay:
    """Stands in for ``ray``: tasks run at submission; the ``fail_at``-th task raises (a
    worker died); ``wait`` returns refs in submission order."""

    class Ref:
        def __init__(self, value=None, error=None):
            self.value, self.error = value, error

    def __init__(self, fail_at):
        self.fail_at, self.submitted = fail_at, 0

    def is_initialized(self):
        return False

    def init(self, **kw):
        pass

    def shutdown(self):
        pass

    def available_resources(self):
        return {"CPU": 2}

    def put(self, obj):
        return obj

    def remote(self, **opts):
        def wrap(fn):
            ray = self

            class Task:
                @staticmethod
                def remote(*args):
                    ray.submitted += 1
                    if ray.submitted == ray.fail_at:
                        return FakeRay.Ref(error=RuntimeError("worker died"))
                    return FakeRay.Ref(value=fn(*args))
            return Task
        return wrap

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value


@pytest.mark.ray
def test_ray_failure_keeps_the_finished_points(tmp_path, monkeypatch, baseline_codec):
    import sys

    exp = experiment()
    ids = [p.point_id() for p in exp.points()]
    fake = FakeRay(fail_at=2)            # 2 in flight: task 1 fails, task 2 is in flight
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(RuntimeError, match="worker died"):
        run_sweep(exp, tmp_path, workers=2, progress=False)
    store = ResultsStore(tmp_path)
    done = [i for i in ids if store.done(i)]
    # point 0 finished before the failure, point 2 was in flight and was drained and saved;
    # no new point was started after the failure
    assert done == [ids[0], ids[2]] and fake.submitted == 3
    monkeypatch.delitem(sys.modules, "ray")
    ran = []
    run_sweep(exp, tmp_path, progress=False, callback=lambda c, r: ran.append(c.point_id()))
    assert ran == [i for i in ids if i not in done]


@pytest.mark.ray
def test_ray_path_ships_a_codec_object_once(tmp_path, monkeypatch, baseline_codec):
    import pickle
    import sys

    from sim.baseline_codec import BaselineCodec

    other = BaselineCodec(rate="low")
    exp = experiment()
    serial = run_sweep(exp, tmp_path / "serial", progress=False, codec=other)
    fake = FakeRay(fail_at=0)
    puts = []
    monkeypatch.setattr(fake, "put", lambda obj: puts.append(obj) or obj, raising=False)
    monkeypatch.setitem(sys.modules, "ray", fake)
    ray_df = run_sweep(exp, tmp_path / "ray", workers=2, progress=False, codec=other)
    pd.testing.assert_frame_equal(serial, ray_df)
    assert puts == [other]                                   # one copy for all tasks
    # a config pickled to a worker keeps the id the driver computed
    cfg = exp.points()[0].replace(codec=other)
    assert pickle.loads(pickle.dumps(cfg)).point_id() == cfg.point_id()


def test_fingerprint_sees_shared_hci_weights_and_borrowed_modules(tmp_path, tiny_preset):
    # a preset that borrows another folder's DPCD modules ("modules") and whose HCI rate
    # points share one weights file one level up (as hci-photos does): retraining either
    # changes the fingerprint
    import json
    import os
    import shutil

    from codec.sdgic import WEIGHTS
    from sim.codec_api import preset_fingerprint

    shutil.copytree(tiny_preset, tmp_path / "base")
    shutil.copytree(WEIGHTS / "hci-photos", tmp_path / "hci")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "preset.json").write_text(json.dumps({
        "preset": "borrow", "resolution": 16, "modules": "../base",
        "hci": {"root": "../hci", "rate_points": ["low", "top"]}}))
    before = preset_fingerprint(tmp_path / "p")
    for f in (tmp_path / "hci" / "model.safetensors",
              next((tmp_path / "base" / "unet").glob("*.safetensors"))):
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        after = preset_fingerprint(tmp_path / "p")
        assert after != before, f
        before = after
