"""Ray workers for independent jobs (calibration grid points; ``sim.sweep`` uses the same
settings): one torch thread per worker, offline, results handed back as they finish."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

__all__ = ["ray_init_kwargs", "ray_map"]


def ray_init_kwargs() -> dict:
    """Arguments for ``ray.init``: no dashboard, one thread per worker, offline. Start Ray
    yourself with them to keep one Ray across several sweeps or calibrations."""
    return dict(include_dashboard=False, log_to_driver=False,
                runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                          "TOKENIZERS_PARALLELISM": "false"}})


def ray_map(fn: Callable, args: Sequence[tuple], workers: Optional[int] = None,
            address: Optional[str] = None, on_result: Optional[Callable] = None) -> None:
    """Run ``fn(*a)`` for every ``a`` in ``args`` on Ray, at most ``workers`` at a time, and
    call ``on_result(result)`` in this process as each finishes. If one fails, the tasks in
    flight still finish and are handed over; then the first error is raised."""
    import ray

    started = False
    if not ray.is_initialized():
        kw = ray_init_kwargs()
        ray.init(address=address, **kw) if address is not None else ray.init(num_cpus=workers, **kw)
        started = True
    try:
        task = ray.remote(num_cpus=1)(fn)
        limit = max(1, workers or int(ray.available_resources().get("CPU", 1)))
        queue, pending, errors = list(args), [], []
        while queue or pending:
            while queue and not errors and len(pending) < limit:
                pending.append(task.remote(*queue.pop(0)))
            if not pending:
                break
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    res = ray.get(ref)
                except Exception as e:      # noqa: BLE001 -- re-raised below
                    errors.append(e)
                    continue
                if on_result is not None:
                    on_result(res)
        if errors:
            raise errors[0]
    finally:
        if started:
            ray.shutdown()
