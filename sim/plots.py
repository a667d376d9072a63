"""Plots of sweep results (matplotlib, PNG + PDF).

:func:`plot_results` draws, from the records of a sweep (``results.parquet``):

* ``consistency_vs_snr``: the metric vs SNR, one line per policy (and budget; per codec,
  policy and bit budget when the records hold several codecs), one panel per scenario and
  fidelity mode;
* ``consistency_vs_budget``: the metric vs bandwidth budget (PRBs per slot) at one SNR;
* ``delivery_vs_snr``: the fraction of images whose caption / HCI / RSRT stream arrived
  whole by the deadline, per policy, with the finite-blocklength reference for the caption
  packet (normal approximation of Polyanskiy–Poor–Verdú: a *single transmission* of ``k``
  caption bits in ``n`` resource elements at the policy's caption MCS in the scenario's MCS
  table, no retransmission; AWGN for the AWGN scenario, quasi-static Rayleigh otherwise);
* ``latency_cdf``: empirical CDF of the latency of images whose streams all arrived.

Error bars are 95 % confidence intervals of the mean, Student t with ``n - 1`` degrees of
freedom (``t_{0.975, n-1} · s / √n``; NaN, no bar, when ``n < 2``), over runs (seeds) when
there are at least two seeds per point, otherwise over images (images of one run share a
channel realization, so that interval is optimistic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["summarize", "plot_results", "fbl_reference", "default_metric"]

_STREAMS = ("caption", "hci", "rsrt")
# the metrics a run's records may hold, best first: the judge's (scenes), then any decoded
# image's, then delivery (a run without decoding)
_DEFAULT_METRICS = ("consistency", "psnr", "complete")
# metrics that live in [0, 1]: their axes stay there (a wide interval is clipped at the edge)
_UNIT_METRICS = ("consistency", "complete", "ms_ssim", "inception_similarity")


def summarize(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Mean, 95 % CI half-width ``ci95`` (Student t, NaN for fewer than 2 samples,
    :mod:`benchmark.stats`), count, and the interval's ``low`` / ``high`` (cut at 0 and 1 for
    the metrics in [0, 1]: consistency, delivery, MS-SSIM, ...) of ``value`` per group ``by``
    (see the module docstring)."""
    from benchmark.stats import UNIT_BOUNDS, t_quantile

    bounded = _bounded(df, value)
    df = df.copy()
    df[value] = df[value].astype(float)
    if "seed" in df and df.groupby(by)["seed"].nunique().min() >= 2:
        runs = df.groupby(by + ["seed"], dropna=False)[value].mean().reset_index()
    else:
        runs = df
    g = runs.groupby(by, dropna=False)[value]
    out = g.agg(["mean", "std", "count"]).reset_index()
    n = out["count"].to_numpy(dtype=float)
    out["ci95"] = t_quantile(n) * out["std"].to_numpy(dtype=float) / np.sqrt(np.maximum(n, 1))
    out["low"], out["high"] = out["mean"] - out["ci95"], out["mean"] + out["ci95"]
    if bounded:
        out["low"] = out["low"].clip(lower=UNIT_BOUNDS[0])
        out["high"] = out["high"].clip(upper=UNIT_BOUNDS[1])
    return out


def _bounded(df: pd.DataFrame, value: str) -> bool:
    """Whether ``value`` lives in [0, 1]: a named unit metric, a judge part or a boolean."""
    return (value in _UNIT_METRICS or value.startswith(("judge_", "ok_"))
            or df[value].dtype == bool)


def _yerr(g: pd.DataFrame):
    """Asymmetric error bars of a :func:`summarize` table (cut at the metric's bounds)."""
    return [(g["mean"] - g["low"]).to_numpy(), (g["high"] - g["mean"]).to_numpy()]


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        p = out / f"{name}.{ext}"
        fig.savefig(p, dpi=150, bbox_inches="tight")
        paths.append(p)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def _panels(df):
    keys = sorted(df.groupby(["scenario", "mode"]).groups)
    return keys


def _label(policy, budget, many_budgets):
    return f"{policy}, {budget} PRB" if many_budgets else str(policy)


