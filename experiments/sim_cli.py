"""``sdgic sim``, ``sdgic sweep`` and ``sdgic plot``: the simulator's commands.

:func:`add_sim_commands` adds them to the ``sdgic`` parser (``experiments/cli.py``):

    sdgic sim EXPERIMENT.toml [--out DIR]               # every point of the grid, serially
    sdgic sweep EXPERIMENT.toml --out DIR [--workers N] [--address ADDR] [--no-plots]
    sdgic plot DIR_OR_RESULTS [--out DIR] [--metric psnr] [--snr DB] [--budget PRB]

``sim`` and ``sweep`` write the crash-safe results store (re-running resumes), then
``results.parquet`` and, unless ``--no-plots``, the plots under ``DIR/plots``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _workers(v):
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return n


def _sweep(a, workers, address):
    import torch

    from sim.experiment import load_experiment
    from sim.sweep import run_sweep

    torch.set_num_threads(1)
    exp = load_experiment(a.experiment)
    out = Path(a.out or Path("results") / exp.name)
    df = run_sweep(exp, out, workers=workers, address=address, progress=True)
    print(f"{len(df)} image records from {df.point_id.nunique() if len(df) else 0} points "
          f"in {out / 'results.parquet'}")
    if not a.no_plots and len(df):
        from sim.plots import plot_results

        files = plot_results(df, out / "plots")
        print(f"plots: {', '.join(str(f) for f in files if f.suffix == '.png')}")


def cmd_sim(a):
    _sweep(a, None, None)


def cmd_sweep(a):
    _sweep(a, a.workers, a.address)


def cmd_plot(a):
    from sim.plots import plot_results
    from sim.records import read_table

    src = Path(a.results)
    path = src / "results.parquet" if src.is_dir() else src
    if not path.is_file():
        raise FileNotFoundError(f"no results at {path}; run `sdgic sweep` first")
    df = read_table(path)
    out = Path(a.out) if a.out else path.parent / "plots"
    files = plot_results(df, out, metric=a.metric, snr_db=a.snr, budget_prbs=a.budget)
    print(f"plots: {', '.join(str(f) for f in files if f.suffix == '.png')}")


def add_sim_commands(sub) -> None:
    """Add ``sim``, ``sweep`` and ``plot`` to an argparse sub-parser set."""
    s = sub.add_parser("sim", help="run an experiment file's simulations (serial, resumable)")
    s.add_argument("experiment", help="experiment TOML (see sim/experiment.py)")
    s.add_argument("--out", help="results folder (default results/<experiment name>)")
    s.add_argument("--no-plots", action="store_true")
    s.set_defaults(func=cmd_sim)

    s = sub.add_parser("sweep", help="run an experiment grid on Ray (crash-safe, resumable)")
    s.add_argument("experiment", help="experiment TOML (see sim/experiment.py)")
    s.add_argument("--out", help="results folder (default results/<experiment name>)")
    s.add_argument("--workers", type=_workers, default=2,
                   help="Ray CPUs (local) or tasks in flight (cluster); 1: serial, no Ray")
    s.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    s.add_argument("--no-plots", action="store_true")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("plot", help="plots of sweep results (PNG + PDF)")
    s.add_argument("results", help="results folder or results.parquet")
    s.add_argument("--out", help="plot folder (default: <results>/plots)")
    s.add_argument("--metric", help="records column to plot (default: consistency, else psnr, "
                                    "else complete)")
    s.add_argument("--snr", type=float, help="SNR [dB] of the budget/latency plots")
    s.add_argument("--budget", type=int, help="budget [PRBs] of the delivery/latency plots")
    s.set_defaults(func=cmd_plot)
