"""Sweeps: every point of an :class:`~sim.experiment.Experiment`, crash-safe and resumable,
serially or on Ray.

::

    from sim import load_experiment, run_sweep
    df = run_sweep(load_experiment("experiments/quickstart.toml"), "results/quickstart",
                   workers=2)                 # Ray on 2 local CPUs; workers=None: serial

Results store (``out_dir``)::

    points/<point_id>.parquet   records of one finished point (written atomically, last)
    points/<point_id>.json      its configuration and timings
    traces/<point_id>.parquet   per-packet trace (if the experiment sets trace = true)
    encoded/...                 encoded images (.sdg), shared by all points and workers
    results.parquet             all finished points, in grid order (rewritten at the end)

A point is finished when its ``.parquet`` exists; a re-run skips finished points, so a sweep
that was killed resumes where it stopped and loses nothing it had finished (on Ray, when a
task fails, the tasks in flight are still awaited and stored before the first error is
raised). The point id is a hash of everything that determines the point's records (scenario
contents, policy, codec spec and fingerprint, seed, ...), so changing the experiment or
retraining the codec's weights never reuses stale results.

Ray: ``workers=N`` starts a local Ray with N CPUs (``ray.init(num_cpus=N)``);
``address="ray://host:10001"`` or ``"auto"`` joins a cluster. Each task runs one point in a
worker process with one torch thread. Every random draw of a point derives from its own
seed (see :mod:`sim.simulation`), so Ray gives the same numbers as a serial run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from .config import SimConfig
from .records import read_table, write_table
from .source import EncodeCache

__all__ = ["ResultsStore", "run_sweep", "run_point"]


class ResultsStore:
    """One file per finished point under ``folder/points`` (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.points_dir = self.folder / "points"
        self.points_dir.mkdir(parents=True, exist_ok=True)

    def path(self, point_id: str) -> Path:
        return self.points_dir / f"{point_id}.parquet"

    def done(self, point_id: str) -> bool:
        return self.path(point_id).is_file()

    def save(self, config: SimConfig, records: pd.DataFrame, trace: pd.DataFrame,
             stats: dict) -> None:
        pid = config.point_id()
        meta = {"point_id": pid, "config": config.to_dict(), "stats": stats}
        tmp = self.points_dir / f".{pid}.json.tmp{os.getpid()}"
        tmp.write_text(json.dumps(meta, indent=1, default=str))
        os.replace(tmp, self.points_dir / f"{pid}.json")
        if trace is not None and len(trace):
            write_table(trace, self.folder / "traces" / f"{pid}.parquet")
        write_table(records, self.path(pid))          # last: marks the point finished

    def load(self, point_ids: Optional[list] = None) -> pd.DataFrame:
        ids = point_ids if point_ids is not None else sorted(
            p.stem for p in self.points_dir.glob("*.parquet"))
        frames = [read_table(self.path(i)) for i in ids if self.done(i)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def stats(self, point_id: str) -> dict:
        return json.loads((self.points_dir / f"{point_id}.json").read_text())["stats"]


def run_point(config: SimConfig, encoded_dir: Optional[str] = None, codec=None, metrics=None):
    """Run one point: ``(records, trace, stats)``; used by the serial path and Ray tasks.

    ``codec``: a codec object that becomes the point's codec (``config.replace(codec=...)``,
    so the records name it); Ray ships a sweep's codec object once this way."""
    import torch

    from .simulation import simulate

    torch.set_num_threads(1)
    t = time.perf_counter()
    if codec is not None:
        config = config.replace(codec=codec)
    cache = _cache(encoded_dir)
    out = simulate(config, metrics=metrics, cache=cache)
    stats = dict(out.stats, wall_s=time.perf_counter() - t, pid=os.getpid())
    return out.records, out.trace, stats


_CACHES: dict = {}


def _cache(folder):
    key = str(folder)
    if key not in _CACHES:
        _CACHES[key] = EncodeCache(folder)
    return _CACHES[key]


def run_sweep(experiment, out_dir: str | Path, workers: Optional[int] = None,
              address: Optional[str] = None, progress: bool = True, codec=None, metrics=None,
              callback: Optional[Callable] = None) -> pd.DataFrame:
    """Run every unfinished point of ``experiment`` and return all its records.

    Parameters
    ----------
    experiment : Experiment or list of SimConfig
    out_dir : str or Path
        Results store (created if missing).
    workers : int or None
        ``None`` or 1 without ``address``: serial, in this process (no Ray). ``N >= 2``: Ray
        with ``num_cpus=N``.
    address : str or None
        Ray cluster address (``ray.init(address=...)``); ``workers`` then limits the tasks in
        flight.
    progress : bool
        tqdm progress bar over points.
    codec, metrics : optional
        Objects overriding the points' codec / the default metrics (they must pickle for
        Ray). The codec object becomes part of every point (``SimConfig.codec``): point ids
        and the ``codec`` / ``codec_fingerprint`` columns name it, so a run with another
        codec never reuses these points.
    callback : callable (SimConfig, DataFrame) -> None, optional
        Called after each point is stored.
    """
    from tqdm import tqdm

    points = experiment.points() if hasattr(experiment, "points") else list(experiment)
    if codec is not None:
        from .codec_api import load_codec

        codec = load_codec(codec)            # a spec string loads here, once
        points = [p.replace(codec=codec) for p in points]
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers = {workers!r} is not supported; allowed: None or an integer "
                         f">= 1")
    store = ResultsStore(out_dir)
    encoded_dir = str(store.folder / "encoded")
    (store.folder / "experiment.json").write_text(json.dumps(
        {"name": getattr(experiment, "name", "points"), "source": getattr(experiment, "source",
                                                                          None),
         "points": [p.point_id() for p in points]}, indent=1))
    ids = [p.point_id() for p in points]
    todo = [p for p, i in zip(points, ids) if not store.done(i)]
    bar = tqdm(total=len(points), initial=len(points) - len(todo), disable=not progress,
               desc=getattr(experiment, "name", "sweep"), unit="point")
    try:
        if todo and (address is not None or (workers is not None and workers > 1)):
            _run_ray(todo, store, encoded_dir, workers, address, metrics, callback, bar)
        else:
            for cfg in todo:
                rec, tr, st = run_point(cfg, encoded_dir, None, metrics)
                store.save(cfg, rec, tr, st)
                bar.update(1)
                if callback is not None:
                    callback(cfg, rec)
    finally:
        bar.close()
    df = store.load(ids)
    if len(df):
        write_table(df, store.folder / "results.parquet")
    return df


def _run_ray(todo, store, encoded_dir, workers, address, metrics, callback, bar):
    import ray

    from channels.parallel import ray_init_kwargs

    started = False
    if not ray.is_initialized():
        kw = ray_init_kwargs()
        if address is not None:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=workers, **kw)
        started = True
    try:
        task = ray.remote(num_cpus=1)(run_point)
        limit = workers or int(ray.available_resources().get("CPU", 1))
        shipped: dict = {}

        def submit(cfg):
            # a codec object goes to the object store once, not pickled into every task
            if isinstance(cfg.codec, str):
                return task.remote(cfg, encoded_dir, None, metrics)
            key = id(cfg.codec)
            if key not in shipped:
                shipped[key] = ray.put(cfg.codec)
            return task.remote(cfg.replace(codec=cfg.codec_spec()), encoded_dir, shipped[key],
                               metrics)

        pending: dict = {}
        queue = list(todo)
        errors: list = []
        while queue or pending:
            while queue and not errors and len(pending) < max(1, limit):
                cfg = queue.pop(0)
                pending[submit(cfg)] = cfg
            if not pending:
                break
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cfg = pending.pop(ref)
                try:
                    rec, tr, st = ray.get(ref)
                    store.save(cfg, rec, tr, st)
                    bar.update(1)
                    if callback is not None:
                        callback(cfg, rec)
                except Exception as e:       # noqa: BLE001 -- re-raised below
                    # keep draining: the points still in flight finish and are stored
                    errors.append(e)
        if errors:
            raise errors[0]
    finally:
        if started:
            ray.shutdown()
