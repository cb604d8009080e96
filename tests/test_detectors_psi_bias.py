"""PSI's small-sample bias: the no-drift expectation ``(B − 1)(1/n + 1/m)`` checked by simulation,
and the corrected PSI that the drift decision gates on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.psi import psi, psi_corrected, psi_null_expectation

SHARES = {
    "10 equal bins": np.full(10, 0.1),
    "6 uneven": np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04]),
    "20 categories + other": np.r_[np.full(20, 0.049), 0.02],
}


@pytest.mark.parametrize("name", sorted(SHARES))
@pytest.mark.parametrize(("n", "m"), [(1000, 10_000), (10_000, 10_000), (5000, 100_000)])
def test_null_expectation_matches_simulation(name: str, n: int, m: int) -> None:
    """Both samples drawn from the same shares (the reference is a sample too); every bin
    expects ≥ 20 window records here, where the second-order formula should be within a few %."""
    shares = SHARES[name]
    rng = np.random.default_rng(7)
    reps = 1500
    refs = rng.multinomial(m, shares, size=reps)
    wins = rng.multinomial(n, shares, size=reps)
    values = np.array([psi(r, w) for r, w in zip(refs, wins, strict=True)])
    want = psi_null_expectation(shares, n, m)
    assert want == pytest.approx((shares.size - 1) * (1 / n + 1 / m))
    # the simulated mean has a standard error of ≈ sqrt(2 / (B − 1)) · want / sqrt(reps) ≈ 1.5 %
    assert values.mean() == pytest.approx(want, rel=0.06)
    corrected = np.array([psi_corrected(v, shares, n, m) for v in values])
    # E[(X − E X)+] of a scaled χ² with ≥ 5 dof is ≤ 0.3 E X: near 0 (clipped), not at the bias
    assert np.mean(corrected) < 0.35 * want


def test_expectation_counts_only_bins_the_reference_has() -> None:
    ref = np.array([0.5, 0.3, 0.2, 0.0])  # __other__ never seen
    assert psi_null_expectation(ref, 100, 1000) == pytest.approx(2 * (0.01 + 0.001))
    assert psi_null_expectation(ref, 100, 0) == pytest.approx(0.02)  # unknown m: exact reference
    assert math.isnan(psi_null_expectation(ref, 0, 1000))
    assert math.isnan(psi_corrected(math.nan, ref, 100, 1000))


@settings(max_examples=60)
@given(st.floats(0, 5), st.integers(1, 10**6), st.integers(0, 10**6), st.integers(1, 30))
def test_corrected_is_raw_minus_expectation_clipped(value: float, n: int, m: int, bins: int) -> None:
    ref = np.full(bins, 1.0 / bins)
    c = psi_corrected(value, ref, n, m)
    assert 0.0 <= c <= value
    assert c == pytest.approx(max(0.0, value - psi_null_expectation(ref, n, m)))
    # a larger window never has a larger expectation
    assert psi_null_expectation(ref, n + 1, m) <= psi_null_expectation(ref, n, m)
