"""Detector throughput: PSI, KS (presorted vs scipy), chi2, JS, Wasserstein, quantile rank, ADWIN.

Figures are per window of 20 numeric features × 10 000 values against a 10 000-value reference
summary (the reference setting of docs/architecture.md, "Benchmarks"), best of 5 runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from scipy import stats

from driftline.detectors import (
    StreamDetector,
    bin_counts,
    category_counts,
    chi2_two_sample,
    jensen_shannon,
    ks_2samp_sorted,
    psi,
    quantile_rank,
    quantile_rank_histogram,
    rank_edges,
    rank_histogram,
    wasserstein_normalised,
)
from driftline.detectors.ks import ks_statistic_sorted

FEATURES = 20
WINDOW = 10_000
REFERENCE = 10_000


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _report(label: str, seconds: float, values: int) -> None:
    print(f"{label:<46} {seconds * 1e3:9.2f} ms  {values / seconds / 1e6:8.2f} M values/s")


def main() -> None:
    rng = np.random.default_rng(0)
    refs = [np.sort(rng.normal(size=REFERENCE)) for _ in range(FEATURES)]
    windows = [rng.normal(0.05, 1.0, size=WINDOW) for _ in range(FEATURES)]
    edges = [np.quantile(r, np.linspace(0.1, 0.9, 9)) for r in refs]
    shares = np.full(10, 0.1)
    total = FEATURES * WINDOW
    print(f"{FEATURES} features × {WINDOW} window values, reference {REFERENCE}")

    _report("PSI (bin_counts + psi)", _best(
        lambda: [psi(shares, bin_counts(w, e)) for w, e in zip(windows, edges, strict=True)]), total)
    _report("Jensen–Shannon (binned)", _best(
        lambda: [jensen_shannon(shares, bin_counts(w, e)) for w, e in zip(windows, edges, strict=True)]),
        total)
    _report("KS ks_2samp_sorted (exact p, max n ≤ 10k)", _best(
        lambda: [ks_2samp_sorted(r, w) for r, w in zip(refs, windows, strict=True)]), total)
    _report("KS statistic only (presorted reference)", _best(
        lambda: [ks_statistic_sorted(r, np.sort(w)) for r, w in zip(refs, windows, strict=True)]), total)
    small = [w[:1000] for w in windows]
    _report("KS ks_2samp_sorted, 1k window", _best(
        lambda: [ks_2samp_sorted(r, w) for r, w in zip(refs, small, strict=True)]), FEATURES * 1000)
    _report("KS scipy.stats.ks_2samp (same data)", _best(
        lambda: [stats.ks_2samp(r, w) for r, w in zip(refs, windows, strict=True)], repeat=2), total)
    big_ref = np.sort(rng.normal(size=100_000))
    _report("KS ks_2samp_sorted, 100k reference (asymp p)", _best(
        lambda: [ks_2samp_sorted(big_ref, w) for w in windows]), total)
    _report("Wasserstein (normalised)", _best(
        lambda: [wasserstein_normalised(r, w, 1.0) for r, w in zip(refs, windows, strict=True)]), total)
    bounds = [i / 10 for i in range(1, 11)]
    _report("quantile rank + histogram", _best(
        lambda: [rank_histogram(quantile_rank(r, w), bounds) for r, w in zip(refs, windows, strict=True)]),
        total)
    redges = [rank_edges(r, bounds) for r in refs]
    _report("quantile_rank_histogram (precomputed rank_edges)", _best(
        lambda: [quantile_rank_histogram(r, w, bounds, e)
                 for r, w, e in zip(refs, windows, redges, strict=True)]), total)

    cats = [f"c{i}" for i in range(20)]
    cat_values = rng.choice(np.array([*cats, "new"], dtype=object), size=WINDOW)
    cat_str = cat_values.astype(str)
    ccounts = np.append(np.full(20, 500.0), 0.0)
    _report("categorical counts (object array) + chi2", _best(
        lambda: chi2_two_sample(ccounts, category_counts(cat_values, cats))), WINDOW)
    _report("categorical counts (str array) + chi2", _best(
        lambda: chi2_two_sample(ccounts, category_counts(cat_str, cats))), WINDOW)

    stream = rng.normal(size=200_000)
    det = StreamDetector.adwin()
    secs = _best(lambda: det.update(stream), repeat=1)
    _report("ADWIN StreamDetector.update (200k values)", secs, stream.size)


if __name__ == "__main__":
    main()
