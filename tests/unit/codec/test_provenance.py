"""Run records carry the real command line (every flag, shell-quoted) and the commit."""

import re
import shlex

from codec.provenance import command_line, run_record


def test_command_line_keeps_every_flag_quoted():
    argv = ["--preset", "my presets/x", "--steps", 4, "--guidance-interval", "0.3:1"]
    cmd = command_line("experiments.bench_decode", argv)
    assert shlex.split(cmd) == ["python", "-m", "experiments.bench_decode", "--preset",
                                "my presets/x", "--steps", "4", "--guidance-interval", "0.3:1"]


def test_run_record_names_the_commit():
    rec = run_record("experiments.photo_rd", ["--hci", "h"], images=3)
    assert rec["command"] == "python -m experiments.photo_rd --hci h" and rec["images"] == 3
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", rec["commit"])
