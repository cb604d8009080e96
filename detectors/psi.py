"""Population Stability Index over fixed reference bins.

``PSI = Σ (cur_i − ref_i) · ln(cur_i / ref_i)`` with natural log. Both proportion vectors are
floored at ``floor`` (default 1e-4) so an empty bin contributes a large but finite term; after
flooring they are used as-is (not renormalised), the convention of most PSI tables. Rule of
thumb: < 0.1 stable, 0.1–0.25 moderate, ≥ 0.25 major shift.

>>> round(psi(np.array([0.5, 0.5]), np.array([60, 40])), 6)
0.040547
"""

from __future__ import annotations

import numpy as np

__all__ = ["proportions", "psi"]


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
