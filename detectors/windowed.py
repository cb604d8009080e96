"""Windowed detectors: thin stateful wrappers over the pure functions, one per statistic.

Each follows :class:`driftline.detectors.base.Detector` (``update`` / ``reset`` / ``result``).
Binned detectors keep only counts, so their state is tiny, serialisable and *mergeable*: counts
from any number of replicas or sub-windows add up, and ``a.merge(b)`` equals one detector fed
both batches. Sample detectors (KS, Wasserstein) keep the window's valid values; merging
concatenates them, which is also exact.

A detector that has seen no valid value reports ``statistic = NaN``, ``n = 0`` and
``drifted = False``: "no data" is visible as such, never reported as "no drift".

>>> det = PSIDetector(edges=[0.0], reference=[0.5, 0.5])
>>> det.update(np.array([-1.0, 1.0, 2.0, np.nan]))
>>> r = det.result()
>>> (round(r.statistic, 4), r.n, r.n_invalid, r.drifted)
(0.1155, 3, 1, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from driftline.detectors.base import DetectorResult
from driftline.detectors.binning import bin_counts, category_counts, finite_values
from driftline.detectors.chi2 import chi2_two_sample
from driftline.detectors.distances import jensen_shannon, wasserstein_normalised
from driftline.detectors.ks import ks_2samp_sorted
from driftline.detectors.psi import psi
from driftline.profile.format import CategoricalFeature, NumericFeature

__all__ = [
    "CategoricalPSIDetector",
    "Chi2Detector",
    "JensenShannonDetector",
    "KSDetector",
    "PSIDetector",
    "WassersteinDetector",
    "detector_from_state",
    "detectors_for_feature",
]

STATE_VERSION = 1


def _floats(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite numbers")
    return arr


def _check_shares(reference: np.ndarray, slots: int, what: str) -> None:
    if reference.size != slots:
        raise ValueError(f"{what}: reference has {reference.size} shares but there are {slots} slots")
    if (reference < 0).any() or not reference.sum() > 0:
        raise ValueError(f"{what}: reference shares must be ≥ 0 with a positive sum")


def _above(statistic: float, threshold: float) -> bool:
    return not math.isnan(statistic) and statistic >= threshold


def _below(p_value: float, alpha: float) -> bool:
    return not math.isnan(p_value) and p_value < alpha


class _Counting:
    """Shared state of binned detectors: per-slot counts and the number of missing values."""

    kind: ClassVar[str]

    def __init__(self, slots: int) -> None:
        self._slots = slots
        self._counts = np.zeros(slots, dtype=np.int64)
        self._n_invalid = 0

    def _count(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def update(self, values: np.ndarray) -> None:
        arr = np.atleast_1d(np.asarray(values))
        counts = self._count(arr)
        self._counts += counts
        self._n_invalid += int(arr.size - counts.sum())

    def reset(self) -> None:
        self._counts = np.zeros(self._slots, dtype=np.int64)
        self._n_invalid = 0

    @property
    def counts(self) -> np.ndarray:
        """A copy of the per-slot counts since the last reset."""
        return self._counts.copy()

    @property
    def n(self) -> int:
        return int(self._counts.sum())

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        """JSON-able state: configuration plus counts; :func:`detector_from_state` restores it."""
        return {"kind": self.kind, "version": STATE_VERSION, **self._config(),
                "counts": self._counts.tolist(), "n_invalid": self._n_invalid}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        if state.get("kind") != cls.kind or state.get("version") != STATE_VERSION:
            raise ValueError(f"not a {cls.kind} detector state (version {STATE_VERSION})")
        config = {k: v for k, v in state.items() if k not in ("kind", "version", "counts", "n_invalid")}
        det = cls(**config)
        counts = np.asarray(state["counts"], dtype=np.int64)
        if counts.shape != det._counts.shape or (counts < 0).any():
            raise ValueError(f"{cls.kind} state: counts do not fit the configured slots")
        det._counts = counts
        det._n_invalid = int(state["n_invalid"])
        return det

    def merge(self, other: Self) -> Self:
        """A new detector holding both detectors' data (same configuration required)."""
        if type(other) is not type(self) or other._config() != self._config():
            raise ValueError(f"cannot merge {self.kind} detectors with different configurations")
        state = self.to_state()
        state["counts"] = (self._counts + other._counts).tolist()
        state["n_invalid"] = self._n_invalid + other._n_invalid
        return type(self).from_state(state)


class _NumericBins(_Counting):
    def __init__(self, edges: Sequence[float], reference: Sequence[float]) -> None:
        self.edges = _floats(edges, "edges")
        if (np.diff(self.edges) <= 0).any():
            raise ValueError("edges must be strictly increasing (merge duplicates when building bins)")
        self.reference = _floats(reference, "reference")
        _check_shares(self.reference, self.edges.size + 1, self.kind)
        super().__init__(self.edges.size + 1)

    def _count(self, values: np.ndarray) -> np.ndarray:
        return bin_counts(values, self.edges)


