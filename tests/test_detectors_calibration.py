"""Null calibration: with no drift, P(p < 0.05) must be 0.05 for the χ² and KS tests.

Both samples are random under the null (the reference is a finite sample too), so every
replication draws a new reference and a new window. A fixed seed makes the test deterministic;
the accepted band [0.04, 0.06] is ±2.9 binomial standard deviations at 4,000 replications (χ²)
and ±2.05 at 2,000 (KS). Fast because the simulation is vectorised: χ² counts come straight
from a multinomial. KS is distribution-free, so a replication is just a random arrangement of
the ``n + w`` pooled values (which positions are the window's); the statistic is one cumulative
sum over it, against the reference or against the profile's quantile grid of it, and the p-value
is computed once per distinct statistic. The first replications are checked against the
sidecar's kernel on the same data.
"""

from __future__ import annotations

import numpy as np
import pytest

from driftline.detectors.chi2 import chi2_two_sample
from driftline.detectors.ks import ks_pvalue, quantile_grid, reference_size
from driftline.engine.kernels import numeric_window

ALPHA = 0.05
BAND = (0.04, 0.06)
SHARES = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.03, 0.0085, 0.0015])  # two sparse at 10k


SUMMARY_SIZE = 20_000  # the profile's default: larger references are kept as a quantile grid


@pytest.mark.parametrize(("n_ref", "n_win"), [(10_000, 10_000), (100_000, 10_000)])
def test_chi2_null_rejection_rate(n_ref: int, n_win: int) -> None:
    rng = np.random.default_rng(20261201)
    reps = 4000
    refs = rng.multinomial(n_ref, SHARES, size=reps)
    wins = rng.multinomial(n_win, SHARES, size=reps)
    p = np.array([chi2_two_sample(r, w)[1] for r, w in zip(refs, wins, strict=True)])
    rate = float(np.mean(p < ALPHA))
    assert BAND[0] <= rate <= BAND[1], rate


def _rejection_rate(stats: np.ndarray, n_ref: int, n_win: int) -> float:
    """Share of ``stats`` whose p-value is below ALPHA. The p-value falls as D grows, so a binary
    search over the distinct statistics finds the cut with a dozen p-value evaluations. The
    p-value is the window kernel's (``fast``: the approximation where the exact count is dear)."""
    unique = np.unique(stats)
    lo, hi = 0, unique.size  # first index whose p-value is < ALPHA lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if ks_pvalue(float(unique[mid]), n_ref, n_win, fast=True)[1] < ALPHA:
            hi = mid
        else:
            lo = mid + 1
    return float(np.mean(stats >= unique[lo])) if lo < unique.size else 0.0


@pytest.mark.parametrize(("n_ref", "n_win"), [(10_000, 10_000), (100_000, 10_000)])
def test_ks_null_rejection_rate_through_the_profile_summary(n_ref: int, n_win: int) -> None:
    """What the sidecar computes: the window against the profile summary (the whole reference up
    to 20,000 values, else a 20,000-point quantile grid), p-value with the real reference size."""
    rng = np.random.default_rng(1201)
    reps = 2000
    total = n_ref + n_win
    m = min(n_ref, SUMMARY_SIZE)
    # grid ranks of quantile_grid: ceil(n·(i − ½)/m), 1-based (every value when m == n)
    ranks = np.ceil((np.arange(1, m + 1) - 0.5) / m * n_ref).astype(np.int64) - 1
    stats = np.empty(reps)
    for i in range(reps):
        is_win = np.zeros(total, dtype=bool)
        is_win[rng.choice(total, n_win, replace=False, shuffle=False)] = True
        in_summary = np.zeros(total, dtype=bool)
        in_summary[np.flatnonzero(~is_win)[ranks]] = True
        gap = np.cumsum(in_summary, dtype=np.int64) * n_win - np.cumsum(is_win, dtype=np.int64) * m
        stats[i] = np.max(np.abs(gap)) / (m * n_win)
        if i < 2:  # the simulation computes what the sidecar's kernel computes on the same data
            positions = np.arange(total, dtype=np.float64)
            summary, _ = quantile_grid(positions[~is_win], SUMMARY_SIZE)
            assert summary.size == m and np.array_equal(summary, positions[in_summary])
            k = numeric_window(summary, np.array([total / 2]), positions[is_win], n_ref)
            assert k.ks_pvalue == pytest.approx(
                ks_pvalue(float(stats[i]), n_ref, n_win, fast=True)[1], rel=1e-9)
    n_used = reference_size(m, n_ref)
    assert n_used == n_ref
    rate = _rejection_rate(stats, n_used, n_win)
    assert BAND[0] <= rate <= BAND[1], rate