def _lines_by_system(df: pd.DataFrame) -> pd.DataFrame:
    """Records of several codecs or bit budgets (``grid.codecs``): one line per ``system``
    (codec, policy and budget) instead of per policy, so codecs sharing a policy name stay
    apart."""
    keys = [k for k in ("codec", "bit_budget") if k in df]
    if "system" in df and keys and len(df[keys].drop_duplicates()) > 1:
        return df.assign(policy=df["system"])
    return df


def default_metric(df: pd.DataFrame) -> str:
    """The metric to plot for these records: the first of ``_DEFAULT_METRICS`` they hold."""
    return next((m for m in _DEFAULT_METRICS if m in df), "complete")


def plot_results(df: pd.DataFrame, out_dir: str | Path, metric: str | None = None,
                 snr_db: float | None = None, budget_prbs: int | None = None) -> list[Path]:
    """Write the plots (see the module docstring) to ``out_dir``; returns the files.

    ``metric``: column to plot (default ``default_metric(df)``: ``consistency``, else
    ``psnr``, else ``complete``; without decoding use e.g. ``ok_caption``). ``snr_db``: SNR
    of the latency plot (default: the middle of the grid) and of the budget plot (default:
    a row for each SNR of a grid of up to four, else the middle one). ``budget_prbs``: budget of the delivery and latency plots (default: largest).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if df.empty:
        raise ValueError("no records to plot (the sweep has no finished point)")
    metric = metric or default_metric(df)
    if metric not in df:
        have = [c for c in _DEFAULT_METRICS if c in df]
        raise ValueError(f"metric = {metric!r} is not a column of the records; allowed: "
                         f"{', '.join(have)} or any numeric column")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = _lines_by_system(df)
    panels = _panels(df)
    snrs = sorted(df["snr_db"].unique())
    snr_sel = snr_db if snr_db is not None else snrs[len(snrs) // 2]
    budgets = sorted(df["budget_prbs"].unique())
    b_sel = budget_prbs if budget_prbs is not None else budgets[-1]
    many_b = len(budgets) > 1
    files: list[Path] = []
    w = 4.2 * len(panels)

    # 1. metric vs SNR
    fig, axes = plt.subplots(1, len(panels), figsize=(w, 3.4), squeeze=False)
    for ax, (scn, mode) in zip(axes[0], panels):
        sub = df[(df.scenario == scn) & (df["mode"] == mode)]
        s = summarize(sub, ["policy", "budget_prbs", "snr_db"], metric)
        for (pol, b), g in s.groupby(["policy", "budget_prbs"]):
            ax.errorbar(g.snr_db, g["mean"], yerr=_yerr(g), marker="o", ms=3, capsize=2,
                        label=_label(pol, b, many_b))
        ax.set(title=f"{scn} ({mode})", xlabel="SNR [dB]", ylabel=metric)
        if metric in _UNIT_METRICS or metric.startswith(("ok_", "judge_")):
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    files += _save(fig, out, f"{metric}_vs_snr")

    # 2. metric vs budget: a row per SNR (every SNR of a grid of up to four, else --snr's)
    if many_b:
        rows_snr = [snr_sel] if snr_db is not None or len(snrs) > 4 else snrs
        fig, axes = plt.subplots(len(rows_snr), len(panels),
                                 figsize=(w, 3.4 * len(rows_snr)), squeeze=False)
        for r, snr in enumerate(rows_snr):
            for ax, (scn, mode) in zip(axes[r], panels):
                sub = df[(df.scenario == scn) & (df["mode"] == mode) & (df.snr_db == snr)]
                s = summarize(sub, ["policy", "budget_prbs"], metric)
                for pol, g in s.groupby("policy"):
                    ax.errorbar(g.budget_prbs, g["mean"], yerr=_yerr(g), marker="o", ms=3,
                                capsize=2, label=str(pol))
                ax.set(title=f"{scn} ({mode}), {snr:g} dB", xlabel="budget [PRBs per slot]",
                       ylabel=metric)
                if metric in _UNIT_METRICS or metric.startswith(("ok_", "judge_")):
                    ax.set_ylim(-0.03, 1.03)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7)
        fig.tight_layout()
        files += _save(fig, out, f"{metric}_vs_budget")

    # 3. delivery rate per stream, with the finite-blocklength reference for the caption
    rows = len(panels)
    fig, axes = plt.subplots(rows, 3, figsize=(11, 3.0 * rows), squeeze=False)
    for r, (scn, mode) in enumerate(panels):
        sub = df[(df.scenario == scn) & (df["mode"] == mode) & (df.budget_prbs == b_sel)]
        for c, st in enumerate(_STREAMS):
            ax = axes[r][c]
            col = f"ok_{st}"
            if f"bits_{st}" in sub and not (sub[f"bits_{st}"] > 0).any():
                ax.set(title=f"{st}: not sent (the codec has no {st} stream)")
                ax.axis("off")
                continue
            s = summarize(sub, ["policy", "snr_db"], col)
            for pol, g in s.groupby("policy"):
                ax.errorbar(g.snr_db, g["mean"], yerr=_yerr(g), marker="o", ms=3, capsize=2,
                            label=str(pol))
            if st == "caption":
                for cv in fbl_reference(sub, snrs):
                    ax.plot(cv["snr_db"], cv["p_success"], ls="--", lw=0.9, color="grey",
                            label=cv["label"])
            ax.set(title=f"{st}: {scn} ({mode}), {b_sel} PRB", xlabel="SNR [dB]",
                   ylabel="delivered by deadline", ylim=(-0.03, 1.03))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    files += _save(fig, out, "delivery_vs_snr")

    # 4. latency CDF
    fig, axes = plt.subplots(1, len(panels), figsize=(w, 3.4), squeeze=False)
    for ax, (scn, mode) in zip(axes[0], panels):
        sub = df[(df.scenario == scn) & (df["mode"] == mode) & (df.snr_db == snr_sel)
                 & (df.budget_prbs == b_sel)]
        for pol, g in sub.groupby("policy"):
            lat = np.sort(g["latency_ms"].dropna().to_numpy())
            if len(lat) == 0:
                continue
            # CDF over all images: incomplete images never arrive (the curve stays below 1)
            y = np.arange(1, len(lat) + 1) / len(g)
            ax.step(np.concatenate([[0], lat]), np.concatenate([[0], y]), where="post",
                    label=str(pol))
        ax.set(title=f"{scn} ({mode}), {snr_sel:g} dB, {b_sel} PRB", xlabel="latency [ms]",
               ylabel="P(image complete within x)", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    files += _save(fig, out, "latency_cdf")
    return files


def fbl_reference(sub: pd.DataFrame, snrs) -> list[dict]:
    """PPV normal approximation for a single transmission of one caption packet at each
    policy's caption MCS, in the scenario's MCS table (``mcs_table`` column; 1 if absent).

    Returns one dict per curve: ``label``, ``mcs``, ``mcs_table``, ``k`` (bits), ``n``
    (resource elements), ``snr_db`` and ``p_success`` (arrays)."""
    from channels import bounds
    from channels.transport import transport_format

    if sub.empty or "mcs_caption" not in sub:
        return []
    k = int(sub["bits_caption"].median())
    if k < 1:
        return []
    fading = "awgn" if str(sub["channel_model"].iloc[0]).upper() == "AWGN" else "rayleigh"
    grid = np.linspace(min(snrs) - 1, max(snrs) + 1, 60)
    tables = sub.groupby("mcs_table") if "mcs_table" in sub else [(1, sub)]
    curves = []
    for table, part in tables:
        for mcs in sorted(m for m in part["mcs_caption"].unique() if m >= 0):
            n = transport_format(k, int(mcs), int(table)).num_re
            eps = bounds.ppv_awgn_error(n, k, grid) if fading == "awgn" else \
                bounds.ppv_rayleigh_error(n, k, grid)
            curves.append(dict(label=f"PPV {fading}, single transmission, k={k}, n={n} "
                                     f"(MCS {mcs}, table {int(table)})",
                               mcs=int(mcs), mcs_table=int(table), k=k, n=int(n), snr_db=grid,
                               p_success=1 - np.asarray(eps)))
    return curves
