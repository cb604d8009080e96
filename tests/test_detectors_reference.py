"""Every statistic against an independent reference: scipy, or arithmetic written out by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from driftline.detectors.binning import bin_counts, category_counts, finite_mask
from driftline.detectors.chi2 import chi2_two_sample, pool_sparse
from driftline.detectors.distances import jensen_shannon, wasserstein_normalised
from driftline.detectors.ks import ks_2samp_sorted
from driftline.detectors.multiple_testing import benjamini_hochberg
from driftline.detectors.psi import psi
from driftline.detectors.quantile_rank import quantile_rank, rank_histogram


def _scipy_ks(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = stats.ks_2samp(a, b)
    return float(r.statistic), float(r.pvalue)


# ---------------------------------------------------------------- binning

def test_finite_mask_numeric_and_object() -> None:
    assert finite_mask(np.array([1.0, np.nan, np.inf, -np.inf, 0.0])).tolist() == [
        True, False, False, False, True]
    assert finite_mask(np.array([1, 2], dtype=np.int64)).tolist() == [True, True]
    obj = np.array([1, None, "x", 2.5, float("nan"), True], dtype=object)
    assert finite_mask(obj).tolist() == [True, False, False, True, False, True]


def test_bin_counts_half_open_bins_with_open_ends() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    # bins: (-inf,0) [0,1) [1,2) [2,inf)
    values = np.array([-5.0, 0.0, 0.99, 1.0, 1.5, 2.0, 100.0, np.nan, np.inf])
    assert bin_counts(values, edges).tolist() == [1, 2, 2, 2]
    assert bin_counts(values, edges).dtype == np.int64
    assert bin_counts(np.array([], dtype=float), edges).tolist() == [0, 0, 0, 0]


def test_category_counts_other_and_missing() -> None:
    cats = ["red", "green"]
    values = np.array(["red", "blue", None, "green", "red", float("nan")], dtype=object)
    assert category_counts(values, cats).tolist() == [2, 1, 1]
    assert category_counts(np.array(["red", "pink", "red"]), cats).tolist() == [2, 0, 1]
    assert category_counts(np.array([1, 2, 2]), ["2"]).tolist() == [2, 1]


# ---------------------------------------------------------------- PSI

def test_psi_textbook_case() -> None:
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    counts = np.array([10, 20, 30, 40])  # shares 0.1, 0.2, 0.3, 0.4
    # (0.1-0.25)ln(0.1/0.25) = -0.15 * -0.916291 = 0.137444
    # (0.2-0.25)ln(0.2/0.25) = -0.05 * -0.223144 = 0.011157
    # (0.3-0.25)ln(0.3/0.25) =  0.05 *  0.182322 = 0.009116
    # (0.4-0.25)ln(0.4/0.25) =  0.15 *  0.470004 = 0.070501
    expected = 0.137444 + 0.011157 + 0.009116 + 0.070501  # 0.228218
    assert psi(ref, counts) == pytest.approx(expected, abs=2e-6)


def test_psi_floor_for_empty_bin() -> None:
    ref = np.array([0.5, 0.5, 0.0])
    counts = np.array([50, 50, 0])
    # cur = (0.5, 0.5, 0) -> floored (0.5, 0.5, 1e-4); ref floored likewise: identical -> 0
    assert psi(ref, counts) == 0.0
    counts2 = np.array([0, 100, 0])
    # cur (1e-4, 1, 1e-4) vs ref (0.5, 0.5, 1e-4):
    # (1e-4-0.5)ln(1e-4/0.5) + (1-0.5)ln(1/0.5) + 0
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(2.0)
    assert psi(ref, counts2) == pytest.approx(expected, rel=1e-12)


def test_psi_no_data_is_nan() -> None:
    assert math.isnan(psi(np.array([0.5, 0.5]), np.array([0, 0])))


# ---------------------------------------------------------------- KS

@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 5), (3, 7), (10, 10), (50, 13), (200, 200),
                                         (1000, 100), (3000, 7000), (10_000, 10_000),
                                         (12_000, 300), (20_000, 20_000)])
def test_ks_equals_scipy_continuous(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 31 + n2)
    a = rng.normal(size=n1)
    b = rng.normal(0.1, 1.1, size=n2)
    assert ks_2samp_sorted(np.sort(a), b) == _scipy_ks(a, b)


@pytest.mark.parametrize(("n1", "n2", "levels"), [(5, 5, 2), (30, 17, 3), (400, 90, 6),
                                                   (5000, 2000, 4), (15_000, 500, 10)])
def test_ks_equals_scipy_with_ties(n1: int, n2: int, levels: int) -> None:
    rng = np.random.default_rng(n1 + 7 * n2 + levels)
    a = rng.integers(0, levels, size=n1).astype(float)
    b = rng.integers(0, levels + 1, size=n2).astype(float)
    assert ks_2samp_sorted(np.sort(a), b) == _scipy_ks(a, b)


def test_ks_identical_and_disjoint() -> None:
    a = np.arange(20.0)
    assert ks_2samp_sorted(a, a) == _scipy_ks(a, a)
    d, p = ks_2samp_sorted(a, a + 100.0)
    assert (d, p) == _scipy_ks(a, a + 100.0)
    assert d == 1.0


def test_ks_skips_missing_and_empty_is_nan() -> None:
    ref = np.sort(np.random.default_rng(1).normal(size=100))
    b = np.array([0.1, np.nan, -0.3, np.inf, 2.0])
    assert ks_2samp_sorted(ref, b) == _scipy_ks(ref, np.array([0.1, -0.3, 2.0]))
    d, p = ks_2samp_sorted(ref, np.array([np.nan]))
    assert math.isnan(d) and math.isnan(p)


# ---------------------------------------------------------------- chi2, JS, Wasserstein, BH

@pytest.mark.parametrize("seed", range(6))
def test_chi2_equals_scipy_contingency_when_nothing_is_sparse(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    share = rng.dirichlet(np.full(k, 5.0))
    ref = rng.multinomial(int(rng.integers(2_000, 50_000)), share)
    cur = rng.multinomial(int(rng.integers(500, 5_000)), rng.dirichlet(share * 200))
    want = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert np.min(want.expected_freq) >= 5  # the rule pools nothing here
    got = chi2_two_sample(ref, cur)
    assert got[0] == pytest.approx(float(want.statistic), rel=1e-10)
    assert got[1] == pytest.approx(float(want.pvalue), rel=1e-8, abs=1e-300)


def test_chi2_pools_sparse_categories_by_the_documented_rule() -> None:
    # expected counts (row totals 1000 and 100): column d has 11 (ref) / 1.1 (window) → sparse,
    # e 9.1 / 0.9 → sparse, f never seen → dropped; the pooled (d+e) has window expectation
    # 2.0 < 5, so it is merged into the smallest remaining column, c.
    ref = np.array([500, 300, 180, 12, 8, 0])
    cur = np.array([40, 30, 20, 5, 5, 0])
    pooled = pool_sparse(ref, cur)
    assert pooled.tolist() == [[500, 300, 200], [40, 30, 30]]
    want = stats.chi2_contingency(pooled, correction=False)
    got = chi2_two_sample(ref, cur)
    assert got == pytest.approx((float(want.statistic), float(want.pvalue)), rel=1e-10)


def test_chi2_sparse_pool_kept_when_large_enough() -> None:
    ref = np.array([5000, 3000, 30, 30, 30])
    cur = np.array([500, 300, 2, 4, 3])
    # each rare column has window expectation < 5, together ≈ 8.7: kept as one pooled column
    assert pool_sparse(ref, cur).tolist() == [[5000, 3000, 90], [500, 300, 9]]


def test_chi2_new_category_still_detected() -> None:
    ref = np.array([60_000, 40_000, 0])
    cur = np.array([300, 200, 500])  # half the window is a category the reference never saw
    _, p = chi2_two_sample(ref, cur)
    assert p < 1e-50  # merged into the smallest column by the rule, still far from the null


def test_chi2_no_data_and_single_category() -> None:
    s, p = chi2_two_sample(np.array([5, 5]), np.array([0, 0]))
    assert math.isnan(s) and math.isnan(p)
    assert chi2_two_sample(np.array([10, 0]), np.array([7, 0])) == (0.0, 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_jensen_shannon_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.dirichlet(np.ones(8))
    ref[seed % 8] = 0.0
    counts = rng.integers(0, 50, size=8)
    want = jensenshannon(ref / ref.sum(), counts / counts.sum(), base=2)
    assert jensen_shannon(ref, counts) == pytest.approx(float(want), rel=1e-12, abs=1e-15)


def test_jensen_shannon_bounds() -> None:
    assert jensen_shannon(np.array([1.0, 0.0]), np.array([0, 7])) == pytest.approx(1.0)
    assert jensen_shannon(np.array([0.3, 0.7]), np.array([3, 7])) == pytest.approx(0.0, abs=1e-7)
    assert math.isnan(jensen_shannon(np.array([0.3, 0.7]), np.array([0, 0])))


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (10, 3), (500, 77), (4000, 1000)])
def test_wasserstein_equals_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 + n2)
    a = rng.gamma(2.0, size=n1)
    b = np.concatenate([rng.gamma(2.5, size=n2), [np.nan]])
    std = float(a.std())
    want = stats.wasserstein_distance(a, b[:-1])
    if std > 0:
        want /= std
    assert wasserstein_normalised(np.sort(a), b, std) == pytest.approx(want, rel=1e-10)


def test_wasserstein_zero_std_is_unnormalised() -> None:
    a = np.array([1.0, 1.0, 1.0])
    b = np.array([3.0, 3.0])
    assert wasserstein_normalised(a, b, 0.0) == pytest.approx(2.0)


@pytest.mark.parametrize("seed", range(4))
def test_benjamini_hochberg_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=25) ** 3
    p[3] = p[7]  # a tie
    want = stats.false_discovery_control(p, method="bh")
    np.testing.assert_allclose(benjamini_hochberg(p), want, rtol=1e-12)


def test_benjamini_hochberg_nan_stays_nan() -> None:
    p = np.array([0.01, np.nan, 0.04, 0.03])
    got = benjamini_hochberg(p)
    assert math.isnan(got[1])
    want = stats.false_discovery_control(np.array([0.01, 0.04, 0.03]), method="bh")
    np.testing.assert_allclose(got[[0, 2, 3]], want, rtol=1e-12)
    assert np.isnan(benjamini_hochberg(np.array([np.nan, np.nan]))).all()


# ---------------------------------------------------------------- quantile rank

def test_quantile_rank_is_the_empirical_cdf() -> None:
    ref = np.sort(np.random.default_rng(3).normal(size=200))
    x = np.array([-10.0, 0.0, ref[50], 10.0, np.nan])
    got = quantile_rank(ref, x)
    ecdf = stats.ecdf(ref).cdf.evaluate(x[:4])
    # x[2] equals a reference point: it owns the ECDF jump [F(x-), F(x)] and its first
    # occurrence sits at the jump's midpoint (ties are spread, see detectors.quantile_rank)
    ecdf[2] = (stats.ecdf(ref).cdf.evaluate(np.nextafter(x[2], -np.inf)) + ecdf[2]) / 2
    np.testing.assert_allclose(got[:4], ecdf, rtol=0, atol=1e-15)
    assert math.isnan(got[4])


def test_rank_histogram_le_semantics() -> None:
    bounds = [0.1, 0.2, 0.5, 1.0]
    ranks = np.array([0.0, 0.1, 0.1000001, 0.2, 0.5, 0.7, 1.0, np.nan, 1.5])
    # le=0.1: {0, .1}; (.1,.2]: {.1000001, .2}; (.2,.5]: {.5}; (.5,1]: {.7, 1}; +Inf: {1.5}
    assert rank_histogram(ranks, bounds).tolist() == [2, 2, 1, 2, 1]


def test_ks_without_scipy_private_kernel_falls_back_to_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    import driftline.detectors.ks as ks

    monkeypatch.setattr(ks, "_EXACT", None)
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=300), rng.normal(0.2, size=120)
    assert ks.ks_2samp_sorted(np.sort(a), b) == _scipy_ks(a, b)
    big = rng.normal(size=12_000)
    assert ks.ks_2samp_sorted(np.sort(big), b) == _scipy_ks(big, b)


def test_quantile_grid_is_numpy_inverted_cdf_at_midpoints() -> None:
    from driftline.detectors.ks import quantile_grid

    v = np.random.default_rng(4).exponential(size=1003)
    grid, exact = quantile_grid(np.append(v, np.nan), 100)
    probs = (np.arange(1, 101) - 0.5) / 100
    assert not exact
    np.testing.assert_array_equal(grid, np.quantile(v, probs, method="inverted_cdf"))
    small, exact_small = quantile_grid(v[:50], 100)
    assert exact_small and small.tolist() == sorted(v[:50].tolist())
