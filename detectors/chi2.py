"""Chi-squared two-sample (contingency) test of window counts against reference counts.

The reference is a finite sample, not the truth: testing window counts against the reference
*shares* as if they were exact (goodness of fit) ignores the reference's own sampling noise and
rejects far too often under no drift (P(p < 0.05) = 0.48 at 10k vs 10k records, 0.078 at 10k vs
100k). So the test is the 2 × K contingency test of homogeneity on the table
``[reference counts; window counts]``: statistic ``Σ (O − E)² / E`` with ``E_ij = R_i C_j / N``
and ``K − 1`` degrees of freedom, equal to ``scipy.stats.chi2_contingency(table,
correction=False)`` on the same (pooled) table.

Sparse categories are pooled, because the χ² approximation needs expected counts of about 5 or
more (Cochran's rule). The rule, applied once, in this order:

1. categories with no count in either sample are dropped (they carry no information);
2. every category whose smaller expected count ``min_i E_ij`` is below ``min_expected`` (5) is
   moved into one pooled category;
3. if the pooled category is itself still below ``min_expected`` and other categories remain,
   it is merged into the remaining category with the smallest total.

A window full of a category the reference never saw (``__other__``) therefore still produces a
large statistic: its counts survive pooling inside the pooled or merged category. With fewer
than two categories left, the samples cannot differ: statistic 0, p-value 1.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MIN_EXPECTED", "chi2_many", "chi2_sf", "chi2_sf_many", "chi2_two_sample",
           "pool_sparse"]

MIN_EXPECTED = 5.0
"""Cochran's rule of thumb: the smallest expected count the χ² approximation is trusted with."""


