"""Proxy latency per HTTP status class, as :class:`~driftline.snapshot.Histogram` values.

Observed on the event loop thread, read by exporters from any thread. A reader may see one
observation half-applied; the count is derived from the bucket counts so that the Prometheus
invariant ``_count == le="+Inf"`` always holds.
"""

from __future__ import annotations

from bisect import bisect_left

from driftline.catalogue import LATENCY_BUCKETS
from driftline.snapshot import Histogram

__all__ = ["STATUS_CLASSES", "LatencyRecorder", "status_class"]

STATUS_CLASSES: tuple[str, ...] = ("2xx", "3xx", "4xx", "5xx")


def status_class(status: int) -> str:
    """``"2xx"`` … ``"5xx"``; anything outside 200..599 counts as ``"5xx"`` (a broken upstream)."""
    return f"{status // 100}xx" if 200 <= status < 600 else "5xx"


class LatencyRecorder:
    """Cumulative seconds histograms keyed by status class, buckets as in the catalogue."""

    __slots__ = ("_bounds", "_counts", "_sums")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._bounds = bounds
        self._counts: dict[str, list[int]] = {c: [0] * (len(bounds) + 1) for c in STATUS_CLASSES}
        self._sums: dict[str, float] = dict.fromkeys(STATUS_CLASSES, 0.0)

    def observe(self, status: int, seconds: float) -> None:
        """Add one exchange; buckets are upper-inclusive like Prometheus ``le``."""
        cls = f"{status // 100}xx" if 200 <= status < 600 else "5xx"
        self._counts[cls][bisect_left(self._bounds, seconds)] += 1
        self._sums[cls] += seconds

    def histograms(self) -> dict[str, Histogram]:
        """A consistent-enough copy for exporters: every class, even when still empty."""
        out: dict[str, Histogram] = {}
        for cls, counts in self._counts.items():
            c = tuple(counts)
            out[cls] = Histogram(self._bounds, c, self._sums[cls], sum(c))
        return out
