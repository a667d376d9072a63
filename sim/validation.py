"""Input validation shared by the simulator's configuration objects.

Every error names the argument (or TOML key), its value and what is allowed, e.g.
``mode = 'fast' is not supported; allowed: abstraction, bit``.
"""

from __future__ import annotations

__all__ = ["fail"]


def fail(key, value, allowed):
    """Raise ``ValueError("<key> = <value!r> is not supported; allowed: <allowed>")``."""
    raise ValueError(f"{key} = {value!r} is not supported; allowed: {allowed}")
