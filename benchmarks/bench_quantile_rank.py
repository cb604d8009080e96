"""Cost of the monitor's cumulative quantile-rank histogram update (``Monitor._count``).

One numeric feature, a 2 000-point reference summary, batches of 64, 4 096 and 65 536 values:
continuous data (no ties: the common case) and a 5-value integer feature (every value ties a
reference point, the case the tie spreading of ``driftline.detectors.quantile_rank`` exists for).
Reported: best of several runs, microseconds per batch and nanoseconds per value.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from driftline.monitor import Monitor, WindowPolicy
from driftline.profile import BaselineProfile, Columns, NumericFeature
from driftline.records import RecordBatch

SUMMARY = 2000


def _profile(summary: np.ndarray) -> BaselineProfile:
    s = np.sort(summary)
    f = NumericFeature("x", (float(np.median(s)),), (0.5, 0.5), tuple(float(v) for v in s), True,
                       len(s), 0.0, float(s[0]), float(s[-1]), float(s.mean()), float(s.std()))
    return BaselineProfile("m", "1", "", len(s), {"x": f}, Columns(), None)


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    rng = np.random.default_rng(7)
    cases = {
        "continuous": (rng.normal(size=SUMMARY), lambda n: rng.normal(size=n)),
        "5-value integer": (rng.choice(5, size=SUMMARY, p=[0.1, 0.2, 0.4, 0.2, 0.1]).astype(float),
                            lambda n: rng.choice(5, size=n, p=[0.1, 0.2, 0.4, 0.2, 0.1])
                            .astype(float)),
    }
    for label, (summary, draw) in cases.items():
        mon = Monitor(_profile(summary), window=WindowPolicy(records=10**9, max_age=None),
                      clock=None, streams=False)
        for n in (64, 4096, 65_536):
            batch = RecordBatch({"x": draw(n)})
            reps = 200 if n <= 4096 else 30
            t = _best(lambda b=batch, m=mon: m._count(b), reps)
            print(f"rank update, {label:16s} batch {n:6d}: {t * 1e6:8.1f} µs "
                  f"({t * 1e9 / n:6.1f} ns/value)")


if __name__ == "__main__":
    main()
