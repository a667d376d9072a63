"""The one training loop (training/harness.py) and the stage configs (training/stages.py)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
from pathlib import Path

import pytest
import torch

from training.config import StageConfig
from training.harness import TrainLoop, atomic_folder, warmup, warmup_then_decay
from training.stages import STAGE_CONFIGS, DPCDConfig, HCIPhotosConfig

ROOT = Path(__file__).resolve().parents[3]


def _toy(lr=1.0):
    w = torch.nn.Parameter(torch.zeros(()))
    return w, torch.optim.SGD([w], lr=lr)


def test_loop_schedules_logs_saves_and_samples(tmp_path):
    w, opt = _toy(lr=0.5)
    seen_lr, saves, samples = [], [], []

    def step_fn(step):
        seen_lr.append(opt.param_groups[0]["lr"])
        loss = (w - 1.0) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    loop = TrainLoop("toy", 0, 10, tmp_path / "train.log", [opt], warmup(4), log_every=3,
                     save_every=4, sample_every=5, progress=False)
    assert loop.run(step_fn, lambda d, l: saves.append(d), samples.append) == 10
    assert seen_lr[:4] == [0.125, 0.25, 0.375, 0.5] and seen_lr[4:] == [0.5] * 6
    assert saves == [4, 8, 10] and samples == [5, 10]
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert [l.split()[1] for l in lines] == ["3", "6", "9", "10"]
    assert all(re.fullmatch(r"step \d+ loss [\d.]+ [\d.]+s/step", l) for l in lines)
    assert len(loop.losses) == 10 and loop.losses[-1] < loop.losses[0]


def test_loop_resumes_from_its_start_and_decays(tmp_path):
    w, opt = _toy(lr=1.0)
    f = warmup_then_decay(2, start=6, total=10, decay_from=0.9)
    lrs = []
    TrainLoop("toy", 6, 10, None, [opt], f, progress=False).run(
        lambda s: lrs.append(opt.param_groups[0]["lr"]) or {"loss": torch.tensor(0.0)})
    assert lrs == [0.5, 1.0, 1.0, 0.1]


def test_sigterm_saves_and_stops(tmp_path):
    saves = []

    def step_fn(step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return {"loss": torch.tensor(float(step))}

    before = signal.getsignal(signal.SIGTERM)
    loop = TrainLoop("toy", 0, 100, tmp_path / "log", save_every=50, progress=False)
    assert loop.run(step_fn, lambda d, l: saves.append((d, l))) == 3
    assert saves == [(3, 1.0)] and loop.stopped_early == "SIGTERM/SIGINT"
    assert "stopping at step 3" in (tmp_path / "log").read_text()
    assert signal.getsignal(signal.SIGTERM) is before     # handler restored


def test_max_minutes_saves_and_stops():
    saves = []
    loop = TrainLoop("toy", 0, 100, max_minutes=1e-9, save_every=50, progress=False)
    loop.run(lambda s: {"loss": torch.tensor(0.0)}, lambda d, l: saves.append(d))
    assert saves == [1] and loop.stopped_early == "--max-minutes reached"


def test_atomic_folder_keeps_the_old_checkpoint_on_a_crash(tmp_path):
    ckpt = tmp_path / "checkpoint"
    with atomic_folder(ckpt) as tmp:
        (tmp / "state.json").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_folder(ckpt) as tmp:
            (tmp / "state.json").write_text("2")
            raise RuntimeError("crash while writing")
    assert (ckpt / "state.json").read_text() == "1"
    with atomic_folder(ckpt) as tmp:          # a leftover .tmp is cleared
        (tmp / "state.json").write_text("3")
    assert (ckpt / "state.json").read_text() == "3" and not ckpt.with_name("checkpoint.tmp").exists()


@pytest.mark.parametrize("stage", sorted(STAGE_CONFIGS))
def test_stage_config_flags_round_trip(stage):
    cls = STAGE_CONFIGS[stage]
    required = {"run": "r", "out": "o", "stage": "rsrt", "lmbda": 1e-3, "photos": "p"}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    cfg = cls(**{k: v for k, v in required.items() if k in fields})
    # change one field of every kind so the command line must carry it
    changes = {}
    for name, f in fields.items():
        if not f.metadata.get("cli", True) or name in required:
            continue
        if isinstance(f.default, bool):
            changes[name] = not f.default
        elif isinstance(f.default, int) and not f.metadata.get("choices"):
            changes[name] = f.default + 1
        elif isinstance(f.default, tuple):
            changes[name] = tuple(reversed(f.default)) + f.default[:1]
    cfg = cfg.replace(**changes)
    p = argparse.ArgumentParser()
    cls.add_arguments(p)
    assert "--steps" in p.format_help()
    line = cfg.command_line("sdgic train x").split()[3:]
    assert cls.from_args(p.parse_args(line)) == cfg
    assert set(cfg.record()) == set(fields)


def test_configs_check_settings():
    with pytest.raises(ValueError, match="native-pairs needs --photos"):
        DPCDConfig(run="r", stage="rsrt", native_pairs="x").check()
    with pytest.raises(ValueError, match="hci_dropout"):
        DPCDConfig(run="r", stage="control", hci_dropout=1.0).check()
    with pytest.raises(ValueError, match="increasing"):
        HCIPhotosConfig(run="r", photos="p", lmbdas=(1e-3, 1e-4)).check()


def test_every_stage_runs_through_its_runner():
    import importlib

    for cls in STAGE_CONFIGS.values():
        module, _, name = cls.runner.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), cls.runner
        assert issubclass(cls, StageConfig)


def test_no_training_loop_outside_the_harness():
    """Every optimisation loop in training/ runs through TrainLoop: outside the harness no
    ``for`` or ``while`` loop calls ``backward()`` (the step functions do, outside loops)."""
    import ast

    offenders = []
    for path in (ROOT / "training").glob("*.py"):
        if path.name == "harness.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.For, ast.While)) and any(
                    isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                    and n.func.attr == "backward" for n in ast.walk(node)):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
