"""The one metric catalogue.

Every metric Driftline exports is named here once. The Prometheus exporter, the OTLP exporter,
the Grafana dashboards, the alert rules and the README's metric table are all derived from this
module, so a name can never differ between them.

Naming follows Prometheus conventions (single ``driftline_`` prefix, base units, counters end in
``_total``). OTel instruments get dotted names without unit words and the unit in ``unit=``; the
standard OTel→Prometheus translation (``.``→``_``, ``_total`` for monotonic sums, nothing added
for gauges with unit ``1``) then yields exactly :attr:`MetricSpec.name`.

>>> FEATURE_PSI.name, FEATURE_PSI.otel_name
('driftline_feature_psi', 'driftline.feature.psi')
>>> RECORDS.name, RECORDS.otel_name
('driftline_records_total', 'driftline.engine.records')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter", "histogram", "info"]

#: Labels carried by every per-model series. ``endpoint`` is KServe's ``default``/``canary``
#: (``default`` when the collector cannot tell), so canary and default can be compared.
MODEL_LABELS: tuple[str, ...] = ("model_name", "model_version", "endpoint")
FEATURE_LABELS: tuple[str, ...] = (*MODEL_LABELS, "feature")

#: Fixed quantile-rank buckets, identical on every replica so counts add up (docs/architecture.md,
#: "Scaling past one replica").
QUANTILE_RANK_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Confidence of the predicted class, in [0, 1].
CONFIDENCE_BUCKETS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
#: Values of the ``metric`` label of the performance gauges (a fixed set: bounded series).
PERFORMANCE_METRICS: tuple[str, ...] = ("accuracy", "roc_auc", "f1", "precision", "recall",
                                        "specificity", "mae", "rmse", "mape", "r2")
#: Error metrics: a larger value is worse (alerts compare them the other way round).
ERROR_METRICS: tuple[str, ...] = ("mae", "rmse", "mape")
#: Proxy overhead and upstream latency, seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

#: Request and response payload sizes, bytes (256 B … 16 MiB).
SIZE_BUCKETS: tuple[float, ...] = (
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its Prometheus name, type, help text, labels and OTel unit."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...]
    otel_name: str
    unit: str = "1"
    buckets: tuple[float, ...] | None = None

    @property
    def sample_name(self) -> str:
        """Name of the sample a PromQL query selects (``_bucket`` etc. come on top for histograms)."""
        return self.name


def _spec(
    name: str,
    type_: MetricType,
    help_: str,
    labels: tuple[str, ...],
    unit: str = "1",
    buckets: tuple[float, ...] | None = None,
) -> MetricSpec:
    # Dotted OTel name: drop "_total" and the unit word, then "driftline.<noun>.<rest>".
    base = name.removesuffix("_total")
    if unit == "s":
        base = base.removesuffix("_seconds")
    elif unit == "By":
        base = base.removesuffix("_bytes")
    otel = "driftline." + base.removeprefix("driftline_").replace("_", ".", 1)
    return MetricSpec(name, type_, help_, labels, otel, unit, buckets)


RECORDS = _spec(
    "driftline_records_total", "counter",
    "Records (one model input row each) seen by the collectors.", (*MODEL_LABELS, "source"),
)
RECORDS_SAMPLED = _spec(
    "driftline_records_sampled_total", "counter",
    "Records passed to the detectors after sampling.", MODEL_LABELS,
)
RECORDS_DROPPED = _spec(
    "driftline_records_dropped_total", "counter",
    "Records or payloads dropped, by reason (queue_full, parse_error, schema_mismatch, "
    "unknown_model, rate_limited, ...). Always names a model: drops that belong to none are "
    "driftline_unattributed_drops_total.", ("model_name", "reason"),
)
UNATTRIBUTED_DROPS = _spec(
    "driftline_unattributed_drops_total", "counter",
    "Records or payloads dropped before any model could be named, by reason: unauthorized or "
    "too_large requests, bodies that name no model (parse_error, schema_mismatch, bad_label), "
    "the collector worker's internal_error outside any model's work.", ("reason",),
)
FEATURE_PSI = _spec(
    "driftline_feature_psi", "gauge",
    "Population stability index of the feature in the last completed window.", FEATURE_LABELS,
)
FEATURE_PSI_CORRECTED = _spec(
    "driftline_feature_psi_corrected", "gauge",
    "PSI minus its expected value without drift at the window's and the reference's size "
    "(clipped at 0): the effect size the drift decision gates on, comparable across window sizes.",
    FEATURE_LABELS,
)
FEATURE_KS_STATISTIC = _spec(
    "driftline_feature_ks_statistic", "gauge",
    "Two-sample Kolmogorov-Smirnov statistic against the reference sample, last window.",
    FEATURE_LABELS,
)
FEATURE_KS_PVALUE = _spec(
    "driftline_feature_ks_pvalue", "gauge",
    "Kolmogorov-Smirnov p-value against the reference sample, last window.", FEATURE_LABELS,
)
FEATURE_CHI2_PVALUE = _spec(
    "driftline_feature_chi2_pvalue", "gauge",
    "Chi-squared two-sample (contingency) p-value of a categorical feature against the "
    "reference counts, last window.", FEATURE_LABELS,
)
FEATURE_JENSEN_SHANNON = _spec(
    "driftline_feature_jensen_shannon", "gauge",
    "Jensen-Shannon distance (base 2, binned) to the reference, last window.", FEATURE_LABELS,
)
FEATURE_WASSERSTEIN = _spec(
    "driftline_feature_wasserstein", "gauge",
    "Wasserstein-1 distance to the reference divided by the reference standard deviation.",
    FEATURE_LABELS,
)
FEATURE_MISSING_RATIO = _spec(
    "driftline_feature_missing_ratio", "gauge",
    "Share of null, NaN or infinite values of the feature in the last window.", FEATURE_LABELS,
)
FEATURE_DRIFTED = _spec(
    "driftline_feature_drifted", "gauge",
    "1 when the feature drifted in the last window (effect size past threshold and significant "
    "after Benjamini-Hochberg), else 0.", FEATURE_LABELS,
)
FEATURE_QUANTILE_RANK = _spec(
    "driftline_feature_quantile_rank", "histogram",
    "Reference quantile rank (reference CDF value) of every sampled value; 10% per bucket "
    "without drift.", FEATURE_LABELS, buckets=QUANTILE_RANK_BUCKETS,
)
FEATURE_CATEGORY = _spec(
    "driftline_feature_category_total", "counter",
    "Sampled values per category (reference top-K plus __other__).", (*FEATURE_LABELS, "category"),
)
FEATURE_REFERENCE_CATEGORY_RATIO = _spec(
    "driftline_feature_reference_category_ratio", "gauge",
    "Share of each category in the reference data (for PromQL PSI across replicas).",
    (*FEATURE_LABELS, "category"),
)
PREDICTION_PSI = _spec(
    "driftline_prediction_psi", "gauge",
    "Population stability index of the model output in the last window.", MODEL_LABELS,
)
PREDICTION_CONFIDENCE = _spec(
    "driftline_prediction_confidence", "histogram",
    "Probability the model gave to its predicted class.", MODEL_LABELS,
    buckets=CONFIDENCE_BUCKETS,
)
PREDICTION_CLASS = _spec(
    "driftline_prediction_class_total", "counter",
    "Predictions per class (classes of the baseline plus __other__).", (*MODEL_LABELS, "class"),
)
MULTIVARIATE_ERROR = _spec(
    "driftline_multivariate_reconstruction_error", "gauge",
    "Mean PCA reconstruction error of the standardised tabular features in the last window "
    "(multivariate drift).", MODEL_LABELS,
)
MULTIVARIATE_UPPER = _spec(
    "driftline_multivariate_reconstruction_error_upper_threshold", "gauge",
    "Upper edge of the reference band of the reconstruction error (mean + 3 std of reference "
    "chunks of the window's size).", MODEL_LABELS,
)
MULTIVARIATE_LOWER = _spec(
    "driftline_multivariate_reconstruction_error_lower_threshold", "gauge",
    "Lower edge of the reference band of the reconstruction error (mean - 3 std, at least 0).",
    MODEL_LABELS,
)
MULTIVARIATE_DRIFTED = _spec(
    "driftline_multivariate_drifted", "gauge",
    "1 when the reconstruction error of the last window left its reference band, else 0.",
    MODEL_LABELS,
)
EMBEDDING_MMD = _spec(
    "driftline_embedding_mmd", "gauge",
    "Squared maximum mean discrepancy (Gaussian kernel) of an embedding feature's window sample "
    "against the reference sample, last window.", FEATURE_LABELS,
)
EMBEDDING_MMD_PVALUE = _spec(
    "driftline_embedding_mmd_pvalue", "gauge",
    "Permutation p-value of the MMD test of an embedding feature, last window.", FEATURE_LABELS,
)
EMBEDDING_COSINE = _spec(
    "driftline_embedding_cosine_distance", "gauge",
    "1 - cosine similarity of the window's and the reference's mean embedding, last window.",
    FEATURE_LABELS,
)
ESTIMATED_ACCURACY = _spec(
    "driftline_estimated_accuracy", "gauge",
    "Label-free accuracy estimate (confidence-based performance estimation), last window.",
    MODEL_LABELS,
)
REFERENCE_ACCURACY = _spec(
    "driftline_reference_accuracy", "gauge",
    "Accuracy of the model on the reference data.", MODEL_LABELS,
)
ACCURACY = _spec(
    "driftline_accuracy", "gauge",
    "Realised accuracy over the last window of joined labels.", MODEL_LABELS,
)
ESTIMATED_PERFORMANCE = _spec(
    "driftline_estimated_performance", "gauge",
    "Label-free performance estimate of the last window, by metric (classifiers: CBPE accuracy, "
    "roc_auc, f1, precision, recall, specificity; regressors: direct loss estimation mae, rmse).",
    (*MODEL_LABELS, "metric"),
)
PERFORMANCE = _spec(
    "driftline_performance", "gauge",
    "Realised performance by metric over the last window of joined labels (accuracy, f1, "
    "precision, recall, specificity, roc_auc where probabilities are labelled; mae, rmse, mape, r2).",
    (*MODEL_LABELS, "metric"),
)
REFERENCE_PERFORMANCE = _spec(
    "driftline_reference_performance", "gauge",
    "Realised performance on the reference data, by metric.", (*MODEL_LABELS, "metric"),
)
LABELS = _spec(
    "driftline_labels_total", "counter",
    "Delayed labels received (matched: whether a stored prediction was found).",
    (*MODEL_LABELS, "matched"),
)
CHANGE_DETECTIONS = _spec(
    "driftline_change_detections_total", "counter",
    "Changes detected by ChangeDetector on a per-record stream (signal: error, confidence, or "
    "feature:<name>).", (*MODEL_LABELS, "signal"),
)
CHANGE_POINT_TIME = _spec(
    "driftline_change_point_timestamp_seconds", "gauge",
    "When the latest change detected on a per-record stream began (its estimated start, Unix "
    "seconds of the batch that held it; signal as for driftline_change_detections_total).",
    (*MODEL_LABELS, "signal"), unit="s",
)
WINDOW_RECORDS = _spec(
    "driftline_window_records", "gauge",
    "Records in the last completed window.", MODEL_LABELS,
)
WINDOWS = _spec(
    "driftline_windows_total", "counter",
    "Windows completed.", MODEL_LABELS,
)
WINDOW_END = _spec(
    "driftline_window_end_timestamp_seconds", "gauge",
    "Unix time at which the last window closed.", MODEL_LABELS, unit="s",
)
QUEUE_DEPTH = _spec(
    "driftline_queue_depth", "gauge",
    "Records waiting in the collector queue.", (),
)
QUEUE_CAPACITY = _spec(
    "driftline_queue_capacity", "gauge",
    "Capacity of the collector queue, in records.", (),
)
SERIES_CAPPED = _spec(
    "driftline_series_capped_total", "counter",
    "Label values folded into __other__ because a cardinality cap was reached.", ("label",),
)
PROXY_DURATION = _spec(
    "driftline_proxy_request_duration_seconds", "histogram",
    "Time from request received to response sent by the reverse proxy, upstream included.",
    ("code",), unit="s", buckets=LATENCY_BUCKETS,
)
#: The ``kind`` values of PROXY_UPSTREAM_ERRORS (each exported from start, at 0).
PROXY_ERROR_KINDS: tuple[str, ...] = ("unavailable", "connect_timeout", "reset", "timeout")
PROXY_UPSTREAM_ERRORS = _spec(
    "driftline_proxy_upstream_errors_total", "counter",
    "Requests the reverse proxy could not relay, by kind: unavailable (connection refused, "
    "unreachable, unresolvable), connect_timeout, reset (closed or reset before its first "
    "response), timeout (no upstream bytes within proxy.timeout).", ("kind",),
)
PROXY_TUNNELLED = _spec(
    "driftline_proxy_tunnelled_connections_total", "counter",
    "Proxy connections relayed unparsed from some point on (upgrades, CONNECT, malformed HTTP): "
    "their later exchanges are not sampled.", (),
)
PROXY_TEE_ERRORS = _spec(
    "driftline_proxy_tee_errors_total", "counter",
    "Sampled exchanges the proxy failed to hand to the collector (the request itself is "
    "unaffected).", (),
)
# Service health next to model health: what the proxy and the payload logger see per model.
MODEL_REQUESTS = _spec(
    "driftline_model_requests_total", "counter",
    "Inference requests per model, by HTTP status class (code: 2xx..5xx; unknown when the "
    "payload logger saw a request without its response).", (*MODEL_LABELS, "code"),
)
MODEL_REQUEST_DURATION = _spec(
    "driftline_model_request_duration_seconds", "histogram",
    "Inference request latency per model as the proxy measured it, upstream included.",
    ("model_name", "endpoint"), unit="s", buckets=LATENCY_BUCKETS,
)
MODEL_REQUEST_SIZE = _spec(
    "driftline_model_request_size_bytes", "histogram",
    "Inference request body sizes per model.", ("model_name",), unit="By", buckets=SIZE_BUCKETS,
)
MODEL_RESPONSE_SIZE = _spec(
    "driftline_model_response_size_bytes", "histogram",
    "Inference response body sizes per model, as the proxy relayed them or the payload logger "
    "received them.", ("model_name",), unit="By",
    buckets=SIZE_BUCKETS,
)
EXPORT_ERRORS = _spec(
    "driftline_export_errors_total", "counter",
    "Failed OTLP exports.", ("exporter",),
)
#: ``baseline_source`` of a baseline that records neither a revision nor a content hash (built
#: before provenance was recorded, or by hand): a value, because Prometheus reads an empty label
#: as no label while OTLP keeps it, and the two exports must show the same series.
UNKNOWN_SOURCE = "unknown"

BUILD_INFO = _spec(
    "driftline_build_info", "gauge",
    "Always 1; labels carry the Driftline version, the baseline id of each model and the "
    "reference data it was built from (baseline_source: the --source-revision given at build "
    "time, else the first 12 hex digits of the data's content hash, else unknown).",
    ("version", "model_name", "model_version", "baseline_id", "baseline_source"),
)

# The Alertmanager webhook receiver (`driftline actions serve`) exposes these on its own /metrics.
# They are kept out of ALL because they are not per-model sidecar series.
ACTIONS = _spec(
    "driftline_actions_total", "counter",
    "Alerts handled by the webhook receiver, by action label and outcome (queued, acted, failed, "
    "retrying, deduplicated, cooling_down, dry_run, resolved, no_action).", ("action", "outcome"),
)
RECEIVER_ALERTS = _spec(
    "driftline_receiver_alerts_total", "counter",
    "Alerts received by the webhook receiver, by alert status (firing, resolved).", ("status",),
)
RECEIVER_REFUSED = _spec(
    "driftline_receiver_refused_requests_total", "counter",
    "Webhook requests refused (reason: unauthorized, malformed, too_large, tls, timeout: not "
    "received within the read deadline, busy: connection limit reached).", ("reason",),
)
RECEIVER_QUEUE_DEPTH = _spec(
    "driftline_receiver_queue_depth", "gauge",
    "Actions waiting in the receiver's durable queue (pending or running).", (),
)
RECEIVER_METRICS: tuple[MetricSpec, ...] = (ACTIONS, RECEIVER_ALERTS, RECEIVER_REFUSED,
                                            RECEIVER_QUEUE_DEPTH)

ALL: tuple[MetricSpec, ...] = (
    RECORDS, RECORDS_SAMPLED, RECORDS_DROPPED, UNATTRIBUTED_DROPS,
    FEATURE_PSI, FEATURE_PSI_CORRECTED, FEATURE_KS_STATISTIC, FEATURE_KS_PVALUE, FEATURE_CHI2_PVALUE,
    FEATURE_JENSEN_SHANNON, FEATURE_WASSERSTEIN, FEATURE_MISSING_RATIO, FEATURE_DRIFTED,
    FEATURE_QUANTILE_RANK, FEATURE_CATEGORY, FEATURE_REFERENCE_CATEGORY_RATIO,
    PREDICTION_PSI, PREDICTION_CONFIDENCE, PREDICTION_CLASS,
    MULTIVARIATE_ERROR, MULTIVARIATE_UPPER, MULTIVARIATE_LOWER, MULTIVARIATE_DRIFTED,
    EMBEDDING_MMD, EMBEDDING_MMD_PVALUE, EMBEDDING_COSINE,
    ESTIMATED_ACCURACY, REFERENCE_ACCURACY, ACCURACY,
    ESTIMATED_PERFORMANCE, PERFORMANCE, REFERENCE_PERFORMANCE, LABELS, CHANGE_DETECTIONS, CHANGE_POINT_TIME,
    WINDOW_RECORDS, WINDOWS, WINDOW_END, QUEUE_DEPTH, QUEUE_CAPACITY, SERIES_CAPPED,
    PROXY_DURATION, PROXY_UPSTREAM_ERRORS, PROXY_TUNNELLED, PROXY_TEE_ERRORS,
    MODEL_REQUESTS, MODEL_REQUEST_DURATION, MODEL_REQUEST_SIZE, MODEL_RESPONSE_SIZE,
    EXPORT_ERRORS, BUILD_INFO,
)

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in ALL}


def markdown_table() -> str:
    """The README's metric table, generated so it cannot drift from the exporters."""
    rows = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    for m in ALL:
        labels = ", ".join(f"`{lab}`" for lab in m.labels) or "—"
        rows.append(f"| `{m.name}` | {m.type} | {labels} | {m.help} |")
    return "\n".join(rows)
