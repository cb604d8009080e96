"""Multivariate drift of one window: the PCA reconstruction error against the reference band.

Built once per monitor from the profile's :class:`~driftline.profile.format.MultivariateProfile`;
:meth:`MultivariateRef.window` is pure and vectorised (one ``(n, d) @ (d, d)`` product, see
:class:`~driftline.detectors.reconstruction.ErrorMap`). The
window's value is ``sum of row errors / rows``, so partial windows (replicas, batches) combine
by adding their sums and counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from driftline.detectors.reconstruction import ErrorMap, PCAModel, threshold_band
from driftline.engine.snapshot import MultivariateDrift
from driftline.profile.format import BaselineProfile
from driftline.profile.multivariate import Encoder


class MultivariateRef:
    """The reconstruction model and threshold bands of one profile."""

    def __init__(self, profile: BaselineProfile) -> None:
        mv = profile.multivariate
        if mv is None:
            raise ValueError("the profile has no multivariate model")
        self.features = mv.features
        self.encoder = Encoder.from_profile(mv, profile.features)
        self.model = PCAModel(np.asarray(mv.mean), np.asarray(mv.scale),
                              np.asarray(mv.components, dtype=np.float64).reshape(
                                  -1, len(mv.features)).T,
                              np.asarray(mv.explained))
        self._errors = ErrorMap.of(self.model)
        self._blocks = (np.asarray(mv.block_errors), np.asarray(mv.block_counts))
        self._bands: dict[int, tuple[float, float]] = {}
        self.sample = mv.sample_array()

    @classmethod
    def of(cls, profile: BaselineProfile) -> MultivariateRef | None:
        return cls(profile) if profile.multivariate is not None else None

    def band(self, n: int) -> tuple[float, float]:
        """Threshold band for windows of ``n`` rows (cached per size)."""
        if n not in self._bands:
            if len(self._bands) > 64:
                self._bands.clear()
            self._bands[n] = threshold_band(*self._blocks, max(1, n))
        return self._bands[n]

    def error_sum(self, columns: Mapping[str, np.ndarray],
                  codes: Mapping[str, np.ndarray] | None = None) -> tuple[float, int]:
        """(sum of row errors, rows) of ``columns`` (``codes``: see ``Encoder.encode``)."""
        x = self.encoder.encode(columns, codes)
        return float(self._errors.errors(x).sum()), len(x)

    def window(self, columns: Mapping[str, np.ndarray], *, thin: bool = False,
               codes: Mapping[str, np.ndarray] | None = None) -> MultivariateDrift:
        total, n = self.error_sum(columns, codes)
        if n == 0:
            return MultivariateDrift(math.nan, math.nan, math.nan, False, 0)
        value = total / n
        lo, hi = self.band(n)
        drifted = (not thin) and math.isfinite(hi) and not (lo <= value <= hi)
        return MultivariateDrift(value, lo, hi, bool(drifted), n)


__all__ = ["MultivariateRef"]
