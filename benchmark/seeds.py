"""Every data-set seed of the project in one place: which procedural scenes (and photo crops)
each stage trains on and each evaluation scores on.

A scene data set is ``benchmark.scenes.generate(index, seed, size)`` for index 0, 1, ...;
two stages that use the same seed see the same scenes. Training and evaluation seeds are
disjoint (``tests/unit/benchmark/test_seeds.py``), so no evaluation scene was ever trained on.
"""

from __future__ import annotations

__all__ = ["JUDGE_TRAIN", "JUDGE_EVAL", "PRIOR_TRAIN", "PRIOR_SAMPLES", "CAPTIONER_TRAIN",
           "CAPTIONER_EVAL", "HCI_TRAIN", "HCI_EVAL", "DPCD_EVAL", "SIMULATOR", "DEMO",
           "TRAINING", "EVALUATION"]

JUDGE_TRAIN = 1001        # the scene judge's training scenes
JUDGE_EVAL = 2002         # its accuracy table
PRIOR_TRAIN = 3003        # DPCD (prior, ControlNet, RSRT, regression): endless training scenes
PRIOR_SAMPLES = 4004      # the fixed scenes of training sample grids (shown, not scored)
CAPTIONER_TRAIN = 5005    # the scene captioner's training scenes
CAPTIONER_EVAL = 5006     # its accuracy table
HCI_TRAIN = 6006          # the 64² HCI rate points' training scenes
HCI_EVAL = 6007           # HCI rate-distortion tables and HCI validation
DPCD_EVAL = 7007          # held-out scenes of every decoder evaluation (dpcd_eval, sweeps)
SIMULATOR = 0             # the simulator's default scene data set ([dataset] seed)
DEMO = 5005               # `sdgic demo`'s scenes (the captioner's training scenes: the demo
                          # shows the pipeline, its numbers are not an evaluation)

TRAINING = {"judge": JUDGE_TRAIN, "prior": PRIOR_TRAIN, "captioner": CAPTIONER_TRAIN,
            "hci": HCI_TRAIN}
EVALUATION = {"judge": JUDGE_EVAL, "captioner": CAPTIONER_EVAL, "hci": HCI_EVAL,
              "dpcd": DPCD_EVAL, "simulator": SIMULATOR}
