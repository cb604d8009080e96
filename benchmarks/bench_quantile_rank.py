"""Cost of the monitor's cumulative quantile-rank histogram update, ties spread vs plain ECDF.

One numeric feature, a 2 000-point reference summary, sorted batches of 64, 4 096 and 65 536
values: continuous data (no ties, the common case) and a 5-value integer feature (every value
ties a reference point: the case the tie spreading of ``driftline.detectors.quantile_rank`` is
for). ``ecdf`` is the previous update (rank ``#{ref <= x}/n``: one merge, integer binning, sum),
``spread`` is :func:`driftline.engine.kernels.rank_update`; both run interleaved in one process, best
of many runs, so machine noise hits both alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from driftline.catalogue import QUANTILE_RANK_BUCKETS
from driftline.engine.kernels import RankReference, rank_bucket_counts, rank_limits, rank_right, rank_update


def _ecdf_update(ref: np.ndarray, s: np.ndarray, limits: np.ndarray) -> tuple[np.ndarray, float]:
    ranks = rank_right(ref, s)
    return rank_bucket_counts(ranks, limits), float((ranks / len(ref)).sum())


def _best_pair(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[float, float]:
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, fn in enumerate((a, b)):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best[0], best[1]


def main() -> None:
    rng = np.random.default_rng(7)
    p = [0.1, 0.2, 0.4, 0.2, 0.1]
    cases: dict[str, tuple[np.ndarray, Callable[[int], np.ndarray]]] = {
        "continuous": (rng.normal(size=2000), lambda n: rng.normal(size=n)),
        "5-value integer": (rng.choice(5, size=2000, p=p).astype(float),
                            lambda n: rng.choice(5, size=n, p=p).astype(float)),
    }
    bounds = np.asarray(QUANTILE_RANK_BUCKETS)
    for label, (summary, draw) in cases.items():
        ref = np.sort(summary)
        limits = rank_limits(len(ref), bounds)
        rr = RankReference.build(ref, bounds)
        seen = rr.new_seen() + 100_000  # a stream that has run for a while
        for n in (64, 4096, 65_536):
            s = np.sort(draw(n))
            t_old, t_new = _best_pair(
                lambda s=s, ref=ref, limits=limits: _ecdf_update(ref, s, limits),
                lambda s=s, rr=rr, seen=seen: rank_update(rr, s, seen),
                300 if n <= 4096 else 40)
            print(f"rank update, {label:16s} batch {n:6d}: ecdf {t_old * 1e6:8.1f} µs, "
                  f"spread {t_new * 1e6:8.1f} µs ({t_new * 1e9 / n:5.1f} ns/value, "
                  f"×{t_new / t_old:.2f})")


if __name__ == "__main__":
    main()
