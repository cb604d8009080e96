"""The fused merge kernels equal the reference detectors (and scipy) on any data, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.catalogue import QUANTILE_RANK_BUCKETS
from driftline.detectors.binning import bin_counts
from driftline.detectors.distances import jensen_shannon, jensen_shannon_many, wasserstein
from driftline.detectors.ks import ks_2samp_sorted
from driftline.detectors.kstwo import kolmogorov_sf, kolmogorov_sf_many
from driftline.detectors.psi import psi, psi_many
from driftline.detectors.quantile_rank import quantile_rank, rank_histogram
from driftline.engine.kernels import (
    RankReference,
    ReferenceStack,
    _numeric_stats,
    numeric_window,
    numeric_windows,
    rank_bucket_counts,
    rank_left,
    rank_limits,
    rank_right,
    rank_update,
    stacked_stats,
)

samples = st.lists(st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0]) | st.floats(-5, 5),
                   min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(ref=samples, cur=samples)
def test_merge_ranks_equal_searchsorted(ref: list[float], cur: list[float]) -> None:
    r = np.sort(np.array(ref))
    s = np.sort(np.array(cur))
    np.testing.assert_array_equal(rank_right(r, s), np.searchsorted(r, s, side="right"))
    np.testing.assert_array_equal(rank_left(r, s), np.searchsorted(r, s, side="left"))


@settings(max_examples=150, deadline=None)
@given(ref=samples, cur=samples)
def test_numeric_window_equals_the_detectors(ref: list[float], cur: list[float]) -> None:
    r = np.sort(np.array(ref))
    x = np.array(cur)
    edges = np.unique(np.quantile(r, [0.25, 0.5, 0.75], method="inverted_cdf"))
    k = numeric_window(r, edges, x)
    np.testing.assert_array_equal(k.counts, bin_counts(x, edges))
    d, p = ks_2samp_sorted(r, x)
    assert k.ks_statistic == d and k.ks_pvalue == p
    assert k.wasserstein == pytest.approx(wasserstein(r, x), rel=1e-12, abs=1e-12)
    assert k.wasserstein == pytest.approx(stats.wasserstein_distance(r, x), rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(ref=samples, cur=samples)
def test_integer_rank_buckets_equal_ecdf_histogram(ref: list[float], cur: list[float]) -> None:
    # the integer path of rank_update: exact for values that tie no reference point
    r = np.sort(np.array(ref))
    s = np.sort(np.array(cur))
    bounds = np.asarray(QUANTILE_RANK_BUCKETS)
    got = rank_bucket_counts(rank_right(r, s), rank_limits(len(r), bounds))
    want = rank_histogram(np.searchsorted(r, s, side="right") / len(r), QUANTILE_RANK_BUCKETS)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=150, deadline=None)
@given(ref=samples, batches=st.lists(samples, min_size=1, max_size=4))
def test_rank_update_equals_rank_histogram(ref: list[float], batches: list[list[float]]) -> None:
    # Ranks spread ties by occurrence index (detectors.quantile_rank); the kernel, fed batch by
    # batch with its own occurrence counters, gives the very same counts as the detector on
    # every batch, and its rank sum equals the sum of the detector's ranks.
    r = np.sort(np.array(ref))
    bounds = np.asarray(QUANTILE_RANK_BUCKETS)
    rr = RankReference.build(r, bounds)
    seen_k, seen_d = rr.new_seen(), np.zeros(len(r), dtype=np.int64)
    for cur in batches:
        s = np.sort(np.array(cur))
        got, total = rank_update(rr, s, seen_k)
        ranks = quantile_rank(r, s, seen_d)
        np.testing.assert_array_equal(got, rank_histogram(ranks, QUANTILE_RANK_BUCKETS))
        assert total == pytest.approx(float(ranks.sum()), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("n", [1, 3, 7, 10, 30, 333, 20_000])
def test_rank_limits_match_float_division(n: int) -> None:
    bounds = np.asarray(QUANTILE_RANK_BUCKETS)
    ks = np.arange(n + 1)
    for b, lim in zip(bounds, rank_limits(n, bounds), strict=True):
        assert lim == ks[ks / n <= b].max()


def test_empty_window_is_undefined_not_zero() -> None:
    k = numeric_window(np.array([1.0, 2.0]), np.array([1.5]), np.empty(0))
    assert np.isnan(k.ks_statistic) and np.isnan(k.wasserstein)
    assert k.counts.tolist() == [0, 0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["a", "b", "c", "zz", ""]), st.none(),
                          st.just(float("nan")), st.just(float("inf")), st.integers(-2, 2),
                          st.floats(-2, 2, allow_nan=False), st.text(max_size=3)),
                max_size=60))
def test_category_codes_dict_path_equals_arrow_and_the_generic_rule(values: list[object]) -> None:
    """Small columns (the sidecar's) are coded by a dict, large ones (offline) through Arrow's
    hash lookup: both give the reference slot, ``k`` for any other value and -1 for a missing
    one, checked against the rule written out here."""
    import math

    from driftline.engine.window_stats import _arrow_codes, _cat_ref, category_codes
    from driftline.profile.format import CategoricalFeature

    cats = ("a", "b", "c", "1")
    ref = _cat_ref(CategoricalFeature("c", cats, (0.2, 0.2, 0.2, 0.2, 0.2), 10, 0.0))
    arr = np.array(values, dtype=object)
    expected = [-1 if v is None or (isinstance(v, float) and not math.isfinite(v))
                else cats.index(str(v)) if str(v) in cats else 4 for v in values]
    assert category_codes(arr, ref).tolist() == expected
    if all(v is None or isinstance(v, str) or (isinstance(v, float) and math.isnan(v))
           for v in values):
        arrow = _arrow_codes(arr, ref)
        assert arrow is not None and arrow.tolist() == expected


feature_specs = st.lists(st.tuples(st.integers(0, 12_000), st.integers(0, 3_000),
                                   st.sampled_from([0.0, 0.03, 0.1, 1.0]), st.booleans(),
                                   st.booleans()), min_size=1, max_size=6)


@settings(max_examples=25, deadline=None)
@given(specs=feature_specs, seed=st.integers(0, 2**32 - 1))
def test_many_features_equal_one_feature_at_a_time(
        specs: list[tuple[int, int, float, bool, bool]], seed: int) -> None:
    # numeric_windows shares one vectorised p-value evaluation between the features of a
    # window; every feature's result is the per-feature kernel's, float for float, over the
    # exact, approximate and asymptotic p-value regions, ties, empty samples and a summary
    # standing for a larger reference
    rng = np.random.default_rng(seed)
    features = []
    for n, w, shift, discrete, larger in specs:
        ref = rng.normal(size=n)
        cur = rng.normal(shift, 1.0, size=w)
        if discrete:
            ref, cur = np.round(ref * 2), np.round(cur * 2)
        ref = np.sort(ref)
        edges = np.unique(np.quantile(ref, [0.25, 0.5, 0.75])) if n else np.array([0.0])
        features.append((ref, edges, cur, 10 * n + 7 if larger else None))
    got = numeric_windows(features)
    for (ref, edges, cur, count), k in zip(features, got, strict=True):
        one = numeric_window(ref, edges, cur, count)
        np.testing.assert_array_equal(k.counts, one.counts)
        for a, b in ((k.ks_statistic, one.ks_statistic), (k.ks_pvalue, one.ks_pvalue),
                     (k.wasserstein, one.wasserstein)):
            assert a == b or (a != a and b != b)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(st.floats(1e-4, 1.2), st.integers(1, 50_000)), min_size=1,
                      max_size=12))
def test_kolmogorov_sf_many_is_kolmogorov_sf(pairs: list[tuple[float, int]]) -> None:
    x = [p[0] for p in pairs]
    n = [p[1] for p in pairs]
    assert kolmogorov_sf_many(x, n) == [kolmogorov_sf(a, b) for a, b in pairs]


count_rows = st.lists(st.lists(st.integers(0, 50), min_size=6, max_size=6), min_size=1,
                      max_size=5)


@settings(max_examples=80, deadline=None)
@given(refs=count_rows, curs=count_rows)
def test_psi_and_js_of_many_rows_equal_one_row_at_a_time(refs: list[list[int]],
                                                         curs: list[list[int]]) -> None:
    # empty rows on either side (NaN), zero bins (floored in PSI, zero terms in JS) included
    k = min(len(refs), len(curs))
    ref = np.array(refs[:k], dtype=np.float64)
    cur = np.array(curs[:k], dtype=np.float64)
    for got, one in ((psi_many(ref, cur), psi), (jensen_shannon_many(ref, cur), jensen_shannon)):
        want = [one(r, c) for r, c in zip(ref, cur, strict=True)]
        for a, b in zip(got.tolist(), want, strict=True):
            assert a == b or (a != a and b != b)


@settings(max_examples=80, deadline=None)
@given(k=st.integers(2, 9), n=st.sampled_from([1, 2, 7, 60, 400, 5000]),
       w=st.sampled_from([2, 3, 40, 300, 1000]), discrete=st.sampled_from([0.0, 0.5, 1.0]),
       scale=st.sampled_from([1.0, 1e-6, 1e6]), offset=st.sampled_from([0.0, -3.0, 1e4]),
       subset=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_stacked_features_equal_one_feature_at_a_time(
        k: int, n: int, w: int, discrete: float, scale: float, offset: float, subset: bool,
        seed: int) -> None:
    # stacked_stats computes several features' statistics as one k × w stack: every feature's
    # bin counts, KS statistic and Wasserstein distance are _numeric_stats', float for float,
    # through the binary-search and the merge paths (w · MERGE_RATIO against n), ties within
    # the window and with the reference (rounded values, signed zeros), any scale and offset,
    # and a stack of which only some rows have a window (the others' values were missing)
    rng = np.random.default_rng(seed)

    def sample(size: int) -> np.ndarray:
        x = rng.normal(rng.normal(0, 0.3), 1.0, size=size)
        if discrete:
            rounded = np.round(x * 2) / 2
            x = np.where(rng.random(size) < discrete, rounded, x)
            x[rng.random(size) < 0.05] = -0.0
        return x * scale + offset

    refs = [np.sort(sample(n)) for _ in range(k)]
    edges = [np.quantile(r, [0.1, 0.3, 0.5, 0.7, 0.9]) for r in refs]
    stack = ReferenceStack.build(refs, edges)
    rows = np.arange(k)
    if subset:
        rows = np.sort(rng.choice(k, size=int(rng.integers(1, k)), replace=False))
    values = np.stack([sample(w) for _ in rows])
    got = stacked_stats(stack, rows, values)
    for (counts, d, wass), r, x in zip(got, rows.tolist(), values, strict=True):
        want_counts, want_d, want_w = _numeric_stats(refs[r], edges[r], x)
        np.testing.assert_array_equal(counts, want_counts)
        assert d == want_d and wass == want_w, (r, d, want_d, wass, want_w)


def _definition_stats(ref: np.ndarray, edges: np.ndarray,
                      finite: np.ndarray) -> tuple[np.ndarray, float, float]:
    """_numeric_stats as the formulas are written (one expression each, fresh temporaries,
    ``where`` for the crossing point): what its in-place form must equal bit for bit."""
    from driftline.engine.kernels import (
        _left_from_right,
        _window_grid,
        bin_counts_sorted,
        centred_sums,
    )

    s = np.sort(finite)
    w, n = len(s), len(ref)
    counts = bin_counts_sorted(s, edges)
    at_right = np.searchsorted(ref, s, side="right")
    at_left = _left_from_right(ref, s, at_right)
    grid = _window_grid(w, n)
    d_plus = float(np.max(at_left / n - grid.before))
    new = s[1:] != s[:-1]
    if new.all():
        at_cur = grid.after
    else:
        ends = np.flatnonzero(np.concatenate([new, [True]])) + 1
        at_cur = np.repeat(ends, np.diff(np.concatenate([[0], ends]))) / w
    d_minus = float(np.max(at_cur - at_right / n))
    mu = float(ref[n // 2])
    csum = centred_sums(ref)
    g = at_right * (s - mu) - csum[at_right]
    a, b = s[:-1], s[1:]
    lo, hi = at_right[:-1], at_left[1:]
    j = grid.rank
    cnt = np.minimum(np.maximum(j, lo), np.maximum(hi, lo))
    q = np.where(j <= lo, a, np.where(j > hi, b, ref[j - 1]))
    gq = cnt * (q - mu) - csum[cnt]
    mid = g[:-1] + g[1:] - 2.0 * gq - grid.cn * ((a - q) + (b - q))
    top = int(at_right[-1])
    tail = float(csum[n] - csum[top]) - (n - top) * (float(s[-1]) - mu)
    return counts, max(d_plus, d_minus, 0.0), (float(np.sum(mid)) + float(g[0]) + tail) / n


@settings(max_examples=60, deadline=None)
@given(n=st.sampled_from([1, 2, 7, 400, 5000, 20_000]), w=st.sampled_from([1, 2, 40, 1000, 10_000]),
       discrete=st.sampled_from([0.0, 0.5, 1.0]), scale=st.sampled_from([1.0, 1e-6, 1e6]),
       offset=st.sampled_from([0.0, -3.0, 1e4]), same=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_numeric_stats_equal_their_definition_bit_for_bit(
        n: int, w: int, discrete: float, scale: float, offset: float, same: bool,
        seed: int) -> None:
    # the 10k-record path (one feature at a time, in place): KS D and Wasserstein-1 are the
    # written expressions' floats, sign of zero included (repr), through merges and binary
    # searches, ties in the window and with the reference, signed zeros, a window drawn from
    # the reference itself (same: distances of exactly 0 become possible)
    rng = np.random.default_rng(seed)

    def sample(size: int) -> np.ndarray:
        x = rng.normal(0, 1.0, size=size)
        if discrete:
            rounded = np.round(x * 2) / 2
            x = np.where(rng.random(size) < discrete, rounded, x)
            x[rng.random(size) < 0.05] = -0.0
        return x * scale + offset

    ref = np.sort(sample(n))
    x = rng.choice(ref, size=w) if same else sample(w)
    edges = np.quantile(ref, [0.1, 0.3, 0.5, 0.7, 0.9])
    counts, d, wass = _numeric_stats(ref, edges, x)
    want_counts, want_d, want_w = _definition_stats(ref, edges, x)
    np.testing.assert_array_equal(counts, want_counts)
    assert (repr(d), repr(wass)) == (repr(want_d), repr(want_w))
