"""Survival function of the two-sided one-sample Kolmogorov statistic, ``P(D_n ≥ x)``, without
``scipy.stats``: the KS test's asymptotic p-value (``kstwo.sf(D, round(n·w/(n+w)))``).

Why not scipy: for ``n·x² ≥ 2.2`` (every drifted feature) ``kstwo.sf`` evaluates the exact
one-sided Smirnov sum in a scalar loop, 20–50 ms per call at ``n`` ≈ 9 000 (10k windows against
a 100k reference), and importing ``scipy.stats`` costs 0.5–1 s of every ``driftline analyze``.
Here the same quantities come from a few numpy operations over all terms at once.

The method follows Simard & L'Ecuyer (2011) for ``n > 140`` (smaller ``n``: scipy itself,
imported lazily, which is exact and cheap there):

* ``n·x² ≥ 370``: 0 (below the smallest double);
* ``x ≥ 0.5`` or ``n·x² ≥ 2.2``: twice the one-sided Smirnov probability, the exact
  Birnbaum–Tingey sum ``x Σ_j C(n,j) (1−x−j/n)^(n−j) (x+j/n)^(j−1)``, summed in log space
  with the largest term factored out;
* otherwise ``1 −`` the Pelz–Good expansion ``K0 + K1/√n + K2/n + K3/n^1.5`` of the CDF, in its
  small-``z`` (Jacobi theta) form, ``z = x√n``;
* the Ruben–Gambino closed forms at the ends (``n·x ≤ 1``, ``n·x ≥ n − 1``).

Error against ``scipy.stats.kstwo.sf`` (checked by ``tests/test_detectors_kstwo.py`` on a grid
of ``n`` from 141 to 10⁶ and p-values from 1 down to 1e-300): relative error ≤ 1e-9 wherever
scipy takes the same branch. Only where scipy switches to the Durbin matrix
(``n·x^1.5 ≤ 1.4``, p-values above 0.9999) does this module keep Pelz–Good, with an absolute
error ≤ 1e-5 there. Neither can change a decision at any usual significance level.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["PELZ_GOOD_TERMS", "SMALL_N", "kolmogorov_sf", "kolmogorov_sf_many"]

SMALL_N = 140
"""At or below this ``n``, scipy's exact algorithms (imported lazily) give the value."""

_PI2 = math.pi ** 2
_SQRT2PI = math.sqrt(2 * math.pi)


@lru_cache(maxsize=64)
def _log_binomials(n: int) -> np.ndarray:
    """``log C(n, j)`` for ``j = 0..n`` (one cumulative sum, cached: a window size recurs)."""
    j = np.arange(1, n + 1, dtype=np.float64)
    out = np.empty(n + 1)
    out[0] = 0.0
    np.cumsum(np.log((n - j + 1) / j), out=out[1:])
    return out


def smirnov_sf(n: int, x: float) -> float:
    """``P(D_n^+ ≥ x)``, the exact one-sided Smirnov probability (Birnbaum–Tingey sum)."""
    if x <= 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    top = math.floor(n * (1.0 - x))
    j = np.arange(top + 1, dtype=np.float64)
    a = 1.0 - x - j / n
    keep = a > 0.0  # a term with (1 − x − j/n) = 0 and n − j > 0 is zero
    j, a = j[keep], a[keep]
    logs = _log_binomials(n)[: top + 1][keep] + (n - j) * np.log(a) + (j - 1) * np.log(x + j / n)
    big = float(np.max(logs))
    return float(min(1.0, x * math.exp(big) * float(np.sum(np.exp(logs - big)))))


PELZ_GOOD_TERMS = 8
"""Terms of the theta sums: ``ceil(16·z/π)`` for ``z = x√n < √2.2``, the only ``z`` the
Pelz–Good branch sees (terms past a row's own count are zeroed, so every row sums the same
number of entries and a value never depends on the other values evaluated with it)."""


def _pelz_good_cdf(n: int, x: float) -> float:
    """The Pelz–Good approximation of ``P(D_n ≤ x)`` (small-``z`` theta-function form)."""
    return float(_pelz_good_cdf_many(np.array([float(n)]), np.array([x]))[0])


def _theta_terms() -> tuple[np.ndarray, ...]:
    """What :func:`_pelz_good_cdf_many` needs of the term indices alone, each the very
    expression it evaluated per call (so the same floats, made once, read-only): ``k``,
    ``m = 2k − 1``, ``m²``, ``−π²·m²``, ``π²·m²/4``, ``(m²)²``, ``(m²)³``, ``k²``, ``−π²·k²``,
    ``π²·k²``."""
    idx = np.arange(1, PELZ_GOOD_TERMS + 1, dtype=np.float64)
    m = 2.0 * idx - 1.0  # odd integers
    m2 = m * m
    k2sq = idx * idx
    out = (idx, m, m2, -_PI2 * m2, _PI2 * m2 / 4, m2 ** 2, m2 ** 3, k2sq, -_PI2 * k2sq,
           _PI2 * k2sq)
    for a in out:
        a.flags.writeable = False
    return out


(_IDX, _M, _M2, _NEG_PI2_M2, _PI2_M2_4, _M2_2, _M2_3, _K2SQ, _NEG_PI2_K2SQ,
 _PI2_K2SQ) = _theta_terms()


