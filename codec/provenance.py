"""Provenance for shipped weights: the code commit and the model card beside the weights."""

from __future__ import annotations

import json
import subprocess
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
