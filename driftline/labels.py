"""Canonical class labels, so that labels compare by value.

A reference target stored as ``1.0``/``0.0``, predictions sent as ``1``/``0`` or ``"1"`` and
booleans ``True``/``False`` all denote the same classes. Every class label that enters Driftline
goes through :func:`canonical_label` (or the vectorised :func:`canonical_labels`) first.

>>> [canonical_label(v) for v in (1.0, 1, "1", True, "1.0", " cat ", 2.5, None)]
['1', '1', '1', '1', '1', 'cat', '2.5', None]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def canonical_label(value: Any) -> str | None:
    """Return the canonical string of a class label, or None for a missing one."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if not math.isfinite(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    if not text:
        return None
    try:
        f = float(text)
    except ValueError:
        return text
    if not math.isfinite(f):
        return text
    return str(int(f)) if f.is_integer() else repr(f)


def canonical_labels(values: Iterable[Any] | np.ndarray) -> np.ndarray:
    """Vectorised :func:`canonical_label`: an object array of str (None where missing)."""
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "iu":
        small = _small_ints(arr) if arr.ndim == 1 and len(arr) >= TABLE_FROM else None
        if small is not None:
            return small
        return np.array([str(v) for v in arr.tolist()], dtype=object)
    if arr.dtype.kind == "b":
        return np.where(arr, "1", "0").astype(object)
    if arr.dtype.kind == "f":
        if arr.ndim == 1 and len(arr) >= TABLE_FROM:
            # class numbers (the usual prediction column). A NaN makes min and max NaN and
            # fails the bounds, as an infinity does; int64 is exact on integers below 2**63
            lo, hi = float(arr.min()), float(arr.max())
            if (lo >= -2.0**63 and hi < 2.0**63 and hi - lo < len(arr)
                    and (np.floor(arr) == arr).all()):
                small = _small_ints(arr.astype(np.int64))
                if small is not None:
                    return small
        finite = np.isfinite(arr)
        integral = finite & (np.floor(arr) == arr)
        out = np.empty(arr.shape, dtype=object)
        out[~finite] = None
        out[integral] = [str(int(v)) for v in arr[integral].tolist()]
        rest = finite & ~integral
        out[rest] = [repr(float(v)) for v in arr[rest].tolist()]
        return out
    return np.array([canonical_label(v) for v in arr.tolist()], dtype=object)


#: From this many values on, :func:`canonical_labels` tries :func:`_small_ints`.
TABLE_FROM = 32


def _small_ints(arr: np.ndarray) -> np.ndarray | None:
    """The decimal strings of the 1-D integer ``arr`` from a table of the strings of
    ``min..max``, when that span is shorter than ``arr``; else None (one ``str`` per value).

    Why: a classifier's predictions are a handful of class numbers, and one ``str(int(v))``
    per record was most of the prediction column's cost (≈ 0.2 µs a value here). The
    table's strings are ``str`` of the same integers, so the column is the same."""
    lo, hi = int(arr.min()), int(arr.max())
    if hi - lo >= len(arr):
        return None
    table = np.array([str(v) for v in range(lo, hi + 1)], dtype=object)
    wide = arr.astype(np.uint64 if arr.dtype.kind == "u" else np.int64)  # no int8 overflow
    return table[wide - lo]
