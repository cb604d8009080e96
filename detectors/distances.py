"""Distances between the reference and the window: Jensen–Shannon (binned) and Wasserstein-1.

* Jensen–Shannon distance, base 2, in [0, 1]: ``sqrt((KL(p‖m) + KL(q‖m)) / 2)`` with
  ``m = (p + q) / 2``, on the same bins as PSI. No flooring is needed (``m > 0`` wherever p or q
  is), so it equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
* Wasserstein-1 between the reference sample and the window, ``∫ |F_ref − F_cur| dx``, divided
  by the reference standard deviation so it is unit-free and comparable across features.
"""

from __future__ import annotations

import math

import numpy as np

from driftline.detectors.binning import finite_values

__all__ = ["jensen_shannon", "jensen_shannon_many", "jensen_shannon_many_positive",
           "jensen_shannon_many_prepared", "js_reference", "wasserstein", "wasserstein_normalised"]


def jensen_shannon(reference: np.ndarray, current_counts: np.ndarray) -> float:
    """JS distance (base 2) between reference shares and window counts; NaN with no counts."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current_counts, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"reference has {p.size} bins but current counts have {q.size}")
    ps, qs = p.sum(), q.sum()
    if not (ps > 0 and qs > 0):
        return float("nan")
    p = p / ps
    q = q / qs
    m = (p + q) / 2.0
    js = (_rel_entr_sum(p, m) + _rel_entr_sum(q, m)) / 2.0
    return float(math.sqrt(max(float(js), 0.0) / math.log(2.0)))


def _rel_entr_sum(x: np.ndarray, m: np.ndarray) -> float:
    """``Σ x log(x / m)`` over ``x > 0`` (``scipy.special.rel_entr``'s terms; ``m ≥ x / 2 > 0``
    there), in numpy: importing scipy.special costs every analysis ~0.2 s. A term with
    ``x = 0`` is a 0 in the sum (not dropped), so :func:`jensen_shannon_many`'s rows sum the
    very same entries."""
    return float(np.sum(_rel_entr_terms(x, m), axis=-1))


def _rel_entr_terms(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    pos = x > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pos, x * np.log(np.where(pos, x, 1.0) / np.where(pos, m, 1.0)), 0.0)


def jensen_shannon_many(reference: np.ndarray, current_counts: np.ndarray) -> np.ndarray:
    """:func:`jensen_shannon` of every row of two ``k × B`` arrays, the same floats row by row."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current_counts, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"reference {p.shape} and current counts {q.shape} must be one "
                         "k × B shape")
    return jensen_shannon_many_prepared(js_reference(p), q)


def js_reference(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference side of :func:`jensen_shannon_many` (``k × B``): its shares (a row
    summing to 0 left as it is) and which rows sum above 0, made once by a caller whose
    reference does not change."""
    p = np.asarray(reference, dtype=np.float64)
    ps = p.sum(axis=1, keepdims=True)
    positive = ps > 0
    return p / np.where(positive, ps, 1.0), positive


def jensen_shannon_many_positive(reference: np.ndarray, current_counts: np.ndarray,
                                 totals: np.ndarray) -> np.ndarray:
    """:func:`jensen_shannon_many_prepared` where every reference row (``reference``: its
    shares, :func:`js_reference`'s first) and every row of ``current_counts`` (summing to
    the column ``totals``) sums above 0: no row is NaN, so the guards go and the rest is the
    same expressions (the same floats)."""
    q = current_counts / totals
    m = (reference + q) / 2.0
    js = (np.sum(_rel_entr_terms(reference, m), axis=1)
          + np.sum(_rel_entr_terms(q, m), axis=1)) / 2.0
    return np.sqrt(np.maximum(js, 0.0) / math.log(2.0))


def jensen_shannon_many_prepared(reference: tuple[np.ndarray, np.ndarray],
                                 current_counts: np.ndarray) -> np.ndarray:
    """:func:`jensen_shannon_many` of the ``k × B`` counts against :func:`js_reference`'s
    result: the same floats (a row whose reference is normalised here but not there, its
    window summing to 0, is NaN either way)."""
    p, positive = reference
    q = np.asarray(current_counts, dtype=np.float64)
    qs = q.sum(axis=1, keepdims=True)
    ok = positive & (qs > 0)
    q = q / np.where(ok, qs, 1.0)
    m = (p + q) / 2.0
    js = (np.sum(_rel_entr_terms(p, m), axis=1) + np.sum(_rel_entr_terms(q, m), axis=1)) / 2.0
    out = np.sqrt(np.maximum(js, 0.0) / math.log(2.0))
    out[~ok[:, 0]] = np.nan
    return out


def wasserstein(reference_sorted: np.ndarray, values: np.ndarray) -> float:
    """Wasserstein-1 distance between a sorted reference and a window (finite values only)."""
    ref = np.asarray(reference_sorted, dtype=np.float64)
    cur, _ = finite_values(values)
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    cur = np.sort(cur)
    # Both parts are sorted runs, which the stable sort (timsort) merges in linear time.
    both = np.sort(np.concatenate([ref, cur]), kind="stable")
    deltas = np.diff(both)
    f_ref = np.searchsorted(ref, both[:-1], side="right") / ref.size
    f_cur = np.searchsorted(cur, both[:-1], side="right") / cur.size
    return float(np.sum(np.abs(f_ref - f_cur) * deltas))


def wasserstein_normalised(reference_sorted: np.ndarray, values: np.ndarray,
                           reference_std: float) -> float:
    """Wasserstein-1 divided by ``reference_std``; unnormalised when the std is 0 or unknown."""
    w = wasserstein(reference_sorted, values)
    if reference_std > 0 and math.isfinite(reference_std):
        return w / reference_std
    return w
