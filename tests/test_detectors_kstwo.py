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
from driftline.detectors.ks import ks_2samp_sorted, ks_pvalue
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
    # at or below the exact size both paths are scipy's exact lattice count, bit for bit
    assert ks_pvalue(0.05, 3_000, 1_000, fast=True) == ks_pvalue(0.05, 3_000, 1_000)
