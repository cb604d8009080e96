"""Two-sample Kolmogorov–Smirnov test against a presorted reference.

Equal to ``scipy.stats.ks_2samp(reference, values)`` (two-sided, ``method="auto"``) in statistic
and p-value, but the reference is sorted once when the baseline is built and only the window is
sorted per call: the statistic costs ``O(w log w + w log n)`` for a window of ``w`` values and a
reference of ``n`` values, not ``O((n + w) log(n + w))``.

How the statistic is found without touching every reference point: ``F_ref − F_cur`` is a step
function. Its maximum ``D+`` is reached just left of a window value ``s_k`` (``F_cur`` is constant
between window values while ``F_ref`` only grows), where it equals
``#{ref < s_k}/n − k/w`` for the first index ``k`` of each tie group of the sorted window; its
minimum is reached at a window value, ``#{ref ≤ s_k}/n − #{cur ≤ s_k}/w``. Both are the very
float expressions scipy evaluates, so the statistics agree bit for bit.

P-value, as scipy's ``auto``: exact (Hodges' lattice-path count) when ``max(n, w) ≤ 10 000``,
then ``D`` is reported rounded to the lattice ``h / lcm(n, w)`` exactly as scipy does; otherwise
(or if the exact count fails numerically) the asymptotic ``kstwo.sf(D, round(n·w/(n+w)))``.
The window kernel asks for ``fast`` p-values: above 10 000 values an asymptotic value without
``scipy.stats`` (scipy's own within 1e-9); with ``approximate`` (``DriftPolicy.exact_ks`` off)
also the exact count only while it is cheap
(≈ 0.1 ms), otherwise a continuity-corrected asymptotic value with a stated, tested error
(:func:`ks_pvalue_approx`: absolute ≤ 0.01, ≤ 0.003 where p < 0.1, relative ≤ 10 % down to
p = 1e-10), because the exact count costs 1.8 ms for 1000 window values against 5000 reference
values, more than everything else a window computes for that feature. By default
(``DriftPolicy.exact_ks``) the monitor keeps the exact count, so its p-values equal ``ks_2samp``'s.

Quantile-grid reference. When the profile keeps a grid of ``m`` reference quantiles instead of
the whole reference (see :func:`quantile_grid`), write ``G`` for the grid's ECDF and ``F`` for
the full reference ECDF. For any window ECDF ``H``, ``|sup|G−H| − sup|F−H|| ≤ sup|G−F|``
(triangle inequality), and for the grid built by :func:`quantile_grid` (inverse-CDF quantiles at
probabilities ``(i − ½)/m``) ``G(x) = floor(m·F(x) + ½)/m``, so ``sup|G−F| ≤ 1/(2m)``. Hence
``|D_grid − D_full| ≤ 1/(2m)`` — proved here and checked by a property test. The p-value on a
grid uses the real reference size ``n_reference`` (the profile's ``count``): the grid stands in
for the ``n`` values it summarises. Taking ``m`` as the size instead made the test conservative
(fewer rejections than ``alpha`` under no drift, less power under drift).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from driftline.detectors.binning import finite_values

__all__ = ["APPROX_MIN_N", "APPROX_WORK", "MAX_EXACT_N", "ks_2samp_sorted", "ks_pvalue",
           "ks_pvalue_approx", "ks_pvalues_fast", "ks_statistic_sorted", "lattice_work", "quantile_grid",
           "reference_size"]

MAX_EXACT_N = 10_000
"""scipy's ``MAX_AUTO_N``: ``auto`` is exact when both samples have at most this many values."""

_ExactFn = Callable[[int, int, int, float, str], tuple[bool, float, float]]


def _load_exact() -> _ExactFn | None:
    # scipy's compiled exact kernel is private; use it when present (bit-identical p-values),
    # otherwise ks_pvalue falls back to calling scipy.stats.ks_2samp itself.
    try:
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:  # pragma: no cover - depends on the scipy release
        return None
    exact: _ExactFn = _attempt_exact_2kssamp
    return exact


