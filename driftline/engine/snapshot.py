"""Immutable results: one window's report and a model's current snapshot.

A :class:`WindowReport` is what ``driftline analyze`` prints per window (its ``to_dict`` is the
JSON contract). A :class:`ModelSnapshot` is what exporters read at scrape/export time: the last
completed window plus cumulative counters and histograms since the monitor started. Both are
frozen so that a scrape in one thread can read them while the monitor builds the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from driftline.catalogue import CONFIDENCE_BUCKETS, QUANTILE_RANK_BUCKETS, UNKNOWN_SOURCE


def _f(v: float | None) -> float | None:
    """JSON-safe float: NaN/inf become None."""
    if v is None or v != v or v in (float("inf"), float("-inf")):
        return None
    return float(v)


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature in one window. Statistics not defined for the type are None."""

    name: str
    type: Literal["numeric", "categorical"]
    psi: float
    jensen_shannon: float
    missing_ratio: float
    n: int
    n_missing: int
    drifted: bool
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    chi2_statistic: float | None = None
    chi2_pvalue: float | None = None
    p_value_adjusted: float | None = None
    #: The window's counts in the reference's bins (numeric: ``len(edges) + 1`` decile bins;
    #: categorical: the kept categories then ``__other__``), the counts PSI is computed on. For
    #: reports that draw reference vs window; not part of the JSON contract.
    window_counts: tuple[int, ...] = ()
    #: PSI minus its expectation without drift at this window and reference size (the gate)
    psi_corrected: float | None = None
    #: fewer valid values than ``min_records``: statistics only, no decision
    insufficient_data: bool = False

    @property
    def decision(self) -> Literal["drift", "no_drift", "insufficient_data"]:
        if self.insufficient_data:
            return "insufficient_data"
        return "drift" if self.drifted else "no_drift"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "psi": _f(self.psi),
                             "psi_corrected": _f(self.psi_corrected)}
        if self.type == "numeric":
            d.update(ks_statistic=_f(self.ks_statistic), ks_pvalue=_f(self.ks_pvalue),
                     jensen_shannon=_f(self.jensen_shannon), wasserstein=_f(self.wasserstein))
        else:
            d.update(chi2_statistic=_f(self.chi2_statistic), chi2_pvalue=_f(self.chi2_pvalue),
                     jensen_shannon=_f(self.jensen_shannon))
        d.update(missing_ratio=_f(self.missing_ratio), p_value_adjusted=_f(self.p_value_adjusted),
                 n=self.n, n_missing=self.n_missing, drifted=self.drifted,
                 decision=self.decision)
        return d


@dataclass(frozen=True)
class PredictionDrift:
    """Drift of the model output in one window."""

    psi: float
    drifted: bool
    n: int
    class_shares: dict[str, float] = field(default_factory=dict)
    mean_confidence: float | None = None
    mean_entropy: float | None = None
    psi_corrected: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"psi": _f(self.psi), "psi_corrected": _f(self.psi_corrected),
                "drifted": self.drifted, "n": self.n,
                "class_shares": {k: _f(v) for k, v in self.class_shares.items()},
                "mean_confidence": _f(self.mean_confidence),
                "mean_entropy": _f(self.mean_entropy)}


@dataclass(frozen=True)
class Performance:
    """Estimated (label-free) and realised performance in one window.

    ``estimated`` and ``realised`` map metric names (``accuracy``, ``roc_auc``, ``f1``,
    ``precision``, ``recall``, ``specificity`` for a classifier; ``mae``, ``rmse``, ``mape``,
    ``r2`` for a regressor) to values: only the metrics that apply to the model are keys, NaN
    (null in JSON) where the window cannot have one.
    """

    estimated_accuracy: float | None
    accuracy: float | None
    labels: int
    reference_accuracy: float | None = None
    estimated_precision: float | None = None
    estimated_recall: float | None = None
    estimated_f1: float | None = None
    estimated: dict[str, float] = field(default_factory=dict)
    realised: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"estimated_accuracy": _f(self.estimated_accuracy), "accuracy": _f(self.accuracy),
                "labels": self.labels, "reference_accuracy": _f(self.reference_accuracy),
                "estimated_precision": _f(self.estimated_precision),
                "estimated_recall": _f(self.estimated_recall),
                "estimated_f1": _f(self.estimated_f1),
                "estimated": {k: _f(v) for k, v in self.estimated.items()},
                "realised": {k: _f(v) for k, v in self.realised.items()}}