class _CategoryBins(_Counting):
    def __init__(self, categories: Sequence[str], reference: Sequence[float]) -> None:
        self.categories = tuple(str(c) for c in categories)
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must be distinct")
        self.reference = _floats(reference, "reference")
        _check_shares(self.reference, len(self.categories) + 1, self.kind)
        super().__init__(len(self.categories) + 1)

    def _count(self, values: np.ndarray) -> np.ndarray:
        return category_counts(values, self.categories)


class PSIDetector(_NumericBins):
    """PSI of a numeric feature over the profile's bins; drift when PSI ≥ ``threshold``."""

    kind = "psi"

    def __init__(self, edges: Sequence[float], reference: Sequence[float], threshold: float = 0.1,
                 floor: float = 1e-4) -> None:
        super().__init__(edges, reference)
        self.threshold = float(threshold)
        self.floor = float(floor)

    def _config(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "reference": self.reference.tolist(),
                "threshold": self.threshold, "floor": self.floor}

    def result(self) -> DetectorResult:
        stat = psi(self.reference, self._counts, self.floor)
        return DetectorResult(stat, None, self.threshold, _above(stat, self.threshold), self.n,
                              self._n_invalid)


class JensenShannonDetector(_NumericBins):
    """Binned Jensen–Shannon distance (base 2); drift when ≥ ``threshold`` (Evidently's 0.1)."""

    kind = "jensen_shannon"

    def __init__(self, edges: Sequence[float], reference: Sequence[float],
                 threshold: float = 0.1) -> None:
        super().__init__(edges, reference)
        self.threshold = float(threshold)

    def _config(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "reference": self.reference.tolist(),
                "threshold": self.threshold}

    def result(self) -> DetectorResult:
        stat = jensen_shannon(self.reference, self._counts)
        return DetectorResult(stat, None, self.threshold, _above(stat, self.threshold), self.n,
                              self._n_invalid)


class CategoricalPSIDetector(_CategoryBins):
    """PSI over the reference categories plus ``__other__``; drift when PSI ≥ ``threshold``."""

    kind = "categorical_psi"

    def __init__(self, categories: Sequence[str], reference: Sequence[float], threshold: float = 0.1,
                 floor: float = 1e-4) -> None:
        super().__init__(categories, reference)
        self.threshold = float(threshold)
        self.floor = float(floor)

    def _config(self) -> dict[str, Any]:
        return {"categories": list(self.categories), "reference": self.reference.tolist(),
                "threshold": self.threshold, "floor": self.floor}

    def result(self) -> DetectorResult:
        stat = psi(self.reference, self._counts, self.floor)
        return DetectorResult(stat, None, self.threshold, _above(stat, self.threshold), self.n,
                              self._n_invalid)


class Chi2Detector(_CategoryBins):
    """χ² contingency test of window counts against reference *counts* (a finite sample, so
    ``reference`` must be counts, not shares: :mod:`driftline.detectors.chi2`); drift when
    p < ``alpha``."""

    kind = "chi2"

    def __init__(self, categories: Sequence[str], reference: Sequence[float],
                 alpha: float = 0.05) -> None:
        super().__init__(categories, reference)
        self.alpha = float(alpha)

    def _config(self) -> dict[str, Any]:
        return {"categories": list(self.categories), "reference": self.reference.tolist(),
                "alpha": self.alpha}

    def result(self) -> DetectorResult:
        stat, p = chi2_two_sample(self.reference, self._counts)
        return DetectorResult(stat, p, self.alpha, _below(p, self.alpha), self.n, self._n_invalid)


class _Sampling:
    """Shared state of sample detectors: the window's valid values."""

    kind: ClassVar[str]

    def __init__(self, reference_sorted: Sequence[float] | np.ndarray) -> None:
        ref = _floats(reference_sorted, "reference_sorted")
        if ref.size == 0:
            raise ValueError(f"{self.kind}: the reference sample is empty")
        if (np.diff(ref) < 0).any():
            raise ValueError(f"{self.kind}: reference_sorted must be sorted ascending")
        self.reference_sorted = ref
        self._parts: list[np.ndarray] = []
        self._n = 0
        self._n_invalid = 0

    def update(self, values: np.ndarray) -> None:
        kept, skipped = finite_values(np.atleast_1d(np.asarray(values)))
        if kept.size:
            self._parts.append(kept.copy())
            self._n += kept.size
        self._n_invalid += skipped

    def reset(self) -> None:
        self._parts = []
        self._n = 0
        self._n_invalid = 0

    @property
    def values(self) -> np.ndarray:
        """The valid values seen since the last reset, in arrival order."""
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts)]
        return self._parts[0].copy() if self._parts else np.empty(0)

    @property
    def n(self) -> int:
        return self._n

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        """JSON-able state: configuration plus the window's values."""
        return {"kind": self.kind, "version": STATE_VERSION, **self._config(),
                "values": self.values.tolist(), "n_invalid": self._n_invalid}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        if state.get("kind") != cls.kind or state.get("version") != STATE_VERSION:
            raise ValueError(f"not a {cls.kind} detector state (version {STATE_VERSION})")
        config = {k: v for k, v in state.items() if k not in ("kind", "version", "values", "n_invalid")}
        det = cls(**config)
        det.update(np.asarray(state["values"], dtype=np.float64))
        det._n_invalid = int(state["n_invalid"])
        return det

    def merge(self, other: Self) -> Self:
        """A new detector holding both windows (same configuration required)."""
        if type(other) is not type(self) or other._config() != self._config():
            raise ValueError(f"cannot merge {self.kind} detectors with different configurations")
        state = self.to_state()
        state["values"] = np.concatenate([self.values, other.values]).tolist()
        state["n_invalid"] = self._n_invalid + other._n_invalid
        return type(self).from_state(state)


