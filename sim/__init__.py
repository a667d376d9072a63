"""SimPy link simulator: SDGIC's streams as prioritized packets over a channels.Link.

Public API::

    from sim import SimConfig, run_simulation, simulate, load_experiment, run_sweep
    df = run_simulation(SimConfig("experiments/scenarios/tdl_a_30khz.toml", snr_db=4,
                                  policy="uep", budget_prbs=4, num_images=16))
    exp = load_experiment("experiments/quickstart.toml")
    results = run_sweep(exp, "results/quickstart")        # crash-safe, resumable, Ray optional

Modules (one concept each): packets, source, packetizer, policy, bit_budget, link_adaptation,
scheduler, channel_process, receiver, codec_api, metrics, records, config, simulation,
experiment, sweep, plots. ``sim`` uses ``channels`` and ``codec``; neither imports ``sim``, and
``sim`` reaches Sionna only through ``channels`` (``tests/unit/test_layers.py``).
"""

from .config import SimConfig
from .packets import STREAMS, Packet
from .policy import ProtectionPolicy, StreamProtection, make_policy

__all__ = ["SimConfig", "Packet", "STREAMS", "ProtectionPolicy", "StreamProtection",
           "make_policy", "run_simulation", "simulate", "Experiment", "load_experiment",
           "run_sweep", "plot_results"]

_LAZY = {"run_simulation": "simulation", "simulate": "simulation", "Experiment": "experiment",
         "load_experiment": "experiment", "run_sweep": "sweep", "plot_results": "plots"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
