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
        return np.array([str(v) for v in arr.tolist()], dtype=object)
    if arr.dtype.kind == "b":
        return np.where(arr, "1", "0").astype(object)
    if arr.dtype.kind == "f":
        out = np.empty(arr.shape, dtype=object)
        finite = np.isfinite(arr)
        integral = finite & (np.floor(arr) == arr)
        out[~finite] = None
        out[integral] = [str(int(v)) for v in arr[integral].tolist()]
        rest = finite & ~integral
        out[rest] = [repr(float(v)) for v in arr[rest].tolist()]
        return out
    return np.array([canonical_label(v) for v in arr.tolist()], dtype=object)
