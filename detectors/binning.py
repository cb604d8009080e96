"""Missing-value masks and bin/category counting: the first step of every distribution statistic.

Missing values (None, NaN, ±inf, and in object arrays anything that is not a real number) are
left out of every count here and reported separately by the caller, so one bad value never
poisons a detector (docs/statistics.md, "Conventions").

Bins are half-open ``[e_i, e_{i+1})`` with open outer bins: with interior edges
``e_0 < … < e_{k-1}`` a value ``x`` falls in bin ``searchsorted(edges, x, side="right")``, so there
are ``k + 1`` bins.

>>> bin_counts(np.array([-1.0, 0.0, 0.5, 1.0, 7.0, np.nan]), np.array([0.0, 1.0])).tolist()
[1, 2, 2]
>>> category_counts(np.array(["a", "b", "zz", None], dtype=object), ["a", "b"]).tolist()
[1, 1, 1]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

__all__ = ["bin_counts", "category_counts", "finite_mask", "finite_values"]


def _is_finite_number(v: object) -> bool:
    if isinstance(v, numbers.Real):
        return math.isfinite(float(v))
    return False


def finite_mask(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the values that count: finite real numbers.

    Numeric arrays use ``np.isfinite``; integer and boolean arrays are all valid. In object
    arrays, None, strings and other non-numbers are False.
    """
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind in "fc":
        return np.isfinite(arr)
    if kind in "iub":
        return np.ones(arr.shape, dtype=bool)
    if kind == "O":
        flat = [_is_finite_number(v) for v in arr.ravel().tolist()]
        return np.fromiter(flat, dtype=bool, count=arr.size).reshape(arr.shape)
    return np.zeros(arr.shape, dtype=bool)


def finite_values(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The finite values as float64 and the number of values left out."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return arr.astype(np.float64, copy=False).ravel(), 0
    mask = finite_mask(arr)
    kept = arr[mask].astype(np.float64).ravel()
    return kept, int(arr.size - kept.size)


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (int64, ``len(edges) + 1`` entries) of the finite values."""
    e = np.asarray(edges, dtype=np.float64)
    kept, _ = finite_values(values)
    idx = np.searchsorted(e, kept, side="right")
    return np.bincount(idx, minlength=e.size + 1).astype(np.int64, copy=False)


def _category_key(v: object) -> str | None:
    """The string a value is compared by; None for a missing value."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, float | np.floating) and not math.isfinite(float(v)):
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def category_counts(values: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """Counts per reference category (int64, ``len(categories) + 1``, last = ``__other__``).

    Values are compared as strings (``str(v)`` for non-strings), so the caller must give values
    in the same representation as the categories of the profile. None and NaN are missing and
    skipped; anything not among ``categories`` counts as ``__other__``.
    """
    lookup = {c: i for i, c in enumerate(categories)}
    other = len(lookup)
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        # One dictionary lookup per distinct value instead of per value.
        uniq, inverse = np.unique(arr.ravel(), return_inverse=True)
        slots = np.fromiter((lookup.get(str(u), other) for u in uniq.tolist()),
                            dtype=np.int64, count=uniq.size)
        return np.bincount(slots[inverse], minlength=other + 1).astype(np.int64, copy=False)
    keys = [_category_key(v) for v in arr.ravel().tolist()]
    idx = np.fromiter((lookup.get(k, other) for k in keys if k is not None), dtype=np.int64)
    return np.bincount(idx, minlength=other + 1).astype(np.int64, copy=False)
