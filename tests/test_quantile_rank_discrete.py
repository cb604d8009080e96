"""The quantile-rank histogram (docs/statistics.md) is uniform without drift, for discrete features too.

A value tied with reference points owns the ECDF jump ``[F(x−), F(x)]``; its k-th occurrence gets
``F(x−) + vdc(k + 1)·(F(x) − F(x−))`` (van der Corput). Bound proved in docs/statistics.md and
checked here: for a window with exactly the reference's proportions, a bucket boundary that cuts
the jump of a value seen ``c`` times (occurrences ``k0 … k0 + c − 1``) is off by at most
``popcount(k0 + c + 1) + popcount(k0 + 1)`` values, so a bucket's count is within
``2(⌊log2(w + 1)⌋ + 2)`` of ``w / 10`` for a fresh stream (``k0 = 0``) and within
``4(⌊log2(k0 + w + 1)⌋ + 1)`` for any later stretch of it (a PromQL ``increase`` range).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.catalogue import QUANTILE_RANK_BUCKETS
from driftline.detectors.psi import psi
from driftline.detectors.quantile_rank import quantile_rank, rank_histogram
from driftline.engine.kernels import RankReference, rank_update
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.profile.format import BaselineProfile, Columns, NumericFeature

BOUNDS = np.asarray(QUANTILE_RANK_BUCKETS)
UNIFORM = np.r_[np.full(10, 0.1), 0.0]


def _popcount(x: int) -> int:
    return bin(x).count("1")


def _cut_error(counts: np.ndarray, k0: np.ndarray, b: float) -> float:
    """Allowed count error at bound ``b``: from the one value whose jump ``b`` cuts, if any."""
    cum = np.r_[0, np.cumsum(counts)] / counts.sum()
    for g in range(len(counts)):
        if cum[g] < b < cum[g + 1]:
            c, k = int(counts[g]), int(k0[g])
            return _popcount(k + c + 1) + _popcount(k + 1)
    return 0.0


def _hist_ks(counts: np.ndarray) -> float:
    share = np.cumsum(counts[:-1]) / counts.sum()
    return float(np.max(np.abs(share - BOUNDS)))


masses = st.lists(st.integers(1, 60), min_size=2, max_size=8)


@settings(max_examples=60, deadline=None)
@given(masses=masses, warm=st.lists(st.integers(0, 300), min_size=8, max_size=8) | st.just([0] * 8),
       cuts=st.lists(st.integers(1, 10_000), max_size=12))
def test_no_drift_discrete_histogram_is_uniform(masses: list[int], warm: list[int],
                                                cuts: list[int]) -> None:
    values = np.arange(len(masses), dtype=np.float64) * 3 - 2  # few distinct, integer-valued
    ref = np.repeat(values, masses)
    n = len(ref)
    reps = math.ceil(4000 / n)
    window = np.tile(ref, reps)  # exactly the reference's proportions, w >= 4000
    w = len(window)
    # a stream that already saw some occurrences of each value (a later PromQL range)
    k0 = np.array(warm[: len(masses)] + [0] * (len(masses) - len(warm)))[: len(masses)]
    rr = RankReference.build(ref, BOUNDS)
    seen_k = rr.new_seen()
    seen_k[:] = k0
    seen_d = np.zeros(n, dtype=np.int64)
    seen_d[np.searchsorted(ref, values)] = k0
    # the detector on the whole window ...
    ranks = quantile_rank(ref, window, seen_d)
    hist = rank_histogram(ranks, BOUNDS)
    # ... equals the monitor's kernel fed the (shuffled) window in arbitrary batches, 1-value
    # batches included: the counts do not depend on how the stream was cut
    shuffled = np.random.default_rng(len(cuts)).permutation(window)
    edges = [0, *sorted({c % w for c in cuts}), w]
    got = np.zeros(len(BOUNDS) + 1, dtype=np.int64)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        c, s = rank_update(rr, np.sort(shuffled[lo:hi]), seen_k)
        got += c
        total += s
    np.testing.assert_array_equal(got, hist)
    assert total == pytest.approx(float(ranks.sum()), rel=1e-9)
    # the bound: each bucket within the cut errors of its two boundaries of w / 10
    counts = np.asarray(masses) * reps
    lower = np.r_[0.0, BOUNDS[:-1]]
    for i in range(10):
        allowed = _cut_error(counts, k0, lower[i]) + _cut_error(counts, k0, BOUNDS[i])
        assert abs(hist[i] - w / 10) <= allowed + 1e-9, (i, hist.tolist())
    assert hist[10] == 0
    # and the uniform bounds that follow
    uniform = (2 * (math.log2(w + 1) + 2) if not k0.any()
               else 4 * (math.log2(k0.max() + w + 1) + 1))
    assert np.all(np.abs(hist[:10] - w / 10) <= uniform)
    # PSI against the uniform 0.1 shares (what the PromQL recording rules compute) is ~0
    assert psi(UNIFORM[:10], hist[:10]) < 0.01
    # the mean rank (histogram _sum / _count) is 1/2 up to the same granularity
    assert abs(total / w - 0.5) < 0.05


def test_plain_ecdf_would_fail_this() -> None:
    # The previous definition (rank = F(x)) on a 5-value feature without drift: all mass on the
    # ranks 0.2, 0.4, … — the check above is meaningful.
    ref = np.repeat([6.0, 12, 24, 36, 60], 200)
    window = np.tile(ref, 4)
    old = rank_histogram(np.searchsorted(ref, window, side="right") / len(ref), BOUNDS)
    assert psi(UNIFORM[:10], old[:10]) > 1.0
    new = rank_histogram(quantile_rank(ref, window), BOUNDS)
    assert psi(UNIFORM[:10], new[:10]) < 1e-3


def _profile(summary: np.ndarray) -> BaselineProfile:
    s = np.sort(summary)
    f = NumericFeature("x", (float(np.median(s)),), (0.5, 0.5), tuple(float(v) for v in s), True,
                       len(s), 0.0, float(s[0]), float(s[-1]), float(s.mean()), float(s.std()))
    return BaselineProfile("m", "1", "", len(s), {"x": f}, Columns(), None)


def test_monitor_low_traffic_discrete_no_drift() -> None:
    # A quiet model: 3 records between scrapes (snapshot() counts what is pending). Per-batch
    # spreading would put each value at its jump's midpoint; occurrence indexing stays uniform.
    p = np.array([0.15, 0.3, 0.35, 0.2])
    ref = np.repeat([12.0, 24, 36, 60], (p * 2000).astype(int))
    mon = Monitor(_profile(ref), window=WindowPolicy(records=10**9, max_age=None), clock=None,
                  streams=False)
    window = np.random.default_rng(5).permutation(np.tile(ref, 3))
    for lo in range(0, len(window), 3):
        mon.observe(RecordBatch({"x": window[lo:lo + 3]}))
        mon.snapshot()
    h = mon.snapshot().quantile_rank["x"]
    counts = np.asarray(h.counts)
    assert h.count == len(window)
    assert np.all(np.abs(counts[:10] - len(window) / 10) <= 2 * (math.log2(len(window) + 1) + 2))
    assert psi(UNIFORM[:10], counts[:10]) < 0.01
    assert h.sum / h.count == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("shares", [[0.2] * 5, [0.05, 0.15, 0.5, 0.2, 0.1], [0.4, 0.6],
                                    [0.1, 0.1, 0.1, 0.1, 0.6]])
def test_shifted_discrete_feature_shows_large_psi(shares: list[float]) -> None:
    values = np.array([6.0, 12, 24, 36, 60][: len(shares)])
    ref = np.repeat(values, (np.asarray(shares) * 1000).astype(int))
    # the same shares, each moved to the next larger value (the largest beyond the reference)
    moved = np.r_[values[1:], 90.0]
    window = np.repeat(moved, (np.asarray(shares) * 3000).astype(int))
    hist = rank_histogram(quantile_rank(ref, window), BOUNDS)
    assert psi(UNIFORM[:10], hist[:10]) > 0.25
    assert _hist_ks(hist) >= 0.1


def test_continuous_values_keep_the_ecdf() -> None:
    rng = np.random.default_rng(11)
    ref = np.sort(rng.normal(size=2000))
    x = rng.normal(size=5000)
    assert not np.isin(x, ref).any()
    np.testing.assert_array_equal(quantile_rank(ref, x),
                                  np.searchsorted(ref, x, side="right") / len(ref))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.sampled_from([0.0, 0.0, 0.3, 1.0]))
def test_continuous_histogram_ks_is_bounded_by_the_two_sample_ks(seed: int, shift: float) -> None:
    # Without ties the rank is the ECDF and rank <= b  <=>  x < ref[k_b] with k_b/n <= b < (k_b+1)/n,
    # so each cumulative share differs from b by at most D (two-sample KS) + 1/n.
    rng = np.random.default_rng(seed)
    ref = np.sort(rng.normal(size=2000))
    x = rng.normal(loc=shift, size=20_000)
    rr = RankReference.build(ref, BOUNDS)
    hist, _ = rank_update(rr, np.sort(x), rr.new_seen())
    d = stats.ks_2samp(ref, x).statistic
    assert _hist_ks(hist) <= d + 1 / len(ref) + 1e-12
    if shift == 0.0:
        assert psi(UNIFORM[:10], hist[:10]) < 0.02
    if shift >= 1.0:
        assert psi(UNIFORM[:10], hist[:10]) > 0.5 and _hist_ks(hist) > 0.3
