"""Drift detectors: pure, vectorised, no I/O, no clock, no globals.

Two layers. The functions (``psi``, ``ks_2samp_sorted``, ``chi2_two_sample``, …) take
numpy arrays and return numbers; they are what the monitor calls per window. The windowed
detector classes wrap them in :class:`driftline.detectors.base.Detector` (``update(values)``,
``reset()``, ``result()`` returning a frozen :class:`DetectorResult`) with serialisable,
mergeable state. :class:`ChangeDetector` is Driftline's per-record change detector
(Bayesian online change points, the default); :class:`StreamDetector` wraps river's (ADWIN and
friends) behind a NaN guard. Conventions and formulas: ``docs/statistics.md``.
"""

from driftline.detectors.base import Detector, DetectorResult, StatefulDetector
from driftline.detectors.binning import bin_counts, category_counts, finite_mask, finite_values
from driftline.detectors.change import ChangeDetector, ChangeSettings
from driftline.detectors.chi2 import chi2_two_sample, pool_sparse
from driftline.detectors.distances import jensen_shannon, wasserstein, wasserstein_normalised
from driftline.detectors.ks import ks_2samp_sorted, quantile_grid
from driftline.detectors.multiple_testing import benjamini_hochberg
from driftline.detectors.performance import (
    accuracy,
    binary_confusion_estimate,
    calibrate,
    estimated_accuracy,
    fit_calibration,
    mean_confidence,
    mean_entropy,
)
from driftline.detectors.psi import proportions, psi
from driftline.detectors.quantile_rank import (
    quantile_rank,
    quantile_rank_histogram,
    rank_edges,
    rank_histogram,
)
from driftline.detectors.streaming import StreamDetector
from driftline.detectors.windowed import (
    CategoricalPSIDetector,
    Chi2Detector,
    JensenShannonDetector,
    KSDetector,
    PSIDetector,
    WassersteinDetector,
    detector_from_state,
    detectors_for_feature,
)

__all__ = [
    "CategoricalPSIDetector",
    "ChangeDetector",
    "ChangeSettings",
    "Chi2Detector",
    "Detector",
    "DetectorResult",
    "JensenShannonDetector",
    "KSDetector",
    "PSIDetector",
    "StatefulDetector",
    "StreamDetector",
    "WassersteinDetector",
    "accuracy",
    "benjamini_hochberg",
    "bin_counts",
    "binary_confusion_estimate",
    "calibrate",
    "category_counts",
    "chi2_two_sample",
    "detector_from_state",
    "detectors_for_feature",
    "estimated_accuracy",
    "finite_mask",
    "finite_values",
    "fit_calibration",
    "jensen_shannon",
    "ks_2samp_sorted",
    "mean_confidence",
    "mean_entropy",
    "pool_sparse",
    "proportions",
    "psi",
    "quantile_grid",
    "quantile_rank",
    "quantile_rank_histogram",
    "rank_edges",
    "rank_histogram",
    "wasserstein",
    "wasserstein_normalised",
]
