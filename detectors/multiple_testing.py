"""Benjamini–Hochberg adjustment of p-values across a model's features in one window.

Adjusted ``p_(i) = min_{j ≥ i} p_(j) · m / j`` over the sorted p-values, capped at 1, where
``m`` counts only the defined (non-NaN) p-values: a feature without data neither gets a p-value
nor dilutes the others. Equals ``scipy.stats.false_discovery_control(p, method="bh")`` on the
non-NaN entries.
"""

from __future__ import annotations

import numpy as np

__all__ = ["benjamini_hochberg"]


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values, same shape; NaN stays NaN."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    vals = p[ok]
    m = vals.size
    if m == 0:
        return out
    order = np.argsort(vals, kind="stable")
    ranked = vals[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.clip(ranked, 0.0, 1.0)
    out[ok] = adjusted
    return out
