"""Sweeps: crash-safe store, resume without recomputation, same numbers serial and on Ray."""

import pandas as pd
import pytest

from sim.experiment import Experiment
from sim.sweep import ResultsStore, run_sweep

from simtest_support import BASELINE, RAYLEIGH


def experiment(**kw):
    base = dict(num_images=3, codec=BASELINE, decode=False, interval_ms=1.0, deadline_ms=2.0)
    base.update(kw)
    return Experiment("t", scenarios=[RAYLEIGH], snr_db=[2.0, 8.0], policies=["eep", "uep"],
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


@pytest.mark.slow
def test_ray_two_workers_match_serial(tmp_path):
    exp = experiment()
    serial = run_sweep(exp, tmp_path / "serial", progress=False)
    ray_df = run_sweep(exp, tmp_path / "ray", workers=2, progress=False)
    pd.testing.assert_frame_equal(serial, ray_df)