@dataclass(frozen=True)
class MultivariateDrift:
    """PCA reconstruction error of one window against its reference band (NannyML's method).

    ``domain_classifier_auc`` is filled only by ``driftline analyze`` (cross-validated AUC of a
    classifier telling reference rows from window rows; None when scikit-learn is absent)."""

    reconstruction_error: float
    lower_threshold: float
    upper_threshold: float
    drifted: bool
    n: int
    domain_classifier_auc: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "reconstruction_error": _f(self.reconstruction_error),
            "lower_threshold": _f(self.lower_threshold),
            "upper_threshold": _f(self.upper_threshold), "drifted": self.drifted,
            "domain_classifier_auc": _f(self.domain_classifier_auc), "n": self.n}
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True)
class EmbeddingDrift:
    """Drift of one vector feature in one window.

    ``mmd``/``mmd_pvalue``: the Gaussian-kernel MMD² test of a bounded window sample
    (``mmd_window`` vectors) against the reference sample (``mmd_reference`` vectors);
    ``cosine_distance``: 1 - cosine of the window's and the reference's mean vectors (all valid
    vectors). ``n_missing`` counts null vectors and invalid ones (wrong length, NaN, infinity)."""

    name: str
    mmd: float
    mmd_pvalue: float
    cosine_distance: float
    drifted: bool
    n: int
    n_missing: int
    mmd_window: int = 0
    mmd_reference: int = 0
    mmd_age: int = 0

    @property
    def missing_ratio(self) -> float:
        total = self.n + self.n_missing
        return self.n_missing / total if total else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "embedding", "mmd": _f(self.mmd), "mmd_pvalue": _f(self.mmd_pvalue),
                "cosine_distance": _f(self.cosine_distance), "drifted": self.drifted,
                "n": self.n, "n_missing": self.n_missing,
                "missing_ratio": _f(self.missing_ratio), "mmd_window": self.mmd_window,
                "mmd_reference": self.mmd_reference, "mmd_age": self.mmd_age}


@dataclass(frozen=True)
class WindowReport:
    """One completed window. ``start``/``end`` are Unix seconds (record timestamps when the data
    has them, else arrival time), or None in offline analysis without timestamps."""

    index: int
    records: int
    start: float | None
    end: float | None
    features: dict[str, FeatureDrift]
    prediction: PredictionDrift | None
    performance: Performance
    drifted: bool
    multivariate: MultivariateDrift | None = None
    #: Vector features by name (in ``to_dict`` they join ``features`` with type "embedding").
    embeddings: dict[str, EmbeddingDrift] = field(default_factory=dict)
    #: Data-quality failures found by ``driftline analyze`` (a feature entirely missing, target
    #: labels the reference never had); empty when the data is sound.
    data_quality: tuple[str, ...] = ()
    #: fewer records than ``min_records``: reported, but no drift decision
    insufficient_data: bool = False

    def to_dict(self) -> dict[str, Any]:
        features = {k: v.to_dict() for k, v in self.features.items()}
        features.update({k: v.to_dict() for k, v in self.embeddings.items()})
        d: dict[str, Any] = {"index": self.index, "records": self.records, "start": _f(self.start),
             "end": _f(self.end), "features": features,
             "prediction": None if self.prediction is None else self.prediction.to_dict(),
             "performance": self.performance.to_dict(), "drifted": self.drifted,
             "decision": ("insufficient_data" if self.insufficient_data
                          else "drift" if self.drifted else "no_drift")}
        if self.multivariate is not None:
            d["multivariate"] = self.multivariate.to_dict()
        if self.data_quality:
            d["data_quality"] = list(self.data_quality)
        return d


