"""The exact KS p-value is kept per lattice step: every call gives scipy's floats.

scipy's exact count depends on ``D`` only through ``h = round(D · lcm(n1, n2))``, so
``ks_pvalue`` keeps one result per ``(n1, n2, h)``. The definition here is the uncached call
of scipy's exact kernel (with scipy's asymptotic fallback when it fails), as ``ks_pvalue``
made it before: first calls, repeated calls and other ``D`` of the same step must all equal
it bit for bit, and a whole ``ks_2samp`` too.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.stats._stats_py import _attempt_exact_2kssamp

from driftline.detectors import ks


def _definition(d: float, n1: int, n2: int) -> tuple[float, float]:
    ok, d_lattice, prob = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")
    d_lattice = float(d_lattice)
    if not ok:
        prob = float(stats.kstwo.sf(d_lattice, round(max(n1, n2) * min(n1, n2)
                                                     / (n1 + n2))))
    return d_lattice, float(np.clip(prob, 0.0, 1.0))


@settings(max_examples=60, deadline=None)
@given(n1=st.integers(1, 1500), n2=st.integers(1, 600), u=st.floats(0, 1), v=st.floats(0, 1))
def test_cached_exact_pvalue_is_scipys(n1: int, n2: int, u: float, v: float) -> None:
    lcm = (n1 // math.gcd(n1, n2)) * n2
    d = u * min(1.0, 3 / math.sqrt(min(n1, n2)))  # mostly where windows' D fall
    first = ks.ks_pvalue(d, n1, n2)
    want = _definition(d, n1, n2)
    assert first == want
    assert ks.ks_pvalue(d, n1, n2) == want  # now from the cache
    h = round(d * lcm)
    other = (h + (v - 0.5) * 0.999) / lcm  # another D of the same lattice step
    if 0 <= other <= 1 and round(other * lcm) == h:
        assert ks.ks_pvalue(other, n1, n2) == _definition(other, n1, n2) == want


def test_windows_repeating_steps_equal_ks_2samp() -> None:
    """Windows of one size against one reference: their p-values are ks_2samp's, whether
    counted or found."""
    rng = np.random.default_rng(3)
    ref = np.sort(rng.normal(size=2000))
    ks._exact_lattice.cache_clear()
    for _ in range(12):
        cur = rng.normal(size=400)
        d, p = ks.ks_2samp_sorted(ref, cur)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(ref, cur)
        assert (d, p) == (float(res.statistic), pytest.approx(float(res.pvalue), rel=1e-12))
    assert ks._exact_lattice.cache_info().hits + ks._exact_lattice.cache_info().misses == 12
