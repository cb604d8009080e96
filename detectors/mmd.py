"""Two-sample MMD test with a Gaussian RBF kernel and a permutation p-value (pure numpy).

This is the test Alibi Detect's ``MMDDrift`` and Evidently's embedding drift run: the squared
maximum mean discrepancy between a reference sample ``X`` (``m`` vectors) and a window sample
``Y`` (``n`` vectors), with the unbiased estimator

    MMD² = Σ_{i≠j} k(x_i, x_j) / (m(m-1)) + Σ_{i≠j} k(y_i, y_j) / (n(n-1)) - 2 Σ k(x_i, y_j) / (mn)

and ``k(a, b) = exp(-||a - b||² / (2σ²))``. The bandwidth follows Alibi Detect's median
heuristic, ``σ² = median(||x_i - x_j||², i ≠ j) / 2``, but is taken once from the reference
sample (so every window is tested with the same kernel) rather than from each pooled sample.

The p-value is ``(1 + #{permuted MMD² ≥ observed}) / (1 + permutations)`` over random
relabellings of the pooled sample: a valid level-α test for any number of permutations (Alibi
Detect reports the share without the +1). All permutations are evaluated at once: with ``A`` the
``N × P`` membership matrix of the permuted reference groups, ``Aᵀ K A`` gives every within-group
kernel sum in one matrix product, so the cost is ``O(N² d + N² P)`` for ``N = m + n``.

>>> rng = np.random.default_rng(0)
>>> x, y = rng.normal(size=(200, 8)), rng.normal(0.5, 1.0, size=(100, 8))
>>> sigma = median_bandwidth(x)
>>> res = mmd_test(x, y, sigma, permutations=50, seed=1)
>>> res.pvalue < 0.05, round(res.mmd2, 3) == round(mmd2(x, y, sigma), 3)
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, ``(len(a), len(b))``, clipped at 0 (rounding)."""
    aa = np.einsum("ij,ij->i", a, a)
    bb = np.einsum("ij,ij->i", b, b)
    d = aa[:, None] + bb[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0, out=d)


def median_bandwidth(x: np.ndarray) -> float:
    """``σ = sqrt(median_{i≠j} ||x_i - x_j||² / 2)``; 1.0 when every vector is equal."""
    if len(x) < 2:
        return 1.0
    d = sq_distances(x, x)
    iu = np.triu_indices(len(x), k=1)
    med = float(np.median(d[iu]))
    return math.sqrt(med / 2.0) if med > 0 else 1.0


def rbf(d2: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian kernel values from squared distances (in place)."""
    d2 *= -1.0 / (2.0 * sigma * sigma)
    return np.exp(d2, out=d2)


def mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """The unbiased MMD² estimate of ``x`` (m ≥ 2) against ``y`` (n ≥ 2)."""
    m, n = len(x), len(y)
    kxx = rbf(sq_distances(x, x), sigma)
    kyy = rbf(sq_distances(y, y), sigma)
    kxy = rbf(sq_distances(x, y), sigma)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2.0 * kxy.mean())


@dataclass(frozen=True)
class MMDResult:
    mmd2: float
    pvalue: float
    m: int
    n: int
    permutations: int


def pooled_kernel(kxx: np.ndarray, x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """The ``(m + n)²`` kernel matrix of ``x`` then ``y`` with a zero diagonal; ``kxx`` is the
    reference block (computed once per reference, diagonal already zero)."""
    m, n = len(x), len(y)
    k = np.empty((m + n, m + n))
    k[:m, :m] = kxx
    kxy = rbf(sq_distances(x, y), sigma)
    k[:m, m:] = kxy
    k[m:, :m] = kxy.T
    k[m:, m:] = rbf(sq_distances(y, y), sigma)
    np.fill_diagonal(k, 0.0)
    return k


def reference_kernel(x: np.ndarray, sigma: float) -> np.ndarray:
    k = rbf(sq_distances(x, x), sigma)
    np.fill_diagonal(k, 0.0)
    return k


def _mmd2_of_groups(k: np.ndarray, a: np.ndarray, m: int) -> np.ndarray:
    """MMD² of every column of the 0/1 membership matrix ``a`` (``m`` ones per column) on the
    zero-diagonal pooled kernel ``k``."""
    total_n = k.shape[0]
    n = total_n - m
    row = k.sum(axis=1)
    total = row.sum()
    ka = k @ a
    xx = np.einsum("ij,ij->j", a, ka)
    x_all = a.T @ row
    xy = x_all - xx
    yy = total - 2.0 * x_all + xx
    out: np.ndarray = xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2.0 * xy / (m * n)
    return out


def mmd_test(x: np.ndarray, y: np.ndarray, sigma: float, *, permutations: int = 100,
             seed: int = 0, kxx: np.ndarray | None = None) -> MMDResult:
    """MMD² of ``x`` (reference) against ``y`` with its permutation p-value.

    ``kxx`` is the reference kernel block from :func:`reference_kernel`, reused across windows.
    Needs at least two vectors on each side; otherwise MMD² and the p-value are NaN."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return MMDResult(math.nan, math.nan, m, n, 0)
    k = pooled_kernel(reference_kernel(x, sigma) if kxx is None else kxx, x, y, sigma)
    observed = np.zeros((m + n, 1))
    observed[:m] = 1.0
    stat = float(_mmd2_of_groups(k, observed, m)[0])
    if permutations <= 0:
        return MMDResult(stat, math.nan, m, n, 0)
    rng = np.random.default_rng(seed)
    order = rng.permuted(np.tile(np.arange(m + n), (permutations, 1)), axis=1)
    a = np.zeros((m + n, permutations))
    a[order[:, :m].T, np.arange(permutations)[None, :]] = 1.0
    perm = _mmd2_of_groups(k, a, m)
    p = (1.0 + float(np.count_nonzero(perm >= stat - 1e-12 * abs(stat)))) / (1.0 + permutations)
    return MMDResult(stat, p, m, n, permutations)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - cos(a, b)`` of two vectors (NaN when either is zero)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0 or not (math.isfinite(na) and math.isfinite(nb)):
        return math.nan
    return float(1.0 - np.dot(a, b) / (na * nb))


__all__ = ["MMDResult", "cosine_distance", "median_bandwidth", "mmd2", "mmd_test",
           "pooled_kernel", "rbf", "reference_kernel", "sq_distances"]