_UNLOADED = object()
# Loaded on the first p-value, not at import: scipy.stats costs ~0.5 s and most importers
# (the SDK, ``driftline --help``) never close a window.
_EXACT: _ExactFn | object | None = _UNLOADED


def _exact() -> _ExactFn | None:
    global _EXACT
    if _EXACT is _UNLOADED:
        _EXACT = _load_exact()
    return _EXACT  # type: ignore[return-value]


def ks_statistic_sorted(reference_sorted: np.ndarray, window_sorted: np.ndarray) -> float:
    """The two-sided KS statistic of two sorted, finite, non-empty samples."""
    ref = reference_sorted
    cur = window_sorted
    n, w = ref.size, cur.size
    below = np.searchsorted(ref, cur, side="left") / n      # F_ref just left of s_k
    d_plus = float(np.max(below - np.arange(w) / w))
    at_ref = np.searchsorted(ref, cur, side="right") / n    # F_ref at s_k
    at_cur = np.searchsorted(cur, cur, side="right") / w    # F_cur at s_k
    d_minus = float(np.max(at_cur - at_ref))
    return max(d_plus, d_minus, 0.0)


def _effective_n(n1: int, n2: int) -> int:
    # Python's round() of a float is numpy's (half to even, exact), without numpy's scalar
    # overhead; the larger size first, as scipy multiplies them
    m, n = (float(n1), float(n2)) if n1 >= n2 else (float(n2), float(n1))
    return round(m * n / (m + n))


def _unit(p: float) -> float:
    """``float(np.clip(p, 0, 1))`` of a float (NaN stays NaN), without numpy's scalar cost."""
    return p if p != p else (0.0 if p < 0.0 else (1.0 if p > 1.0 else float(p)))


def _asymptotic(d: float, n1: int, n2: int) -> float:
    from scipy import stats

    return float(stats.kstwo.sf(d, _effective_n(n1, n2)))


def lattice_work(n1: int, n2: int, d: float) -> float:
    """What scipy's exact two-sided count costs, in lattice cells: it walks the ``n1 × n2`` path
    lattice inside a band of width ``≈ 2·D`` of the longer side, so ``≈ n1·n2·D`` (0.1 ms per
    ≈ 25 000 cells on the reference machine; a 1000-value window against a 5000-value reference
    without drift: ≈ 235 000 cells, 1.8 ms)."""
    return float(n1) * float(n2) * d


