"""``canonical_labels`` of a column of class numbers (the table of ``min..max``'s strings)
gives what one :func:`canonical_label` per value gives, and what the vectorised code before
the table gave, on integer and float columns around the table's bounds: NaN, infinities,
-0.0, non-integral values, spans wider than the column, ±2**63, uint64."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from driftline.labels import TABLE_FROM, canonical_label, canonical_labels


def _old(arr: np.ndarray) -> np.ndarray:
    """The vectorised reading before the table (the int and float branches)."""
    if arr.dtype.kind in "iu":
        return np.array([str(v) for v in arr.tolist()], dtype=object)
    out = np.empty(arr.shape, dtype=object)
    finite = np.isfinite(arr)
    integral = finite & (np.floor(arr) == arr)
    out[~finite] = None
    out[integral] = [str(int(v)) for v in arr[integral].tolist()]
    rest = finite & ~integral
    out[rest] = [repr(float(v)) for v in arr[rest].tolist()]
    return out


def _check(arr: np.ndarray) -> None:
    got = canonical_labels(arr)
    assert got.dtype == object and got.shape == arr.shape
    assert got.tolist() == _old(arr).tolist()
    assert got.tolist() == [canonical_label(v) for v in arr.tolist()]


edge_floats = st.sampled_from([0.0, -0.0, 1.0, 2.0, -3.0, 0.5, float("nan"), float("inf"),
                               -float("inf"), 2.0**63, -2.0**63, 2.0**63 - 1024, 1e300])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, 3).map(float), edge_floats,
                          st.floats(allow_nan=True, allow_infinity=True)),
                min_size=TABLE_FROM - 2, max_size=TABLE_FROM * 3),
       st.integers(0, 4))
@example([float(i % 2) for i in range(TABLE_FROM)], 0)
@example([-0.0] * TABLE_FROM, 0)
@example([float(i) for i in range(TABLE_FROM)], 0)  # span == length - 1: the table
@example([float(i) for i in range(TABLE_FROM + 1)], 1)
@example([2.0**63 - 1024] * TABLE_FROM, 0)
@example([-2.0**63] * TABLE_FROM, 0)
@example([2.0**63] * TABLE_FROM, 0)  # above int64: no table
@example([0.0, 1.0] * (TABLE_FROM // 2) + [0.5], 0)  # a narrow span, one value not integral
@example([0.0, 1.0] * (TABLE_FROM // 2) + [float("nan")], 0)
@example([0.0, 1.0] * (TABLE_FROM // 2) + [float("inf")], 0)
def test_float_columns(values: list[float], classes: int) -> None:
    _check(np.array(values, dtype=np.float64))
    # mostly class numbers, the usual prediction column
    _check(np.array([float(i % (classes + 1)) for i in range(len(values))]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, 3), st.integers(-2**63, 2**63 - 1)),
                min_size=TABLE_FROM - 2, max_size=TABLE_FROM * 3),
       st.sampled_from([np.int64, np.int32, np.uint8]))
@example([0, 1] * TABLE_FROM, np.int64)
@example([2**63 - 1, 2**63 - 2] * TABLE_FROM, np.int64)
@example([-2**63, -2**63 + 1] * TABLE_FROM, np.int64)
def test_integer_columns(values: list[int], dtype: Any) -> None:
    info = np.iinfo(dtype)
    _check(np.array([min(max(v, info.min), info.max) for v in values], dtype=dtype))


def test_narrow_integers_over_their_whole_range() -> None:
    """min..max spans the dtype: the offsets from min overflow int8/int16 arithmetic."""
    _check(np.arange(-128, 128, dtype=np.int8).repeat(2))
    _check(np.arange(-100, 101, dtype=np.int8).repeat(2))  # offsets above 127
    _check(np.concatenate([np.arange(-2**15, 2**15 - 1, 7, dtype=np.int16),
                           np.array([2**15 - 1, -2**15] * 5000, dtype=np.int16)]))
    _check(np.arange(0, 256, dtype=np.uint8).repeat(2))


def test_uint64_above_int64() -> None:
    _check(np.array([2**64 - 1, 2**64 - 2] * TABLE_FROM, dtype=np.uint64))
    _check(np.array([0, 2**64 - 1] * TABLE_FROM, dtype=np.uint64))
