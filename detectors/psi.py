"""Population Stability Index over fixed reference bins.

``PSI = Σ (cur_i − ref_i) · ln(cur_i / ref_i)`` with natural log. Both proportion vectors are
floored at ``floor`` (default 1e-4) so an empty bin contributes a large but finite term; after
flooring they are used as-is (not renormalised), the convention of most PSI tables. Rule of
thumb: < 0.1 stable, 0.1–0.25 moderate, ≥ 0.25 major shift.

Small-sample bias. With no drift the window shares ``q`` (``n`` records) and the reference
shares ``p`` (``m`` records) both scatter around the population shares, and PSI is positive
whatever the direction: ``PSI ≈ Σ (q_i − p_i)² / p_i`` to second order, and
``Var(q_i − p_i) = π_i (1 − π_i) (1/n + 1/m)``, so ``E[PSI] ≈ (B − 1)(1/n + 1/m)`` for ``B``
bins with a positive reference share. A 20-record window over 10 bins has PSI ≈ 0.45 on average
without any drift; a 10,000-record one ≈ 0.001. :func:`psi_corrected` subtracts this expectation
(clipped at 0) so that a threshold means the same at every window size. Verified by simulation
(``tests/test_detectors_psi_bias.py``): within a few % once every bin expects ≥ 5 window records;
below that, empty bins (floored at 1e-4) push PSI above the formula, which is why windows smaller
than ``min_records`` get no decision at all.

>>> round(psi(np.array([0.5, 0.5]), np.array([60, 40])), 6)
0.040547
>>> round(psi_null_expectation(np.array([0.5, 0.5]), 100, 1000), 6)
0.011
"""

from __future__ import annotations

import numpy as np

__all__ = ["null_expectation_bins", "positive_bins", "proportions", "psi", "psi_corrected",
           "psi_many", "psi_many_positive", "psi_many_prepared", "psi_null_expectation",
           "psi_reference"]


def proportions(counts: np.ndarray) -> np.ndarray:
    """Counts (or weights) → shares summing to 1; all-NaN when the total is 0."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if not total > 0:
        return np.full(c.shape, np.nan)
    return c / total


def psi(reference: np.ndarray, current_counts: np.ndarray, floor: float = 1e-4) -> float:
    """PSI of ``current_counts`` against the reference shares of the same bins.

    ``reference`` holds reference proportions (normalised here, so counts work too). Returns NaN
    when ``current_counts`` sums to 0: no data is not "no drift".
    """
    ref = proportions(reference)
    cur = proportions(current_counts)
    if ref.shape != cur.shape:
        raise ValueError(f"reference has {ref.size} bins but current counts have {cur.size}")
    if np.isnan(cur).any() or np.isnan(ref).any():
        return float("nan")
    ref = np.maximum(ref, floor)
    cur = np.maximum(cur, floor)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi_many(reference: np.ndarray, current_counts: np.ndarray,
             floor: float = 1e-4) -> np.ndarray:
    """:func:`psi` of every row of two ``k × B`` arrays, the same floats row by row (the same
    expressions over each row; a row sum is the sum of that row alone): the features of a
    window with the same number of bins in a handful of numpy calls instead of a dozen each."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 2:
        raise ValueError(f"reference {ref.shape} and current counts {cur.shape} must be one "
                         "k × B shape")
    return psi_many_prepared(psi_reference(ref, floor), cur, floor)


def psi_reference(reference: np.ndarray, floor: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """The reference side of :func:`psi_many` (``k × B`` shares or counts): its floored
    shares and which rows are empty, made once by a caller whose reference does not change
    (the window close: a third of ``psi_many``'s cost)."""
    ref = _row_proportions(np.asarray(reference, dtype=np.float64))
    return np.maximum(ref, floor), np.isnan(ref).any(axis=1)


def psi_many_prepared(reference: tuple[np.ndarray, np.ndarray], current_counts: np.ndarray,
                      floor: float = 1e-4) -> np.ndarray:
    """:func:`psi_many` of the ``k × B`` counts against :func:`psi_reference`'s result (the
    same ``floor``): the same floats."""
    ref, ref_bad = reference
    cur = _row_proportions(np.asarray(current_counts, dtype=np.float64))
    bad = np.isnan(cur).any(axis=1) | ref_bad
    cur = np.maximum(cur, floor)
    out = np.sum((cur - ref) * np.log(cur / ref), axis=1)
    out[bad] = np.nan
    return out


def psi_many_positive(reference_floored: np.ndarray, current_counts: np.ndarray,
                      totals: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """:func:`psi_many_prepared` where every reference row is non-empty (its floored shares
    given) and every row of the finite ``current_counts`` sums to its entry of the column
    ``totals`` (``current_counts.sum(axis=1, keepdims=True)``), all above 0: no row is NaN,
    so none of the guards are needed, and the rest is the same expressions (the same floats).
    A window's numeric features always qualify (every bin count of ``w ≥ 1`` values)."""
    cur = np.maximum(current_counts / totals, floor)
    return np.sum((cur - reference_floored) * np.log(cur / reference_floored), axis=1)


def _row_proportions(c: np.ndarray) -> np.ndarray:
    total = c.sum(axis=1, keepdims=True)
    ok = total > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, c / np.where(ok, total, 1.0), np.nan)


def psi_null_expectation(reference: np.ndarray, n: int, m: int) -> float:
    """Expected PSI without drift for a window of ``n`` and a reference of ``m`` records:
    ``(B − 1)(1/n + 1/m)``, ``B`` = bins with a positive reference share (module docs).
    NaN for an empty window; ``m = 0`` (unknown reference size) counts the reference as exact."""
    return null_expectation_bins(positive_bins(reference), n, m)


def positive_bins(reference: np.ndarray) -> int:
    """``B`` of :func:`psi_null_expectation`: the bins with a positive reference share (a
    property of the reference, so the monitor keeps it instead of counting it every window)."""
    return int(np.count_nonzero(np.asarray(reference, dtype=np.float64) > 0))


def null_expectation_bins(bins: int, n: int, m: int) -> float:
    """:func:`psi_null_expectation` from ``B`` itself."""
    if n <= 0:
        return float("nan")
    return max(bins - 1, 0) * (1.0 / n + (1.0 / m if m > 0 else 0.0))


def psi_corrected(value: float, reference: np.ndarray, n: int, m: int, *,
                  bins: int | None = None) -> float:
    """PSI minus its no-drift expectation, clipped at 0 (NaN stays NaN). ``bins``: the
    reference's :func:`positive_bins` when the caller keeps it."""
    if value != value:
        return float("nan")
    b = positive_bins(reference) if bins is None else bins
    return max(0.0, value - null_expectation_bins(b, n, m))