def ks_pvalue_approx(d: float, n1: int, n2: int) -> tuple[float, float]:
    """(lattice ``D``, p-value) from the continuity-corrected asymptotic distribution.

    ``D`` is rounded to the lattice ``h / lcm(n1, n2)`` exactly as the exact path reports it;
    the p-value is ``kolmogorov_sf(D − 1/(2·lcm), round(n1·n2/(n1+n2)))`` — scipy's own
    asymptotic fallback (:func:`driftline.detectors.kstwo.kolmogorov_sf`) evaluated half a
    lattice step below ``D``, which halves its error against the exact lattice count (the exact
    distribution is a step function of ``h``; the half step is the continuity correction).

    Error against scipy's exact p-value, checked by ``tests/test_detectors_kstwo.py`` on a grid
    of ``(n1, n2, D)`` with ``min(n1, n2) ≥ APPROX_MIN_N``, ``max ≤ MAX_EXACT_N``: absolute
    ≤ 0.01 everywhere (largest near p ≈ 0.5 for equal sizes), ≤ 0.003 where p < 0.1, relative
    ≤ 10 % for 1e-10 ≤ p < 0.05 (measured: 0.0086, 0.0024, 9.5 % at p ≈ 5e-10)."""
    from driftline.detectors.kstwo import kolmogorov_sf

    lcm = (n1 // math.gcd(n1, n2)) * n2
    h = round(d * lcm)
    d = h / lcm
    if h == 0:
        return d, 1.0
    p = kolmogorov_sf(d - 0.5 / lcm, _effective_n(n1, n2))
    return d, _unit(p)


APPROX_MIN_N = 300
"""The fast p-value is exact whenever either sample has fewer values: the approximation's error
grows as the samples shrink (0.02 absolute at 100 × 100), and the exact count is cheap there."""

APPROX_WORK = 25_000.0
"""The fast p-value is exact while :func:`lattice_work` stays at or below this (≈ 0.1 ms)."""


def ks_pvalue(d: float, n1: int, n2: int, *, fast: bool = False,
              approximate: bool = True) -> tuple[float, float]:
    """(statistic, p-value) exactly as ``ks_2samp`` reports them for raw statistic ``d``.

    ``fast`` (what the monitor's window kernel uses):

    * above ``MAX_EXACT_N`` the asymptotic p-value comes from
      :func:`driftline.detectors.kstwo.kolmogorov_sf` (no ``scipy.stats``; relative error
      ≤ 1e-9 against scipy, see that module) instead of ``scipy.stats.kstwo``;
    * at or below it, scipy's exact lattice count while it is cheap (either sample below
      ``APPROX_MIN_N`` values, or :func:`lattice_work` ≤ ``APPROX_WORK``), else
      :func:`ks_pvalue_approx` (error bound there). The exact count costs 1.8 ms for a
      1000-value window against 5000 reference values, 18 ms for 10 000 against 5000.
      ``approximate=False`` keeps scipy's exact count there (``DriftPolicy.exact_ks``, the
      default: the p-values are ``ks_2samp``'s at every size)."""
    if fast and max(n1, n2) > MAX_EXACT_N:
        from driftline.detectors.kstwo import kolmogorov_sf

        return d, _unit(kolmogorov_sf(d, _effective_n(n1, n2)))
    if (fast and approximate and min(n1, n2) >= APPROX_MIN_N
            and lattice_work(n1, n2, d) > APPROX_WORK):
        return ks_pvalue_approx(d, n1, n2)
    exact = _exact()
    if max(n1, n2) <= MAX_EXACT_N and exact is not None:
        lcm = (n1 // math.gcd(n1, n2)) * n2
        # scipy's own lattice step (int(np.round(d * lcm)): Python's round of a float is
        # numpy's, half to even, exact)
        return _exact_lattice(n1, n2, round(float(d) * lcm))
    return d, _unit(_asymptotic(d, n1, n2))


#: Exact p-values kept (:func:`_exact_lattice`; ≈ 200 bytes each).
EXACT_CACHE = 4096


@lru_cache(maxsize=EXACT_CACHE)
def _exact_lattice(n1: int, n2: int, h: int) -> tuple[float, float]:
    """scipy's exact two-sided result for ``D = h / lcm(n1, n2)``: (lattice ``D``, p-value).

    scipy's exact count depends on ``D`` only through its lattice step ``h`` (it rounds ``D``
    to ``h / lcm`` first and counts paths for ``h``), so one count per ``(n1, n2, h)`` is
    kept and every later ``D`` in that step gets the same floats. A sidecar's windows have
    one size against one reference, and their undrifted ``D`` fall on a few hundred steps
    (``1/lcm`` = 1/5000 for 1000 values against 5000): after the first windows most
    features' exact p-value is a cache hit instead of a 1.8 ms count. ``h / lcm`` is given
    to scipy, which rounds it back to ``h`` exactly (both well below 2⁵³)."""
    exact = _exact()
    assert exact is not None
    g = math.gcd(n1, n2)
    ok, d_lattice, prob = exact(n1, n2, g, h / ((n1 // g) * n2), "two-sided")
    d = float(d_lattice)
    if not ok:
        prob = _asymptotic(d, n1, n2)
    return d, _unit(prob)


def ks_pvalues_fast(d: list[float], n1: list[int], n2: list[int], *,
                    approximate: bool = True) -> list[tuple[float, float]]:
    """``ks_pvalue(d[i], n1[i], n2[i], fast=True, approximate=approximate)`` for every ``i``, the
    same floats, with every
    asymptotic evaluation (the approximation's and the large samples') in one
    :func:`~driftline.detectors.kstwo.kolmogorov_sf_many` call: a window's features share it."""
    from driftline.detectors.kstwo import kolmogorov_sf_many

    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(d)
    batch: list[int] = []
    xs: list[float] = []
    ns: list[int] = []
    for i, (di, a, b) in enumerate(zip(d, n1, n2, strict=True)):
        if max(a, b) > MAX_EXACT_N:
            batch.append(i)
            xs.append(di)
            ns.append(_effective_n(a, b))
            out[i] = (di, 0.0)
        elif approximate and min(a, b) >= APPROX_MIN_N and lattice_work(a, b, di) > APPROX_WORK:
            lcm = (a // math.gcd(a, b)) * b
            h = round(di * lcm)
            if h == 0:
                out[i] = (0.0, 1.0)
                continue
            batch.append(i)
            xs.append(h / lcm - 0.5 / lcm)
            ns.append(_effective_n(a, b))
            out[i] = (h / lcm, 0.0)
        else:
            out[i] = ks_pvalue(di, a, b, fast=True, approximate=approximate)
    for i, p in zip(batch, kolmogorov_sf_many(xs, ns), strict=True):
        out[i] = (out[i][0], _unit(p))
    return out


def reference_size(summary_size: int, n_reference: int | None) -> int:
    """The reference size a p-value uses: the real one when known (≥ the summary's)."""
    if n_reference is None or n_reference < summary_size:
        return summary_size
    return int(n_reference)


def ks_2samp_sorted(reference_sorted: np.ndarray, values: np.ndarray,
                    n_reference: int | None = None) -> tuple[float, float]:
    """(D, p) of the window ``values`` against the sorted reference; (NaN, NaN) if either is empty.

    Missing values in the window are skipped. ``reference_sorted`` must be sorted and finite
    (the baseline profile guarantees both). ``n_reference`` is the size of the reference the
    sample summarises (a quantile grid stands for more values than it holds); by default the
    sample's own size.
    """
    ref = np.asarray(reference_sorted, dtype=np.float64)
    cur, _ = finite_values(values)
    if ref.size == 0 or cur.size == 0:
        return float("nan"), float("nan")
    cur = np.sort(cur)
    d = ks_statistic_sorted(ref, cur)
    n = reference_size(ref.size, n_reference)
    if _exact() is None and max(n, cur.size) <= MAX_EXACT_N and n == ref.size:
        from scipy import stats

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(ref, cur)
        return float(res.statistic), float(res.pvalue)
    return ks_pvalue(d, n, cur.size)


def quantile_grid(values: np.ndarray, m: int) -> tuple[np.ndarray, bool]:
    """A bounded KS reference: (sorted summary, exact).

    With at most ``m`` finite values the summary is all of them, sorted (exact). Otherwise it is
    the ``m`` inverse-CDF quantiles at probabilities ``(i − ½)/m``, ``i = 1..m`` — every grid point
    is a real reference value and ``|D_grid − D_full| ≤ 1/(2m)`` for any window (module docs).
    """
    if m < 1:
        raise ValueError(f"quantile grid size must be ≥ 1, got {m}")
    v, _ = finite_values(values)
    v = np.sort(v)
    if v.size <= m:
        return v, True
    probs = (np.arange(1, m + 1) - 0.5) / m
    # Inverse CDF: the smallest x with F(x) ≥ p is the value of 1-based rank ceil(p·n).
    ranks = np.ceil(probs * v.size).astype(np.int64)
    return v[np.clip(ranks - 1, 0, v.size - 1)], False