@dataclass(frozen=True)
class Histogram:
    """A classic histogram with per-bucket (not cumulative) counts.

    ``counts`` has ``len(bounds) + 1`` entries: ``counts[i]`` holds values in
    ``(bounds[i-1], bounds[i]]`` and the last one the ``+Inf`` overflow. Exporters cumulate them
    into Prometheus ``le`` buckets."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(bounds, (0,) * (len(bounds) + 1), 0.0, 0)


def empty_quantile_rank() -> Histogram:
    return Histogram.empty(QUANTILE_RANK_BUCKETS)


def empty_confidence() -> Histogram:
    return Histogram.empty(CONFIDENCE_BUCKETS)


@dataclass(frozen=True)
class ModelSnapshot:
    """Current state of one monitor (model, version, endpoint), for exporters.

    Counters and histograms are cumulative since the monitor started (Prometheus semantics);
    gauges describe ``last_window``.
    """

    model_name: str
    model_version: str
    endpoint: str
    baseline_id: str
    last_window: WindowReport | None
    windows_total: int
    records_by_source: dict[str, int]
    records_sampled: int
    quantile_rank: dict[str, Histogram]
    categories: dict[str, dict[str, int]]
    reference_categories: dict[str, dict[str, float]]
    prediction_confidence: Histogram | None
    prediction_classes: dict[str, int]
    labels: dict[str, int]
    change_detections: dict[str, int]
    reference_accuracy: float | None
    accuracy: float | None
    estimated_accuracy: float | None
    last_window_end: float | None
    #: Last label-free estimates by metric (``driftline_estimated_performance``).
    estimated_performance: dict[str, float] = field(default_factory=dict)
    #: Realised metrics of the joined labels, else of the last window's labels.
    performance: dict[str, float] = field(default_factory=dict)
    reference_performance: dict[str, float] = field(default_factory=dict)
    #: Which reference data the baseline came from (``BaselineProfile.source_label``).
    baseline_source: str = UNKNOWN_SOURCE
    #: Per signal: Unix seconds when the latest detected change began (estimated start).
    change_points: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SidecarStats:
    """Process-wide collector state for exporters (not per model).

    ``dropped`` maps ``(model_name, reason)`` to a cumulative count (model_name ``""`` when the
    payload could not be attributed; exported as ``driftline_unattributed_drops_total``, never
    as an empty label). ``proxy_latency`` maps the HTTP status class label
    (``2xx``…``5xx``) to a seconds histogram with :data:`~driftline.catalogue.LATENCY_BUCKETS`.
    ``series_capped`` maps a label name to how many values were folded into ``__other__``.
    ``proxy_errors`` maps an upstream failure kind to the requests the proxy answered itself
    (or cut); ``proxy_tunnelled`` and ``proxy_tee_errors`` count connections relayed unparsed
    and samples lost between the proxy and the collector (None when no proxy runs).
    """

    queue_depth: int = 0
    queue_capacity: int = 0
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)
    proxy_latency: dict[str, Histogram] = field(default_factory=dict)
    series_capped: dict[str, int] = field(default_factory=dict)
    export_errors: dict[str, int] = field(default_factory=dict)
    proxy_errors: dict[str, int] = field(default_factory=dict)
    proxy_tunnelled: int | None = None  # None: no proxy runs
    proxy_tee_errors: int | None = None
    requests: RequestStats | None = None


@dataclass(frozen=True)
class RequestStats:
    """Per-model service health, cumulative since start (see collectors/request_metrics.py).

    ``counts`` maps (model_name, model_version, endpoint, code class) to requests; an empty
    version means "the configured one". ``latency`` maps (model_name, endpoint) to a seconds
    histogram; ``request_size``/``response_size`` map model_name to a bytes histogram.
    """

    counts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    latency: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    request_size: dict[str, Histogram] = field(default_factory=dict)
    response_size: dict[str, Histogram] = field(default_factory=dict)


class SnapshotSource:
    """What exporters read at scrape/export time; the sidecar implements it."""

    def snapshots(self) -> list[ModelSnapshot]:  # pragma: no cover - interface
        raise NotImplementedError

    def sidecar_stats(self) -> SidecarStats:  # pragma: no cover - interface
        raise NotImplementedError
