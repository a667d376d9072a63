"""The training loop every stage runs (prior, control, rsrt, regression, judge, captioner and
both HCI trainers): the stage supplies one step, the loop owns the rest.

    loop = TrainLoop("prior", start=0, steps=20000, log=run / "train.log",
                     optimizers=[opt], lr_factor=warmup(500), save_every=250)
    loop.run(step_fn, save=save_fn, sample=sample_fn)

``step_fn(step)`` does one optimisation step and returns a dict of detached tensors; its
``"loss"`` entry (0-d) is what the progress bar, the default log line and ``save`` see. The
values stay on their device until a log line needs them, so a GPU is not synchronised every
step. The loop sets every optimizer group's learning rate to its base rate (the rate the group
had when the loop was built) times ``lr_factor(step)``, writes a log line every ``log_every``
steps, calls ``save(done, mean_loss)`` every ``save_every`` steps, at the last step and before
stopping early, and ``sample(done)`` every ``sample_every`` steps. SIGTERM / SIGINT (when a
``save`` is given) and ``max_minutes`` stop the loop after the current step with a checkpoint
written.

The checkpoint *formats* stay each stage's own (so runs started before this loop existed
still resume); :func:`atomic_folder`, :func:`save_atomic` and the EMA helpers make writing
them crash-safe and alike.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

__all__ = ["TrainLoop", "StopFlag", "warmup", "warmup_then_decay", "atomic_folder",
           "save_atomic", "replace_checkpoint", "save_ema_state", "load_ema_state", "loss_line"]


class StopFlag:
    """SIGTERM / SIGINT ask the loop to save a checkpoint after the current step and stop."""

    def __init__(self):
        self.requested = False
        self._old = {sig: signal.signal(sig, self._handle)
                     for sig in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum, frame):
        self.requested = True

    def restore(self):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def warmup(steps: int, start: int = 0) -> Callable[[int], float]:
    """Learning-rate factor rising linearly from 1/steps at step ``start`` to 1."""
    return lambda step: min(1.0, (step + 1 - start) / steps)


def warmup_then_decay(steps: int, start: int, total: int, decay_from: float,
                      factor: float = 0.1) -> Callable[[int], float]:
    """:func:`warmup` from ``start``, then ×``factor`` from ``decay_from · total`` on."""
    up = warmup(steps, start)
    return lambda step: up(step) * (factor if step >= decay_from * total else 1.0)


def replace_checkpoint(tmp: Path, ckpt: Path) -> None:
    """Move the freshly written folder ``tmp`` to ``ckpt``; a crash at any point leaves either
    the old or the new checkpoint whole."""
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    if old.exists():
        shutil.rmtree(old)


@contextlib.contextmanager
def atomic_folder(ckpt: str | Path) -> Iterator[Path]:
    """Write a checkpoint folder atomically: yields an empty ``<ckpt>.tmp`` folder that
    replaces ``ckpt`` when the block ends without an exception."""
    ckpt = Path(ckpt)
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    yield tmp
    replace_checkpoint(tmp, ckpt)


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save`` to ``path`` through a temporary file (never a half-written file)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_ema_state(ema, path: str | Path) -> None:
    """A diffusers ``EMAModel``'s counters and decay (``ema_state.pt``); its shadow weights are
    saved as a module folder beside it."""
    st = ema.state_dict()
    st.pop("shadow_params", None)
    torch.save(st, path)


def load_ema_state(ema, path: str | Path, shadow: Sequence[torch.Tensor]) -> None:
    """Inverse of :func:`save_ema_state`: counters from ``path``, weights from ``shadow`` (the
    saved EMA module's trainable parameters, in the EMA's order)."""
    ema.load_state_dict({**torch.load(path, weights_only=True),
                         "shadow_params": [q.detach().clone() for q in shadow]})


def loss_line(done: int, window: list[dict], sec_per_step: float) -> str:
    """The default log line: ``step N loss L S.SSs/step`` (mean loss of the window)."""
    loss = float(np.mean([float(r["loss"]) for r in window]))
    return f"step {done} loss {loss:.5f} {sec_per_step:.2f}s/step"


class TrainLoop:
    """Steps ``start … steps-1`` of one stage (module docstring).

    Parameters
    ----------
    name : str
        Progress-bar label.
    start, steps : int
        First step to run and the step count to reach.
    log : path or None
        File the log lines are appended to (None: none written).
    optimizers : sequence of torch optimizers
        Whose groups follow ``lr_factor`` (groups keep their own base rates).
    lr_factor : callable(step) -> float or None
        None leaves the rates alone (e.g. a stage stepping a torch scheduler itself).
    log_every, save_every, sample_every : int
        Periods in steps (``sample_every`` 0: never).
    max_minutes : float or None
        Wall-clock budget; the loop saves and stops when it is spent.
    log_line : callable(done, window, sec_per_step) -> str
        Formats a log line from the records since the previous one (CPU tensors).
    echo : bool
        Also print log lines to stdout.
    """

    def __init__(self, name: str, start: int, steps: int, log: str | Path | None = None,
                 optimizers: Sequence[torch.optim.Optimizer] = (),
                 lr_factor: Optional[Callable[[int], float]] = None, log_every: int = 25,
                 save_every: int = 250, sample_every: int = 0,
                 max_minutes: float | None = None,
                 log_line: Callable[[int, list, float], str] = loss_line,
                 echo: bool = False, progress: bool = True):
        self.name, self.start, self.steps = name, int(start), int(steps)
        self.log_path = Path(log) if log is not None else None
        self.optimizers = list(optimizers)
        self.base_lrs = [[g["lr"] for g in o.param_groups] for o in self.optimizers]
        self.lr_factor = lr_factor
        self.log_every, self.save_every, self.sample_every = log_every, save_every, sample_every
        self.max_minutes = max_minutes
        self.log_line, self.echo, self.progress = log_line, echo, progress
        self.losses: list[float] = []    # every step's loss, flushed at log and save points
        self.done = self.start
        self.stopped_early: str | None = None

    def print(self, msg: str) -> None:
        """Append ``msg`` to the log (and stdout when echoing)."""
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(msg + "\n")
        if self.echo:
            print(msg, flush=True)

    def _set_lr(self, step: int) -> None:
        if self.lr_factor is None:
            return
        f = self.lr_factor(step)
        for opt, bases in zip(self.optimizers, self.base_lrs):
            for group, base in zip(opt.param_groups, bases):
                group["lr"] = base * f

    def run(self, step_fn: Callable[[int], dict], save: Callable[[int, float], None] | None = None,
            sample: Callable[[int], None] | None = None) -> int:
        """Run the steps; returns the step count reached."""
        stop = StopFlag() if save is not None else None
        t0 = t_log = time.time()
        window: list[dict] = []
        pending: list[dict] = []
        bar = tqdm(range(self.start, self.steps), initial=self.start, total=self.steps,
                   desc=self.name, unit="step", disable=not self.progress)
        try:
            for step in bar:
                self._set_lr(step)
                pending.append(step_fn(step))
                done = self.done = step + 1
                why = ("SIGTERM/SIGINT" if stop is not None and stop.requested else
                       "--max-minutes reached" if self.max_minutes is not None
                       and time.time() - t0 > 60 * self.max_minutes else None)
                saving = save is not None and (done % self.save_every == 0
                                               or done == self.steps or why)
                logging = done % self.log_every == 0 or done == self.steps
                if logging or saving:
                    flushed = [{k: v.detach().cpu() if torch.is_tensor(v) else v
                                for k, v in r.items()} for r in pending]
                    pending = []
                    window.extend(flushed)
                    self.losses.extend(float(r["loss"]) for r in flushed)
                if logging and window:
                    sps = (time.time() - t_log) / len(window)
                    bar.set_postfix(loss=f"{np.mean(self.losses[-len(window):]):.4f}")
                    self.print(self.log_line(done, window, sps))
                    window, t_log = [], time.time()
                if saving:
                    save(done, float(np.mean(self.losses[-100:])))
                if sample is not None and self.sample_every and (
                        done % self.sample_every == 0 or done == self.steps or why):
                    sample(done)
                if why:
                    self.stopped_early = why
                    self.print(f"stopping at step {done}: {why}; checkpoint saved")
                    break
        finally:
            if stop is not None:
                stop.restore()
        return self.done

    def recent_loss(self, n: int = 100) -> float:
        """Mean loss of the last ``n`` steps run."""
        return float(np.mean(self.losses[-n:])) if self.losses else float("nan")
