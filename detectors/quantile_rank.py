"""Reference quantile ranks: the fleet-wide drift signal of DESIGN.md §5.

The rank of a value is the empirical reference CDF at that value,
``#{reference ≤ x} / n_ref`` in [0, 1]. Without drift (continuous feature) ranks are uniform, so
each bucket of a fixed 0.1 … 1.0 histogram holds ~10 %; since the buckets are the same on every
replica, Prometheus can add them up and compute PSI and an approximate KS in PromQL.

>>> quantile_rank(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 2.0, 2.5, 9.0])).tolist()
[0.0, 0.5, 0.5, 1.0]
>>> rank_histogram(np.array([0.0, 0.1, 0.15, 1.0]), [0.1, 0.5]).tolist()
[2, 1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from driftline.detectors.binning import bin_counts, finite_mask

__all__ = ["quantile_rank", "quantile_rank_histogram", "rank_edges", "rank_histogram"]


def quantile_rank(reference_sorted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Empirical reference CDF at each value (float64, same length); NaN where the value is
    missing, so positions still line up. All NaN when the reference is empty."""
    ref = np.asarray(reference_sorted, dtype=np.float64)
    arr = np.asarray(values)
    mask = finite_mask(arr)
    out = np.full(arr.shape, np.nan)
    if ref.size == 0:
        return out
    out[mask] = np.searchsorted(ref, arr[mask].astype(np.float64), side="right") / ref.size
    return out


def rank_histogram(ranks: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """Per-bucket counts (int64, ``len(bounds) + 1``) with Prometheus ``le`` semantics.

    Bucket ``i`` holds ``(bounds[i-1], bounds[i]]`` (bucket 0 everything ≤ ``bounds[0]``); the
    last is the overflow (+Inf) bucket. NaN ranks are skipped. These are per-bucket counts, not
    cumulative: the exporter accumulates them.
    """
    b = np.asarray(bounds, dtype=np.float64)
    r = np.asarray(ranks, dtype=np.float64)
    r = r[~np.isnan(r)]
    idx = np.searchsorted(b, r, side="left")
    return np.bincount(idx, minlength=b.size + 1).astype(np.int64, copy=False)


def rank_edges(reference_sorted: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """Value thresholds equivalent to rank bounds: ``quantile_rank(x) ≤ bounds[i]`` ⟺
    ``x < edges[i]``. Compute once per reference; then ranks are binned like PSI bins.

    With ``c = #{ref ≤ x}``, the rank ``c/n ≤ b`` holds exactly for ``c ≤ k`` where ``k`` is the
    largest count whose float ``k/n`` is ≤ ``b`` (found with the same float division that
    :func:`quantile_rank` uses, so edge cases agree bit for bit), and ``c ≤ k`` ⟺ ``x < ref[k]``.
    """
    ref = np.asarray(reference_sorted, dtype=np.float64)
    n = ref.size
    edges = np.full(len(bounds), np.inf)
    if n == 0:
        return edges
    for i, b in enumerate(bounds):
        k = min(max(int(np.floor(b * n)), -1), n)
        while k + 1 <= n and (k + 1) / n <= b:
            k += 1
        while k >= 0 and k / n > b:
            k -= 1
        edges[i] = -np.inf if k < 0 else (np.inf if k >= n else ref[k])
    return edges


def quantile_rank_histogram(reference_sorted: np.ndarray, values: np.ndarray,
                            bounds: Sequence[float], edges: np.ndarray | None = None) -> np.ndarray:
    """``rank_histogram(quantile_rank(ref, values), bounds)`` without computing each rank.

    Pass ``edges=rank_edges(ref, bounds)`` computed once to make this as cheap as PSI binning
    (a search among ~10 thresholds instead of among all reference values).
    """
    e = rank_edges(reference_sorted, bounds) if edges is None else edges
    if np.asarray(reference_sorted).size == 0:
        return np.zeros(len(bounds) + 1, dtype=np.int64)
    return bin_counts(values, e)