def pool_sparse(reference_counts: np.ndarray, current_counts: np.ndarray,
                min_expected: float = MIN_EXPECTED) -> np.ndarray:
    """The 2 × K' table the test uses, after the pooling rule of the module docs."""
    table = np.vstack([np.asarray(reference_counts, dtype=np.float64),
                       np.asarray(current_counts, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return table
    rows = table.sum(axis=1)
    expected_min = np.min(np.outer(rows, table.sum(axis=0)) / rows.sum(), axis=0)
    sparse = expected_min < min_expected
    if not sparse.any():
        return table
    kept = table[:, ~sparse]
    pooled = table[:, sparse].sum(axis=1, keepdims=True)
    pooled_min = float(np.min(rows * pooled.sum() / rows.sum()))
    if pooled_min < min_expected and kept.shape[1] > 0:
        smallest = int(np.argmin(kept.sum(axis=0)))
        kept = kept.copy()
        kept[:, smallest] += pooled[:, 0]
        return kept
    return np.hstack([kept, pooled])


def chi2_two_sample(reference_counts: np.ndarray, current_counts: np.ndarray,
                    min_expected: float = MIN_EXPECTED) -> tuple[float, float]:
    """(statistic, p-value) of the contingency test; (NaN, NaN) when either sample is empty."""
    ref = np.asarray(reference_counts, dtype=np.float64)
    obs = np.asarray(current_counts, dtype=np.float64)
    if ref.shape != obs.shape:
        raise ValueError(f"reference has {ref.size} slots but current counts have {obs.size}")
    if not (obs.sum() > 0 and ref.sum() > 0):
        return float("nan"), float("nan")
    table = pool_sparse(ref, obs, min_expected)
    k = table.shape[1]
    if k < 2:
        return 0.0, 1.0
    rows = table.sum(axis=1, keepdims=True)
    expected = rows * table.sum(axis=0, keepdims=True) / rows.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, chi2_sf(stat, k - 1)


def chi2_many(reference_counts: np.ndarray, current_counts: np.ndarray,
              min_expected: float = MIN_EXPECTED) -> list[tuple[float, float]]:
    """:func:`chi2_two_sample` of every row of two ``k × K`` arrays, the same floats row by row.

    The rows the pooling rule only drops empty categories from (every expected count of the
    others at least ``min_expected``: the usual window, whose ``__other__`` is often empty on
    both sides) are computed as one table per set of kept categories, each with
    the very expressions of :func:`chi2_two_sample` (a row's sums reduce that row alone), and
    their p-values in one :func:`chi2_sf_many`; the others one by one. A window's categorical
    features thus cost a few numpy calls in all, where each cost two dozen."""
    ref = np.asarray(reference_counts, dtype=np.float64)
    obs = np.asarray(current_counts, dtype=np.float64)
    if ref.shape != obs.shape or ref.ndim != 2:
        raise ValueError(f"reference {ref.shape} and current counts {obs.shape} must be one "
                         "k × K shape")
    k = ref.shape[0]
    out: list[tuple[float, float]] = [(math.nan, math.nan)] * k
    done = np.zeros(k, dtype=bool)
    if k == 0:
        return out
    table = np.stack([ref, obs], axis=1)                      # k × 2 × K
    seen = table.sum(axis=1) > 0                              # the categories pooling keeps
    groups: dict[bytes, list[int]] = {}
    for i, row in enumerate(seen):
        groups.setdefault(row.tobytes(), []).append(i)
    for idx in groups.values():
        keep = seen[idx[0]]
        t = table[idx][:, :, keep]                            # rule 1: empty categories out
        slots = t.shape[2]
        if slots < 2:
            continue
        rows = t.sum(axis=2, keepdims=True)                   # g × 2 × 1
        with np.errstate(invalid="ignore", divide="ignore"):
            e = rows * t.sum(axis=1, keepdims=True) / rows.sum(axis=1, keepdims=True)
        clean = (rows[:, :, 0] > 0).all(axis=1) & (e.min(axis=(1, 2)) >= min_expected)
        good = np.flatnonzero(clean)
        if not len(good):
            continue
        t, e = t[good], e[good]
        stats = np.sum(((t - e) ** 2 / e).reshape(len(good), 2 * slots), axis=1).tolist()
        for i, stat, p in zip(good.tolist(), stats, chi2_sf_many(stats, slots - 1),
                              strict=True):
            out[idx[i]] = (stat, p)
            done[idx[i]] = True
    for i in np.flatnonzero(~done).tolist():
        out[i] = chi2_two_sample(ref[i], obs[i], min_expected)
    return out


def chi2_sf_many(statistics: list[float], dof: int) -> list[float]:
    """:func:`chi2_sf` of many statistics with one ``dof``, the same floats: the sums of every
    statistic in one ``len × terms`` evaluation."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be ≥ 1, got {dof}")
    out = [math.nan] * len(statistics)
    odd, shape, lg = _series(dof)
    todo, ys, lead = [], [], []
    for j, x in enumerate(statistics):
        if math.isnan(x):
            continue
        y = x / 2.0
        if y <= 0.0:  # x ≤ 0, or so small that x/2 underflows: P = 1
            out[j] = 1.0
            continue
        todo.append(j)
        ys.append(y)
        lead.append(math.erfc(math.sqrt(y)) if odd else 0.0)
    if not todo:
        return out
    if len(shape) == 0:
        for j, first in zip(todo, lead, strict=True):
            out[j] = first
        return out
    y_col = np.array(ys)[:, None]
    log_y = np.array([math.log(y) for y in ys])[:, None]
    logs = -y_col + shape * log_y - lg
    for j, first, total in zip(todo, lead, np.sum(np.exp(logs), axis=1).tolist(), strict=True):
        out[j] = float(min(1.0, first + total))
    return out


def chi2_sf(statistic: float, dof: int) -> float:
    """``P(χ²_dof ≥ statistic)`` for an integer ``dof ≥ 1`` (= ``scipy.special.chdtrc``).

    Closed forms of the regularised upper incomplete gamma function at integer and half-integer
    shape, so no scipy import is needed: even ``dof = 2m``: ``e^(−y) Σ_{i<m} y^i / i!``; odd
    ``dof = 2m + 1``: ``erfc(√y) + e^(−y) Σ_{i=1..m} y^(i−½) / Γ(i + ½)``, with ``y = x/2``. Every
    term is positive (no cancellation) and taken in log space (no overflow at large ``x``), so
    the relative error against scipy stays ≤ 1e-12 (``tests/test_detectors_kstwo.py``)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be ≥ 1, got {dof}")
    if math.isnan(statistic):
        return math.nan
    y = statistic / 2.0
    if y <= 0.0:  # statistic ≤ 0, or so small that its half underflows: P = 1
        return 1.0
    odd, shape, lg = _series(dof)
    lead = math.erfc(math.sqrt(y)) if odd else 0.0
    if len(shape) == 0:
        return lead
    logs = -y + shape * math.log(y) - lg
    return float(min(1.0, lead + float(np.sum(np.exp(logs)))))


def _series(dof: int) -> tuple[bool, np.ndarray, np.ndarray]:
    """The closed form's terms for ``dof`` (see :func:`chi2_sf`): whether it is odd (an
    ``erfc`` lead term), the shapes ``i − ½`` (odd) or ``i`` (even) and ``lgamma(shape + 1)``."""
    half, odd = divmod(dof, 2)
    shape = (np.arange(1, half + 1, dtype=np.float64) - 0.5 if odd
             else np.arange(half, dtype=np.float64))
    return bool(odd), shape, _lgamma(shape + 1.0)


def _lgamma(a: np.ndarray) -> np.ndarray:
    return np.array([math.lgamma(v) for v in a.tolist()])
