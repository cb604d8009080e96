"""Chi-squared goodness of fit of window counts against reference proportions.

Expected counts are ``n · p_i`` where ``p`` are the reference shares floored at ``floor`` and
renormalised to sum 1 (so a category absent from the reference, e.g. ``__other__``, still has a
small positive expectation and a window full of new categories gives a huge statistic instead
of a division by zero). Statistic and p-value equal ``scipy.stats.chisquare(counts, expected)``
with ``k − 1`` degrees of freedom.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["chi2_against_reference"]


def chi2_against_reference(reference: np.ndarray, current_counts: np.ndarray,
                           floor: float = 1e-4) -> tuple[float, float]:
    """(statistic, p-value); (NaN, NaN) when there are no counts or fewer than two slots."""
    ref = np.asarray(reference, dtype=np.float64)
    obs = np.asarray(current_counts, dtype=np.float64)
    if ref.shape != obs.shape:
        raise ValueError(f"reference has {ref.size} slots but current counts have {obs.size}")
    n = obs.sum()
    if not n > 0 or obs.size < 2 or not ref.sum() > 0:
        return float("nan"), float("nan")
    p = np.maximum(ref / ref.sum(), floor)
    expected = n * (p / p.sum())
    stat = float(np.sum((obs - expected) ** 2 / expected))
    pvalue = float(special.chdtrc(obs.size - 1, stat))
    return stat, pvalue
