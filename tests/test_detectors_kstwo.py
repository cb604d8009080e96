"""The scipy-free p-values (KS asymptotic, χ²) against scipy, with the error bounds their modules
state, and the monitor's kernel using them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from driftline.detectors.chi2 import chi2_sf
from driftline.detectors.ks import (
    APPROX_WORK,
    ks_2samp_sorted,
    ks_pvalue,
    ks_pvalue_approx,
    lattice_work,
)
from driftline.detectors.kstwo import kolmogorov_sf, smirnov_sf
from driftline.engine.kernels import numeric_window


def _durbin_region(n: int, x: float) -> bool:
    """Where scipy's kstwo.sf switches to the Durbin matrix (p above 0.9999 for n > 140)."""
    return n <= 100_000 and n * x ** 1.5 <= 1.4 and n * x * x < 2.2


@pytest.mark.parametrize("n", [141, 300, 1_000, 4_000, 9_091, 20_000])
def test_kolmogorov_sf_within_the_stated_bound(n: int) -> None:
    z = np.concatenate([np.linspace(0.05, 3.0, 40), np.linspace(3.0, 19.2, 12)])
    for x in (z / math.sqrt(n)).tolist():
        if x >= 1.0:
            continue
        want = float(stats.kstwo.sf(x, n))
        got = kolmogorov_sf(x, n)
        if _durbin_region(n, x):
            assert got == pytest.approx(want, abs=1e-5), (n, x)
        elif want >= 1e-300:
            assert got == pytest.approx(want, rel=1e-9), (n, x)
        else:
            assert got <= 1e-300


@pytest.mark.parametrize(("n", "x"), [(50, 0.1), (140, 0.3), (141, 0.009), (141, 0.99),
                                      (5_000, 1e-5), (5_000, 1.5e-4), (5_000, 0.9999), (200, 0.6)])
def test_kolmogorov_sf_small_n_and_ends(n: int, x: float) -> None:
    assert kolmogorov_sf(x, n) == pytest.approx(float(stats.kstwo.sf(x, n)), rel=1e-9, abs=1e-300)


def test_kolmogorov_sf_edges() -> None:
    assert kolmogorov_sf(0.0, 500) == 1.0 and kolmogorov_sf(1.0, 500) == 0.0
    assert math.isnan(kolmogorov_sf(math.nan, 500))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(141, 30_000), x=st.floats(0.0005, 0.6))
def test_smirnov_sum_equals_scipy(n: int, x: float) -> None:
    want = float(special.smirnov(n, x))
    assert smirnov_sf(n, x) == pytest.approx(want, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 8, 19, 39, 100, 501])
def test_chi2_sf_equals_scipy(dof: int) -> None:
    for x in np.geomspace(1e-3, 1500, 80).tolist():
        want = float(special.chdtrc(dof, x))
        assert chi2_sf(x, dof) == pytest.approx(want, rel=1e-12, abs=1e-300), (dof, x)
    assert chi2_sf(0.0, dof) == 1.0 and math.isnan(chi2_sf(math.nan, dof))


def test_fast_ks_pvalue_is_scipy_within_bound_and_exact_below_the_exact_size() -> None:
    rng = np.random.default_rng(3)
    ref = np.sort(rng.normal(size=30_000))
    for shift in (0.0, 0.02, 0.05, 0.2):
        x = rng.normal(shift, 1.0, 4_000)
        d, p = ks_2samp_sorted(ref, x)  # scipy's own asymptotic p-value
        assert d == float(stats.ks_2samp(ref, x).statistic)
        k = numeric_window(ref, np.array([0.0]), x)
        assert k.ks_statistic == d
        assert k.ks_pvalue == pytest.approx(p, rel=1e-9, abs=1e-300)
    # at or below the exact size the fast path is scipy's exact lattice count, bit for bit,
    # where that count is cheap; where it is not, the approximation within its stated bound
    for d in (0.004, 0.01, 0.05, 0.2):
        assert ks_pvalue(d, 3_000, 200, fast=True) == ks_pvalue(d, 3_000, 200)  # small sample
    assert lattice_work(3_000, 1_000, 0.008) <= APPROX_WORK
    assert ks_pvalue(0.008, 3_000, 1_000, fast=True) == ks_pvalue(0.008, 3_000, 1_000)
    d_fast, p_fast = ks_pvalue(0.05, 3_000, 1_000, fast=True)
    d_exact, p_exact = ks_pvalue(0.05, 3_000, 1_000)
    assert d_fast == d_exact and p_fast == pytest.approx(p_exact, rel=0.10, abs=0.003)


# (n1, n2) pairs of the approximation's region: equal sizes (the lattice is coarsest there),
# a window against a larger reference, coprime sizes, and the edges of the region
APPROX_GRID = [(500, 500), (300, 3_000), (1_000, 999), (5_000, 1_000), (3_001, 700), (10_000, 300),
               (10_000, 10_000), (2_000, 500)]


