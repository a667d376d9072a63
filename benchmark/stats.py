"""Confidence intervals: one definition for every table and plot.

``ci95(values)``: half-width of the 95 % Student t interval of the mean,
``t_{0.975, n-1} · s / √n`` (sample standard deviation ``s``, NaNs left out; NaN for fewer
than two values). With the few seeds of a sweep (3–6) t is 1.4–2.2 times the normal
quantile 1.96, so a normal interval would be too narrow.

``mean_interval(values, bounds)``: ``(mean, low, high)``; for a metric bounded to ``[lo, hi]``
(consistency, delivery, MS-SSIM in [0, 1]) the interval is cut at the bounds, so an error bar
never claims values the metric cannot take.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

__all__ = ["ci95", "t_quantile", "mean_interval", "UNIT_BOUNDS"]

UNIT_BOUNDS = (0.0, 1.0)


def t_quantile(n, level: float = 0.95):
    """Two-sided Student t quantile for ``n`` samples (``n - 1`` degrees of freedom); NaN
    where ``n < 2``. ``n`` may be an array."""
    from scipy import stats

    n = np.asarray(n, float)
    out = np.full(n.shape, np.nan)
    ok = n >= 2
    out[ok] = stats.t.ppf(0.5 + level / 2, n[ok] - 1)
    return float(out) if out.ndim == 0 else out


def ci95(values) -> float:
    """Half-width of the 95 % Student t interval of the mean (see the module docstring)."""
    v = np.asarray(values, float).ravel()
    v = v[~np.isnan(v)]
    if len(v) < 2:
        return math.nan
    return float(t_quantile(len(v)) * v.std(ddof=1) / math.sqrt(len(v)))


def mean_interval(values, bounds: Optional[tuple[float, float]] = None
                  ) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the 95 % interval, cut at ``bounds`` when given."""
    v = np.asarray(values, float).ravel()
    v = v[~np.isnan(v)]
    m = float(v.mean()) if len(v) else math.nan
    h = ci95(v)
    lo, hi = m - h, m + h
    if bounds is not None and not math.isnan(h):
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return m, lo, hi
