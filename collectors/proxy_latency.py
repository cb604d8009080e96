"""Proxy latency per HTTP status class, as :class:`~driftline.engine.snapshot.Histogram` values.

Observed on the event loop thread, read by exporters from any thread. A reader may see one
observation half-applied; the count is derived from the bucket counts so that the Prometheus
invariant ``_count == le="+Inf"`` always holds.
"""

from __future__ import annotations

from bisect import bisect_left

from driftline.catalogue import LATENCY_BUCKETS
from driftline.engine.snapshot import Histogram

__all__ = ["STATUS_CLASSES", "LatencyRecorder", "status_class"]

STATUS_CLASSES: tuple[str, ...] = ("2xx", "3xx", "4xx", "5xx")


def status_class(status: int) -> str:
    """``"2xx"`` … ``"5xx"``; anything outside 200..599 counts as ``"5xx"`` (a broken upstream)."""
    return f"{status // 100}xx" if 200 <= status < 600 else "5xx"


class LatencyRecorder:
    """Cumulative seconds histograms keyed by status class, buckets as in the catalogue."""

    __slots__ = ("_bounds", "_by_hundreds", "_counts", "_sums")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._bounds = bounds
        self._counts: list[list[int]] = [[0] * (len(bounds) + 1) for _ in STATUS_CLASSES]
        self._sums: list[float] = [0.0] * len(STATUS_CLASSES)
        # status // 100 -> index into STATUS_CLASSES (0, 1 and 6.. count as 5xx)
        self._by_hundreds = (3, 3, 0, 1, 2, 3)

    def observe(self, status: int, seconds: float) -> None:
        """Add one exchange; buckets are upper-inclusive like Prometheus ``le``."""
        h = status // 100
        i = self._by_hundreds[h] if 0 <= h < 6 else 3
        self._counts[i][bisect_left(self._bounds, seconds)] += 1
        self._sums[i] += seconds

    def histograms(self) -> dict[str, Histogram]:
        """A consistent-enough copy for exporters: every class, even when still empty."""
        out: dict[str, Histogram] = {}
        for i, cls in enumerate(STATUS_CLASSES):
            c = tuple(self._counts[i])
            out[cls] = Histogram(self._bounds, c, self._sums[i], sum(c))
        return out
