"""The command line of a trainer module: ``python -m training.X`` parses the same flags as
``sdgic train X`` (the stage's config dataclass in :mod:`training.stages`) and runs it."""

from __future__ import annotations

import argparse
import shlex
import sys


def stage_main(stage: str, argv=None, prog: str | None = None) -> None:
    """Parse ``argv`` into the config of ``stage`` and run it; a setting the stage refuses
    exits with one line (status 2)."""
    from training.stages import STAGE_CONFIGS, run_stage

    cls = STAGE_CONFIGS[stage]
    module = cls.runner.partition(":")[0]
    p = argparse.ArgumentParser(prog=prog or f"python -m {module}",
                                description=cls.__doc__.split("\n\n")[0])
    cls.add_arguments(p)
    a = p.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "-m", module, *argv])
    extra = {"command": command} if "command" in cls.__dataclass_fields__ else {}
    try:
        run_stage(cls.from_args(a, **extra))
    except ValueError as e:
        p.error(str(e))
