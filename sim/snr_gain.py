"""SNR gain of one protection policy over another at equal quality, from a sweep's records.

Per scenario × mode, the metric-vs-SNR curve of each policy is the mean over seeds (each seed:
its own images and channel). A target level ``floor + f · (ceiling - floor)`` is set for each
fraction ``f`` of ``levels``, with ``ceiling`` the mean of both policies at the highest SNR and
``floor`` the lowest point of either curve. The SNR a policy needs is where its curve first
reaches the target (linear interpolation between grid points). Gain = SNR(baseline) -
SNR(policy) in dB: positive when ``policy`` needs less (a lower bound when ``policy`` is at the
target already at the grid's lowest SNR). The 95 % interval is a bootstrap over seeds (both
policies resampled together: a seed gives both the same channel).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["snr_to_reach", "snr_gain", "GROUP"]

GROUP = ["scenario", "mode"]


def snr_to_reach(snr: np.ndarray, curve: np.ndarray, target: float) -> float:
    """First SNR (dB) where ``curve`` (sorted by ``snr``) reaches ``target``, linearly
    interpolated; NaN if it never does, ``snr[0]`` if it starts above."""
    above = np.nonzero(curve >= target)[0]
    if len(above) == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(snr[0])
    s0, s1, c0, c1 = snr[i - 1], snr[i], curve[i - 1], curve[i]
    return float(s0 + (target - c0) * (s1 - s0) / (c1 - c0))


def _curves(runs: pd.DataFrame, seeds, metric: str) -> pd.DataFrame:
    """Mean over ``seeds`` (with repeats) of per-seed means: index snr_db, columns policy."""
    parts = [runs[runs.seed == s] for s in seeds]
    return pd.concat(parts).groupby(["snr_db", "policy"])[metric].mean().unstack("policy")


def _gains(curves: pd.DataFrame, policy: str, baseline: str, levels) -> dict:
    snr = curves.index.to_numpy(dtype=float)
    ceiling = float(curves.iloc[-1][[policy, baseline]].mean())
    floor = float(curves[[policy, baseline]].min().min())
    out = {}
    for f in levels:
        target = floor + f * (ceiling - floor)
        need = {p: snr_to_reach(snr, curves[p].to_numpy(dtype=float), target)
                for p in (policy, baseline)}
        # A curve already at the target at the lowest SNR only bounds what it needs.
        out[f] = dict(target=target, snr_policy_db=need[policy], snr_baseline_db=need[baseline],
                      gain_db=need[baseline] - need[policy],
                      lower_bound=bool(need[policy] == snr[0] and need[baseline] > snr[0]))
    return out


def snr_gain(df: pd.DataFrame, policy: str = "uep", baseline: str = "eep",
             metric: str = "consistency", levels=(0.5, 0.9), boot: int = 2000,
             seed: int = 0) -> list[dict]:
    """One dict per scenario × mode × level: target, SNR each policy needs, gain (dB) and its
    bootstrap 95 % interval."""
    missing = {policy, baseline} - set(df["policy"])
    if missing:
        raise ValueError(f"policies {sorted(missing)} not in the results (have "
                         f"{sorted(df['policy'].unique())})")
    rng = np.random.default_rng(seed)
    rows = []
    for key, g in df.groupby(GROUP):
        runs = g.groupby(["seed", "snr_db", "policy"])[metric].mean().reset_index()
        seeds = np.sort(runs.seed.unique())
        point = _gains(_curves(runs, seeds, metric), policy, baseline, levels)
        draws = {f: [] for f in levels}
        for _ in range(boot):
            b = _gains(_curves(runs, rng.choice(seeds, len(seeds)), metric), policy, baseline,
                       levels)
            for f in levels:
                draws[f].append(b[f]["gain_db"])
        for f in levels:
            d = np.asarray(draws[f], dtype=float)
            d = d[np.isfinite(d)]
            lo, hi = (np.percentile(d, [2.5, 97.5]) if len(d) >= 0.9 * boot
                      else (float("nan"), float("nan")))
            rows.append(dict(zip(GROUP, key), level=f, metric=metric, policy=policy,
                             baseline=baseline, seeds=len(seeds), **point[f],
                             gain_ci95_low_db=float(lo), gain_ci95_high_db=float(hi)))
    return rows
