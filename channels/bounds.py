"""Finite-blocklength benchmarks for short packets (captions, tokens).

Sionna has no finite-blocklength bounds, so they are written here (numpy/scipy).

* :func:`ppv_awgn_error` -- normal approximation of Polyanskiy, Poor and Verdu
  (IEEE Trans. IT 2010) for the complex AWGN channel with ``n`` complex channel
  uses, ``k`` information bits and SNR ``rho``:

  .. math::
      \\varepsilon \\approx Q\\left(\\frac{nC(\\rho) - k + \\tfrac12\\log_2 n}{\\sqrt{n V(\\rho)}}\\right),
      \\quad C = \\log_2(1+\\rho),\\quad V = \\frac{\\rho(\\rho+2)}{(\\rho+1)^2}\\log_2^2 e

* :func:`rayleigh_outage` -- quasi-static (block) Rayleigh fading outage
  probability :math:`P[\\log_2(1+\\rho|h|^2) < k/n] = 1-\\exp(-(2^{k/n}-1)/\\rho)`.
* :func:`ppv_rayleigh_error` -- the normal approximation averaged over the
  quasi-static Rayleigh gain (Yang, Durisi, Koch, Polyanskiy 2014 show it is
  close to the outage probability for moderate ``n``).
* :func:`ppv_snr_db` -- the SNR at which the normal approximation reaches a target
  error probability (to compare with a BLER curve's 10 % point).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc
from scipy.optimize import brentq

__all__ = ["awgn_capacity", "awgn_dispersion", "ppv_awgn_error", "ppv_max_rate",
           "rayleigh_outage", "ppv_rayleigh_error", "ppv_snr_db"]

_LOG2E = np.log2(np.e)


def _q(x):
    return 0.5 * erfc(np.asarray(x, float) / np.sqrt(2.0))


def _check(n, k):
    if np.any(np.asarray(n) < 1):
        raise ValueError(f"n = {n!r} is not supported; allowed: channel uses >= 1")
    if np.any(np.asarray(k) < 1):
        raise ValueError(f"k = {k!r} is not supported; allowed: information bits >= 1")


def awgn_capacity(snr_db):
    """Capacity of the complex AWGN channel [bit per channel use]."""
    rho = 10.0 ** (np.asarray(snr_db, float) / 10.0)
    return np.log2(1.0 + rho)


def awgn_dispersion(snr_db):
    """Channel dispersion of the complex AWGN channel [bit^2 per channel use]."""
    rho = 10.0 ** (np.asarray(snr_db, float) / 10.0)
    return rho * (rho + 2.0) / (rho + 1.0) ** 2 * _LOG2E ** 2


def ppv_awgn_error(n, k, snr_db):
    """Block error probability (normal approximation) for ``k`` bits in ``n``
    complex AWGN channel uses at ``snr_db``. Broadcasts over its arguments.

    Input
    -----
    n : int or array, complex channel uses (resource elements)
    k : int or array, information bits
    snr_db : float or array

    Output
    ------
    epsilon : np.ndarray of float64, same broadcast shape, in [0, 1]
    """
    _check(n, k)
    n = np.asarray(n, float)
    k = np.asarray(k, float)
    c, v = awgn_capacity(snr_db), awgn_dispersion(snr_db)
    return _q((n * c - k + 0.5 * np.log2(n)) / np.sqrt(n * v))


def ppv_max_rate(n, snr_db, epsilon):
    """Largest rate [bit per channel use] at block error ``epsilon`` (normal approximation):
    :math:`C - \\sqrt{V/n}\\,Q^{-1}(\\varepsilon) + \\log_2(n)/(2n)`."""
    from scipy.special import erfcinv
    n = np.asarray(n, float)
    qinv = np.sqrt(2.0) * erfcinv(2.0 * np.asarray(epsilon, float))
    return awgn_capacity(snr_db) - np.sqrt(awgn_dispersion(snr_db) / n) * qinv + 0.5 * np.log2(n) / n


def rayleigh_outage(n, k, snr_db):
    """Outage probability of quasi-static Rayleigh fading at rate ``k/n``."""
    _check(n, k)
    rho = 10.0 ** (np.asarray(snr_db, float) / 10.0)
    r = np.asarray(k, float) / np.asarray(n, float)
    return 1.0 - np.exp(-(2.0 ** r - 1.0) / rho)


def ppv_rayleigh_error(n, k, snr_db, num_points: int = 400):
    """Normal approximation averaged over quasi-static Rayleigh fading (|h|^2 ~ Exp(1)),
    by Gauss-Laguerre quadrature. Scalar ``n`` and ``k``; ``snr_db`` may be an array."""
    _check(n, k)
    x, w = np.polynomial.laguerre.laggauss(min(num_points, 150))
    snr = np.atleast_1d(np.asarray(snr_db, float))
    out = np.array([np.sum(w * ppv_awgn_error(n, k, s + 10 * np.log10(np.maximum(x, 1e-300))))
                    for s in snr])
    return out.reshape(np.shape(snr_db))


def ppv_snr_db(n, k, epsilon: float = 0.1, fading: str = "awgn") -> float:
    """SNR [dB] where the bound reaches ``epsilon`` (``fading``: "awgn", "rayleigh_outage",
    "rayleigh")."""
    f = {"awgn": ppv_awgn_error, "rayleigh_outage": rayleigh_outage,
         "rayleigh": ppv_rayleigh_error}[fading]
    return float(brentq(lambda s: float(f(n, k, s)) - epsilon, -30.0, 60.0))