@pytest.mark.parametrize(("n1", "n2"), APPROX_GRID)
def test_approximate_pvalue_is_scipys_exact_within_the_stated_bound(n1: int, n2: int) -> None:
    """ks_pvalue_approx against scipy's exact lattice count over D from p ≈ 1 to p ≈ 1e-10,
    where the fast path uses it (work > APPROX_WORK): absolute error ≤ 0.01, ≤ 0.003 where
    p < 0.1, relative ≤ 10 % for 1e-10 ≤ p < 0.05."""
    lcm = n1 // math.gcd(n1, n2) * n2
    root = math.sqrt(n1 * n2 / (n1 + n2))
    checked = 0
    for z in np.linspace(0.3, 3.4, 24).tolist():
        d = round(z / root * lcm) / lcm + 0.3 / lcm  # off the lattice: both round it
        d_a, p_a = ks_pvalue_approx(d, n1, n2)
        d_e, p_e = ks_pvalue(d, n1, n2)
        assert d_a == d_e
        if p_e < 1e-10 or lattice_work(n1, n2, d) <= APPROX_WORK:
            continue
        checked += 1
        assert abs(p_a - p_e) <= 0.01, (d, p_e, p_a)
        if p_e < 0.1:
            assert abs(p_a - p_e) <= 0.003, (d, p_e, p_a)
        if p_e < 0.05:
            assert abs(p_a - p_e) <= 0.10 * p_e, (d, p_e, p_a)
    assert checked >= 3
    # the kernel takes the approximation here only where the exact count is dear
    d = 2.0 / root
    assert ks_pvalue(d, n1, n2, fast=True) == (ks_pvalue_approx(d, n1, n2)
                                               if lattice_work(n1, n2, d) > APPROX_WORK
                                               else ks_pvalue(d, n1, n2))


def _pelz_good_as_written(n: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The Pelz–Good evaluation with every term index expression made per call, as it was
    written before the index parts were kept (kstwo._theta_terms)."""
    pi2, sqrt2pi = math.pi ** 2, math.sqrt(2 * math.pi)
    z = (np.sqrt(n) * x)[:, None]
    z2 = z * z
    kmax = np.ceil(16 * z / math.pi)
    idx = np.arange(1, 9, dtype=np.float64)
    live = idx <= kmax
    m = 2.0 * idx - 1.0
    m2 = m * m
    with np.errstate(under="ignore"):
        q = np.where(live, np.exp(-pi2 * m2 / (8 * z2)), 0.0)
        z4, z6 = z2 * z2, z2 * z2 * z2
        k0 = np.sum(q, axis=1) * sqrt2pi / z[:, 0]
        k1 = np.sum((pi2 * m2 / 4 - z2) * q, axis=1) * sqrt2pi / (6 * z4[:, 0])
        c2 = (6 * z6 + 2 * z4 + (2 * z4 - 5 * z2) * pi2 * m2 / 4
              + pi2 ** 2 * (1 - 2 * z2) * m2 ** 2 / 16)
        c3 = (-30 * z6 - 90 * z4 * z4 + pi2 * (135 * z4 - 96 * z6) * m2 / 4
              + pi2 ** 2 * (212 * z4 - 60 * z2) * m2 ** 2 / 16
              + pi2 ** 3 * (5 - 30 * z2) * m2 ** 3 / 64)
        zz2, zz4, zz6 = z2[:, 0], z4[:, 0], z6[:, 0]
        k2 = np.sum(c2 * q, axis=1) * sqrt2pi / (72 * zz4 * zz2 * z[:, 0])
        k3 = np.sum(c3 * q, axis=1) * sqrt2pi / (6480 * zz4 * zz6)
        k2sq = idx * idx
        r = np.where(live, np.exp(-pi2 * k2sq / (2 * z2)), 0.0)
        k2 = k2 - pi2 * sqrt2pi / (36 * zz2 * z[:, 0]) * np.sum(k2sq * r, axis=1)
        k3 = k3 + pi2 * sqrt2pi / (216 * zz6) * np.sum((3 * z2 - pi2 * k2sq) * k2sq * r,
                                                        axis=1)
    rn = np.sqrt(n)
    out = k0 + k1 / rn + k2 / n + k3 / (n * rn)
    return np.where(-pi2 / 8 / (z2[:, 0]) < -708, 0.0, out)


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(141, 2_000_000), st.floats(1e-9, 1.0)),
                      min_size=1, max_size=25))
def test_pelz_good_with_kept_index_terms_is_the_written_form_bit_for_bit(
        pairs: list[tuple[int, float]]) -> None:
    # the Pelz–Good branch's domain (n·x² < 2.2, n > 140): the same bits as every index
    # expression evaluated per call; the whole window's batch at once, tiny z included
    from driftline.detectors.kstwo import _pelz_good_cdf_many

    n = np.array([float(a) for a, _ in pairs])
    x = np.array([math.sqrt(2.2 * u / a) * 0.999 for a, u in pairs])
    got, want = _pelz_good_cdf_many(n, x), _pelz_good_as_written(n, x)
    assert got.tobytes() == want.tobytes()