class KSDetector(_Sampling):
    """Two-sample KS against the reference sample (== scipy ``ks_2samp``); drift when p < ``alpha``.

    ``n_reference``: how many reference values the sample stands for (a profile's quantile grid
    summarises ``count`` values); the p-value uses it. None: the sample's own size."""

    kind = "ks"

    def __init__(self, reference_sorted: Sequence[float] | np.ndarray, alpha: float = 0.05,
                 n_reference: int | None = None) -> None:
        super().__init__(reference_sorted)
        self.alpha = float(alpha)
        self.n_reference = None if n_reference is None else int(n_reference)

    def _config(self) -> dict[str, Any]:
        return {"reference_sorted": self.reference_sorted.tolist(), "alpha": self.alpha,
                "n_reference": self.n_reference}

    def result(self) -> DetectorResult:
        d, p = ks_2samp_sorted(self.reference_sorted, self.values, self.n_reference)
        return DetectorResult(d, p, self.alpha, _below(p, self.alpha), self._n, self._n_invalid)


class WassersteinDetector(_Sampling):
    """Wasserstein-1 / reference std; drift when ≥ ``threshold`` (Evidently's 0.1)."""

    kind = "wasserstein"

    def __init__(self, reference_sorted: Sequence[float] | np.ndarray, reference_std: float,
                 threshold: float = 0.1) -> None:
        super().__init__(reference_sorted)
        self.reference_std = float(reference_std)
        self.threshold = float(threshold)

    def _config(self) -> dict[str, Any]:
        return {"reference_sorted": self.reference_sorted.tolist(),
                "reference_std": self.reference_std, "threshold": self.threshold}

    def result(self) -> DetectorResult:
        stat = wasserstein_normalised(self.reference_sorted, self.values, self.reference_std)
        return DetectorResult(stat, None, self.threshold, _above(stat, self.threshold), self._n,
                              self._n_invalid)


_KINDS: dict[str, type[_Counting] | type[_Sampling]] = {
    cls.kind: cls for cls in (PSIDetector, JensenShannonDetector, CategoricalPSIDetector,
                              Chi2Detector, KSDetector, WassersteinDetector)
}


def detector_from_state(state: dict[str, Any]) -> _Counting | _Sampling:
    """Rebuild any windowed detector from its ``to_state()``."""
    kind = state.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown detector state kind {kind!r}; known: {sorted(_KINDS)}")
    return _KINDS[kind].from_state(state)



def detectors_for_feature(feature: NumericFeature | CategoricalFeature, *, psi_threshold: float = 0.1,
                          alpha: float = 0.05, distance_threshold: float = 0.1,
                          floor: float = 1e-4) -> dict[str, _Counting | _Sampling]:
    """The standard detectors for one profiled feature, keyed by statistic name.

    Numeric: ``psi``, ``jensen_shannon`` (on the profile's bins) and, when the profile has a
    reference summary, ``ks`` and ``wasserstein``. Categorical: ``psi`` and ``chi2`` over the
    top-K categories plus ``__other__`` (χ² against the reference counts).
    """
    if isinstance(feature, CategoricalFeature):
        return {
            "psi": CategoricalPSIDetector(feature.categories, feature.proportions, psi_threshold, floor),
            "chi2": Chi2Detector(feature.categories, feature.counts_array.tolist(), alpha),
        }
    out: dict[str, _Counting | _Sampling] = {
        "psi": PSIDetector(feature.edges, feature.proportions, psi_threshold, floor),
        "jensen_shannon": JensenShannonDetector(feature.edges, feature.proportions, distance_threshold),
    }
    if len(feature.summary):
        out["ks"] = KSDetector(feature.summary, alpha, feature.count)
        out["wasserstein"] = WassersteinDetector(feature.summary, feature.std, distance_threshold)
    return out
