"""The one detector protocol and its result type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class DetectorResult:
    """What a detector says about the data it has seen since the last reset.

    ``p_value`` is None where the method defines none (PSI, distances). ``statistic`` is NaN
    when no valid value was seen: a NaN is never reported as "no drift" — ``drifted`` is then
    False and ``n`` is 0, so callers can tell "no data" from "no drift".
    """

    statistic: float
    p_value: float | None
    threshold: float | None
    drifted: bool
    n: int
    n_invalid: int


@runtime_checkable
class Detector(Protocol):
    """A windowed detector: feed batches, read one result, reset for the next window."""

    def update(self, values: np.ndarray) -> None:
        """Add a batch of values; NaN/inf/None are counted in ``n_invalid`` and skipped."""

    def reset(self) -> None:
        """Forget everything seen since construction or the last reset."""

    def result(self) -> DetectorResult:
        """The result for everything seen since the last reset."""


@runtime_checkable
class StatefulDetector(Detector, Protocol):
    """A detector whose state can be saved, restored and combined (replicas, sub-windows).

    ``merge(other)`` returns a new detector equal to one that was fed both detectors' data;
    ``to_state()`` is JSON-able and includes the configuration, so
    :func:`driftline.detectors.windowed.detector_from_state` can rebuild it alone.
    """

    def to_state(self) -> dict[str, Any]:
        """JSON-able state, configuration included."""

    def merge(self, other: Self) -> Self:
        """A new detector holding both detectors' data."""