def _pelz_good_cdf_many(n: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`_pelz_good_cdf` of many ``(n, x)`` at once (rows of one ``len × 8`` array).
    The parts of the index alone are :func:`_theta_terms`' (a window's 20 features: ≈ a
    sixth of the evaluation, made once)."""
    z = (np.sqrt(n) * x)[:, None]
    z2 = z * z
    kmax = np.ceil(16 * z / math.pi)
    if float(kmax.max(initial=0.0)) > PELZ_GOOD_TERMS:
        raise ValueError("Pelz–Good sums are sized for n·x² < 2.2")
    live = kmax >= _IDX
    m2 = _M2
    with np.errstate(under="ignore"):
        q = np.where(live, np.exp(_NEG_PI2_M2 / (8 * z2)), 0.0)
        z4, z6 = z2 * z2, z2 * z2 * z2
        k0 = np.sum(q, axis=1) * _SQRT2PI / z[:, 0]
        k1 = np.sum((_PI2_M2_4 - z2) * q, axis=1) * _SQRT2PI / (6 * z4[:, 0])
        c2 = (6 * z6 + 2 * z4 + (2 * z4 - 5 * z2) * _PI2 * m2 / 4
              + _PI2 ** 2 * (1 - 2 * z2) * _M2_2 / 16)
        c3 = (-30 * z6 - 90 * z4 * z4 + _PI2 * (135 * z4 - 96 * z6) * m2 / 4
              + _PI2 ** 2 * (212 * z4 - 60 * z2) * _M2_2 / 16
              + _PI2 ** 3 * (5 - 30 * z2) * _M2_3 / 64)
        zz2, zz4, zz6 = z2[:, 0], z4[:, 0], z6[:, 0]
        k2 = np.sum(c2 * q, axis=1) * _SQRT2PI / (72 * zz4 * zz2 * z[:, 0])
        k3 = np.sum(c3 * q, axis=1) * _SQRT2PI / (6480 * zz4 * zz6)
        k2sq = _K2SQ
        r = np.where(live, np.exp(_NEG_PI2_K2SQ / (2 * z2)), 0.0)
        k2 = k2 - _PI2 * _SQRT2PI / (36 * zz2 * z[:, 0]) * np.sum(k2sq * r, axis=1)
        k3 = k3 + _PI2 * _SQRT2PI / (216 * zz6) * np.sum((3 * z2 - _PI2_K2SQ) * k2sq * r,
                                                          axis=1)
    rn = np.sqrt(n)
    out = k0 + k1 / rn + k2 / n + k3 / (n * rn)
    # a tiny z: every theta term underflows, the CDF is 0
    return np.where(-_PI2 / 8 / (z2[:, 0]) < -708, 0.0, out)


def _branch(x: float, n: int) -> int:
    """0: Pelz–Good; 1: any other branch of :func:`kolmogorov_sf` (evaluated one by one)."""
    if not math.isfinite(x) or n <= SMALL_N or x >= 0.5:
        return 1
    t = n * x
    if t <= 1.0 or t >= n - 1 or t * x >= 2.2:
        return 1
    return 0


def kolmogorov_sf_many(x: list[float], n: list[int]) -> list[float]:
    """:func:`kolmogorov_sf` of many ``(x, n)``, the same floats; the Pelz–Good ones (every
    undrifted feature of a window) in one vectorised evaluation instead of one each."""
    out = [0.0] * len(x)
    batch = []
    for i, (xi, ni) in enumerate(zip(x, n, strict=True)):
        if ni >= 1 and _branch(xi, ni) == 0:
            batch.append(i)
        else:
            out[i] = kolmogorov_sf(xi, ni)
    if batch:
        cdf = _pelz_good_cdf_many(np.array([float(n[i]) for i in batch]),
                                  np.array([x[i] for i in batch]))
        for i, c in zip(batch, cdf.tolist(), strict=True):
            out[i] = min(1.0, max(0.0, 1.0 - c))
    return out


def kolmogorov_sf(x: float, n: int) -> float:
    """``P(D_n ≥ x)`` for the two-sided one-sample statistic (= ``scipy.stats.kstwo.sf``)."""
    if not math.isfinite(x) or n < 1:
        return math.nan
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    if n <= SMALL_N:
        from scipy import stats  # exact and cheap at this size; rare in windows of thousands

        return float(stats.kstwo.sf(x, n))
    t = n * x
    if t <= 1.0:  # Ruben–Gambino: P(D_n ≤ x) = n!/n^n (2t − 1)^n for 1/(2n) ≤ x ≤ 1/n
        if t <= 0.5:
            return 1.0
        log_cdf = math.lgamma(n + 1) - n * math.log(n) + n * math.log(2 * t - 1)
        return 1.0 - math.exp(log_cdf)
    if t >= n - 1:  # Ruben–Gambino at the top
        return 2.0 * (1.0 - x) ** n
    nx2 = t * x
    if nx2 >= 370.0:
        return 0.0
    if x >= 0.5 or nx2 >= 2.2:
        return min(1.0, 2.0 * smirnov_sf(n, x))
    return min(1.0, max(0.0, 1.0 - _pelz_good_cdf(n, x)))
