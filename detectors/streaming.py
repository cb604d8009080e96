"""Per-record change detectors (river's ADWIN, Page–Hinkley, KSWIN) behind a NaN guard.

river's detectors take one float at a time; a single NaN makes ADWIN's running sums NaN and
blinds it for good. :class:`StreamDetector` skips NaN/inf (counting them), feeds the rest in
order, and reports at which positions of each batch a change was detected.

>>> import random
>>> rng = random.Random(12345)
>>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
>>> det = StreamDetector.adwin()
>>> det.update(np.array(stream, dtype=float))
[1023]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from driftline.detectors.binning import finite_mask

__all__ = ["StreamCounts", "StreamDetector"]


class StreamCounts:
    """The counters every stream detector reports the same way (the monitor reads river's
    detectors and :class:`~driftline.detectors.change.ChangeDetector` alike): valid values fed,
    missing ones skipped, and whether the last valid value triggered a detection. A subclass
    keeps ``_n``, ``_n_invalid`` and ``_last_detected`` up to date."""

    _n: int
    _n_invalid: int
    _last_detected: bool

    @property
    def n(self) -> int:
        """Valid values fed."""
        return self._n

    @property
    def n_invalid(self) -> int:
        """Missing values (NaN, ±inf, None) skipped."""
        return self._n_invalid

    @property
    def drift_detected(self) -> bool:
        """Whether the last valid value fed triggered a detection (river's convention)."""
        return self._last_detected


class StreamDetector(StreamCounts):
    """A river drift detector with missing-value handling and batch updates.

    Build it with :meth:`adwin`, :meth:`page_hinkley` or :meth:`kswin` (river's defaults unless
    given); ``kind`` and ``params`` are kept so that :meth:`reset` rebuilds the same detector.
    KSWIN runs ≈ 1000× slower than ADWIN: keep it off hot paths.
    """

    def __init__(self, kind: str, **params: Any) -> None:
        from river import drift  # lazily: river (and sklearn under it) costs ~0.4 s to import

        factories: dict[str, Callable[..., Any]] = {
            "adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley, "kswin": drift.KSWIN,
        }
        if kind not in factories:
            raise ValueError(f"unknown stream detector {kind!r}; use one of {sorted(factories)}")
        self.kind = kind
        self.params = dict(params)
        self._factory = factories[kind]
        self._det: Any = self._factory(**self.params)
        self._n = 0
        self._n_invalid = 0
        self._detections = 0
        self._last_detected = False

    @classmethod
    def adwin(cls, delta: float = 0.002, clock: int = 32, grace_period: int = 10,
              **params: Any) -> StreamDetector:
        return cls("adwin", delta=delta, clock=clock, grace_period=grace_period, **params)

    @classmethod
    def page_hinkley(cls, min_instances: int = 30, delta: float = 0.005, threshold: float = 50.0,
                     alpha: float = 0.9999, mode: str = "both") -> StreamDetector:
        return cls("page_hinkley", min_instances=min_instances, delta=delta, threshold=threshold,
                   alpha=alpha, mode=mode)

    @classmethod
    def kswin(cls, alpha: float = 0.005, window_size: int = 100, stat_size: int = 30,
              seed: int | None = None) -> StreamDetector:
        return cls("kswin", alpha=alpha, window_size=window_size, stat_size=stat_size, seed=seed)

    def update(self, values: np.ndarray | float) -> list[int]:
        """Feed values in order; return the indices (within this batch) where a change was found.

        ``drift_detected`` afterwards tells whether the last valid value triggered one.
        """
        arr = np.atleast_1d(np.asarray(values))
        mask = finite_mask(arr).ravel()
        flat = arr.ravel()
        self._n_invalid += int(mask.size - np.count_nonzero(mask))
        positions = np.flatnonzero(mask)
        xs = flat[mask].astype(np.float64).tolist()
        det = self._det
        found: list[int] = []
        last = self._last_detected
        for pos, x in zip(positions.tolist(), xs, strict=True):
            det.update(x)
            last = bool(det.drift_detected)
            if last:
                found.append(pos)
        self._last_detected = last
        self._n += len(xs)
        self._detections += len(found)
        return found

    def reset(self) -> None:
        """Start afresh: a new river detector, zero counters."""
        self._det = self._factory(**self.params)
        self._n = self._n_invalid = self._detections = 0
        self._last_detected = False

    @property
    def detections(self) -> int:
        """Changes detected since construction or the last reset."""
        return self._detections

    @property
    def estimation(self) -> float | None:
        """ADWIN's current window mean (None for the other detectors)."""
        value = getattr(self._det, "estimation", None)
        return float(value) if value is not None else None
