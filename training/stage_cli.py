"""The command line of a trainer module: ``python -m training.X`` and ``sdgic train X`` parse
the same flags (the module's ``add_arguments``) and call its ``run``."""

from __future__ import annotations

import argparse


def stage_main(doc: str, add_arguments, run, argv=None, prog: str | None = None) -> None:
    """Parse ``argv`` with ``add_arguments`` (description: ``doc``'s first paragraph) and
    ``run`` the result."""
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    add_arguments(p)
    run(p.parse_args(argv))
