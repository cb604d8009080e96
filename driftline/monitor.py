"""The monitor: one per (model, version, endpoint); windows, detectors and snapshots.

A monitor owns a baseline profile and the detectors built from it. Collectors hand it
:class:`~driftline.records.RecordBatch` objects; it cuts them into windows (by record count and by
age, whichever comes first), runs every detector on each closed window in vectorised numpy, and
keeps cumulative counters (quantile-rank histograms, category counts, confidence histogram,
labels, ADWIN detections). ``snapshot()`` returns an immutable view for exporters and is safe to
call from another thread.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPolicy:
    """When a window closes: after ``records`` records or ``max_age`` seconds, whichever first.

    ``max_age`` None means count-only windows (offline analysis). A window closed by age with
    fewer than ``min_records`` records is still reported, with its size, so thin traffic is
    visible rather than hidden.
    """

    records: int = 1000
    max_age: float | None = 300.0
    min_records: int = 1


@dataclass(frozen=True)
class DriftPolicy:
    """The drift decision (DESIGN.md §4).

    A feature is drifted when its effect size passes ``psi_threshold`` AND its test p-value
    (KS for numeric, chi-squared for categorical), after Benjamini–Hochberg correction across the
    model's features in that window, is below ``alpha``. ``require_significance=False`` decides on
    the effect size alone. A window is drifted when any feature (or the prediction) drifted.
    """

    psi_threshold: float = 0.1
    alpha: float = 0.05
    require_significance: bool = True
    prediction_psi_threshold: float = 0.1
    adwin_delta: float = 0.002
    adwin_features: bool = False
