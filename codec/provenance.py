"""Provenance: the code commit, the command line that reproduces a run, and the model card
beside shipped weights."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path


def git_commit() -> str:
    """HEAD of the checkout this code runs from, or "unknown" outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_model_card(folder: str | Path, card: dict) -> Path:
    """Write ``card`` as ``folder/model_card.json`` (indented JSON); return its path."""
    path = Path(folder) / "model_card.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def command_line(module: str, argv: list[str] | None = None) -> str:
    """``python -m MODULE ARGS``: the command that reproduces this run, with the real
    arguments (``argv``, default ``sys.argv[1:]``), shell-quoted."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    return shlex.join(["python", "-m", module, *args])


def python_call(func: str, **kwargs) -> str:
    """``module.func(k=v, ...)``: how a run started from Python is recorded (the arguments as
    given, ``repr``-ed)."""
    return f"{func}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def run_record(module: str, argv: list[str] | None = None, **fields) -> dict:
    """The head of a results record: ``command`` (:func:`command_line`), ``commit``, then
    ``fields``."""
    return {"command": command_line(module, argv), "commit": git_commit(), **fields}
