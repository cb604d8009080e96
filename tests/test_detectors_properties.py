"""Hypothesis properties of the statistics and the detectors' state."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import driftline.detectors as dd
from driftline.detectors.ks import ks_2samp_sorted, ks_statistic_sorted, quantile_grid
from driftline.detectors.psi import psi
from driftline.detectors.quantile_rank import quantile_rank
from driftline.detectors.windowed import KSDetector, PSIDetector, detector_from_state

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
maybe_missing = st.one_of(finite, st.just(math.nan), st.just(math.inf), st.just(-math.inf))
samples = hnp.arrays(np.float64, st.integers(1, 60), elements=finite)
dirty = hnp.arrays(np.float64, st.integers(0, 60), elements=maybe_missing)
counts = st.lists(st.integers(0, 1000), min_size=2, max_size=12)


@given(counts)
def test_psi_of_identical_distributions_is_zero(c: list[int]) -> None:
    arr = np.array(c)
    if arr.sum() == 0:
        assert math.isnan(psi(arr.astype(float), arr))
    else:
        assert abs(psi(arr / arr.sum(), arr)) <= 1e-12
        assert abs(psi(arr.astype(float), 3 * arr)) <= 1e-12


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 500)), min_size=2, max_size=12))
def test_psi_is_non_negative(pairs: list[tuple[float, int]]) -> None:
    ref = np.array([p for p, _ in pairs])
    cur = np.array([c for _, c in pairs])
    if ref.sum() == 0 or cur.sum() == 0:
        return
    assert psi(ref, cur) >= -1e-12


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@given(samples, samples)
def test_ks_statistic_in_unit_interval_and_equals_scipy(a: np.ndarray, b: np.ndarray) -> None:
    d, p = ks_2samp_sorted(np.sort(a), b)
    assert 0.0 <= d <= 1.0 and 0.0 <= p <= 1.0
    assert d == float(stats.ks_2samp(a, b).statistic)


@settings(max_examples=60)
@given(hnp.arrays(np.float64, st.integers(50, 400), elements=st.floats(-100, 100)),
       samples, st.integers(2, 40))
def test_ks_quantile_grid_error_bound(ref: np.ndarray, window: np.ndarray, m: int) -> None:
    grid, exact = quantile_grid(ref, m)
    full = np.sort(ref)
    cur = np.sort(window)
    d_full = ks_statistic_sorted(full, cur)
    d_grid = ks_statistic_sorted(grid, cur)
    bound = 0.0 if exact else 1.0 / (2 * m)
    assert abs(d_grid - d_full) <= bound + 1e-12


@given(hnp.arrays(np.float64, st.integers(1, 50), elements=finite), dirty)
def test_quantile_rank_in_unit_interval_and_monotone(ref: np.ndarray, x: np.ndarray) -> None:
    ref = np.sort(ref)
    r = quantile_rank(ref, x)
    ok = np.isfinite(x)
    assert np.isnan(r[~ok]).all()
    assert ((r[ok] >= 0) & (r[ok] <= 1)).all()
    # Ties with the reference are spread over the jump [F(x-), F(x)] by occurrence index, so equal
    # values may get different ranks: monotone across distinct values, each inside its jump.
    xs, rs = x[ok], r[ok]
    assert not ((xs[:, None] < xs[None, :]) & (rs[:, None] > rs[None, :])).any()
    lo = np.searchsorted(ref, xs, side="left") / ref.size
    hi = np.searchsorted(ref, xs, side="right") / ref.size
    assert ((rs >= lo) & (rs <= hi)).all()


def _numeric_detectors() -> list[dd.Detector]:
    ref = np.linspace(-3, 3, 61)
    edges = np.array([-1.0, 0.0, 1.0])
    return [PSIDetector(edges, [0.2, 0.3, 0.3, 0.2]), dd.JensenShannonDetector(edges, [0.25] * 4),
            KSDetector(ref), dd.WassersteinDetector(ref, float(ref.std()))]


@settings(max_examples=40)
@given(dirty)
def test_batch_update_equals_one_by_one(x: np.ndarray) -> None:
    for batch, single in zip(_numeric_detectors(), _numeric_detectors(), strict=True):
        batch.update(x)
        for v in x:
            single.update(np.array([v]))
        a, b = batch.result(), single.result()
        assert (a.n, a.n_invalid, a.drifted) == (b.n, b.n_invalid, b.drifted)
        assert a.statistic == b.statistic or (math.isnan(a.statistic) and math.isnan(b.statistic))


@settings(max_examples=40)
@given(dirty)
def test_state_round_trip(x: np.ndarray) -> None:
    for det in _numeric_detectors():
        det.update(x)
        back = detector_from_state(det.to_state())  # type: ignore[attr-defined]
        assert repr(back.result()) == repr(det.result())  # repr: NaN == NaN


@settings(max_examples=40)
@given(dirty, dirty)
def test_merge_equals_update_with_both(x: np.ndarray, y: np.ndarray) -> None:
    for a, b, both in zip(_numeric_detectors(), _numeric_detectors(), _numeric_detectors(), strict=True):
        a.update(x)
        b.update(y)
        both.update(np.concatenate([x, y]))
        assert repr(a.merge(b).result()) == repr(both.result())  # type: ignore[attr-defined]


@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "zz"]), st.just(math.nan)), max_size=40))
def test_category_counts_partition(values: list[object]) -> None:
    arr = np.array(values, dtype=object)
    c = dd.category_counts(arr, ["a", "b"])
    missing = sum(1 for v in values if v is None or (isinstance(v, float) and math.isnan(v)))
    assert c.sum() == len(values) - missing
    assert c[0] == values.count("a") and c[2] == values.count("zz")


@given(hnp.arrays(np.float64, st.integers(0, 30), elements=st.one_of(st.floats(0, 1), st.just(math.nan))))
def test_benjamini_hochberg_is_at_least_p_and_at_most_one(p: np.ndarray) -> None:
    adj = dd.benjamini_hochberg(p)
    ok = ~np.isnan(p)
    assert (np.isnan(adj) == ~ok).all()
    assert (adj[ok] >= p[ok] - 1e-15).all() and (adj[ok] <= 1).all()


@given(hnp.arrays(np.float64, st.integers(0, 50), elements=st.integers(-5, 5).map(float)), dirty,
       st.lists(st.floats(-0.5, 1.5), min_size=1, max_size=12).map(sorted))
def test_quantile_rank_histogram_equals_ranks_then_histogram(ref: np.ndarray, x: np.ndarray,
                                                             bounds: list[float]) -> None:
    ref = np.sort(ref)
    want = dd.rank_histogram(quantile_rank(ref, x), bounds)
    assert dd.quantile_rank_histogram(ref, x, bounds).tolist() == want.tolist()


cat_values = st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "new"]), st.just(math.nan)),
                      max_size=40)


def _categorical_detectors() -> list[dd.Detector]:
    return [dd.CategoricalPSIDetector(["a", "b", "c"], [0.5, 0.3, 0.2, 0.0]),
            dd.Chi2Detector(["a", "b", "c"], [500, 300, 200, 0])]


@settings(max_examples=40)
@given(cat_values, cat_values)
def test_categorical_batch_merge_and_state(x: list[object], y: list[object]) -> None:
    xa, ya = np.array(x, dtype=object), np.array(y, dtype=object)
    for batch, single, a, b in zip(_categorical_detectors(), _categorical_detectors(),
                                   _categorical_detectors(), _categorical_detectors(), strict=True):
        batch.update(np.concatenate([xa, ya]))
        for v in [*x, *y]:
            single.update(np.array([v], dtype=object))
        a.update(xa)
        b.update(ya)
        want = repr(batch.result())
        assert repr(single.result()) == want
        assert repr(a.merge(b).result()) == want  # type: ignore[attr-defined]
        assert repr(detector_from_state(batch.to_state()).result()) == want  # type: ignore[attr-defined]
