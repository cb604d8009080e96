"""The sidecar skips the probability row check only for a batch the check would keep whole:
``_in_unit_interval`` true implies no row has a finite score outside [0, 1], on matrices of
scores in and out of range, NaN, infinities, -0.0 and empty shapes."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from driftline.collectors.sidecar import _in_unit_interval


def _bad_rows(p: np.ndarray) -> np.ndarray:
    """The row check as the sidecar writes it (the definition)."""
    with np.errstate(invalid="ignore"):
        return (np.isfinite(p) & ((p < 0.0) | (p > 1.0))).any(axis=1)


scores = st.one_of(st.floats(0.0, 1.0), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([-0.0, 1.0 + 1e-16, 1.0000000000000002, -1e-300]))


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=6),
                  elements=scores))
@example(np.array([[0.5, 1.5]]))
@example(np.array([[np.nan, 0.5], [1.2, 0.1]]))
@example(np.array([[np.inf, 0.5], [-0.1, 0.1]]))
@example(np.empty((3, 0)))
def test_skipping_the_row_check_only_where_it_drops_nothing(p: np.ndarray) -> None:
    if _in_unit_interval(p):
        assert not _bad_rows(p).any()
    elif p.size and np.isfinite(p).all():
        assert _bad_rows(p).any()  # all finite and not in range: some row is dropped
