"""OTLP metrics: pre-aggregated points from the snapshots, pushed on a background thread.

Driftline does not call OpenTelemetry instruments per value (about 10 µs each). It builds the
OTLP data model directly from :func:`~driftline.exporters.points.build_points` — the same
points the Prometheus collector renders — and hands a ``MetricsData`` to the SDK's
``OTLPMetricExporter.export()`` every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60000).

Configuration, explicit arguments first, then the standard environment variables:

- protocol: ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL``
  (``http/protobuf`` default, ``grpc`` with ``pip install 'driftline[grpc]'``). The SDK honours
  these only under auto-instrumentation, so Driftline reads them itself.
- endpoint, headers, compression, TLS: ``OTEL_EXPORTER_OTLP_[METRICS_]*``, read by the SDK
  exporter (``..._COMPRESSION`` ``gzip`` or ``none``).
- timeout: ``OTEL_EXPORTER_OTLP_[METRICS_]TIMEOUT`` in milliseconds, as the specification says
  (default 10000), read by Driftline (the Python SDK would read seconds) and capped by
  ``OTEL_METRIC_EXPORT_TIMEOUT`` (ms, default 30000): the SDK exporters ignore the timeout an
  ``export()`` call is given, so the cap is set on the exporter. See
  :func:`~driftline.exporters.otel_env.otlp_timeout_from_env`.
- which exporter: ``OTEL_METRICS_EXPORTER`` ``otlp`` (default), ``console`` (the SDK's
  ``ConsoleMetricExporter``, one JSON document per export on stdout), ``none`` or ``prometheus``
  (no push: ``/metrics`` is always served). See :func:`metrics_exporter_from_env`.
- temporality: ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` ``cumulative`` (default),
  ``delta`` or ``lowmemory``. Driftline's counters and histograms count events as they happen
  (they are the SDK's Counter and Histogram, pre-aggregated), so ``delta`` and ``lowmemory``
  both send their increase since the last successful export; gauges are gauges either way.
- resource: ``Resource.create()`` (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``); when
  neither names the service, ``service.name`` is ``driftline-sidecar``.

Names and units are chosen so that the standard OTel→Prometheus translation yields exactly the
Prometheus exporter's series: dotted ``otel_name`` from the catalogue; Prometheus labels become
attributes with ``model_`` turned into ``model.`` (:func:`attribute_name`); unit ``s`` stays
``s``; dimensionless metrics are sent with an empty unit except gauges already named
``*_ratio`` (the translation appends ``_ratio`` to gauges with unit ``1``). Sums are monotonic
and cumulative unless delta is asked for. Export failures are counted
(:attr:`OtlpMetricsExporter.export_errors`) and logged, never raised.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, cast

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from driftline import __version__
from driftline.catalogue import MetricSpec
from driftline.engine.snapshot import SnapshotSource
from driftline.errors import ConfigError
from driftline.exporters.cardinality import CardinalityGuard, CardinalityLimits
from driftline.exporters.otel_env import (
    env_milliseconds,
    metrics_exporter_from_env,
    otlp_timeout_from_env,
    temporality_from_env,
)
from driftline.exporters.points import HistogramPoint, MetricPoints, PointsBuilder

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "OtlpMetricsExporter",
    "attribute_name",
    "metrics_exporter_from_env",
    "otel_unit",
    "otlp_exporter_from_env",
    "resource_from_env",
    "temporality_from_env",
    "to_metrics_data",
]

_log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "driftline-sidecar"
_ATTRIBUTES: dict[str, str] = {"model_name": "model.name", "model_version": "model.version"}
_PROTOCOLS = ("http/protobuf", "grpc")


def attribute_name(label: str) -> str:
    """The OTel attribute for a Prometheus label (the one place this mapping lives)."""
    return _ATTRIBUTES.get(label, label)


def otel_unit(spec: MetricSpec) -> str:
    """Unit sent over OTLP, chosen so the standard translation adds no suffix we lack."""
    if spec.unit != "1":
        return spec.unit
    if spec.type == "gauge" and spec.name.endswith("_ratio"):
        return "1"
    return ""


def _env_protocol() -> str:
    for var in ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return "http/protobuf"


def otlp_exporter_from_env(protocol: str | None = None, *, max_timeout_ms: float | None = None,
                           ) -> MetricExporter:
    """The SDK's OTLP metric exporter for ``protocol`` (argument, then env, then HTTP), with
    the request timeout of :func:`~driftline.exporters.otel_env.otlp_timeout_from_env` (ms),
    at most ``max_timeout_ms``."""
    proto = (protocol or _env_protocol()).lower()
    timeout_ms, var = otlp_timeout_from_env()
    if var is not None and timeout_ms < 100:
        _log.warning("%s=%s is %s ms: the OTLP timeout is in milliseconds (for 10 s write 10000)",
                     var, os.environ[var].strip(), f"{timeout_ms:g}")
    if max_timeout_ms is not None:
        timeout_ms = min(timeout_ms, max_timeout_ms)
    if proto not in _PROTOCOLS:
        raise ConfigError(f"unsupported OTLP protocol {proto!r}", key="OTEL_EXPORTER_OTLP_PROTOCOL",
                          fix="use http/protobuf or grpc")
    if proto == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise ConfigError("OTLP over gRPC needs the grpc extra", key="OTEL_EXPORTER_OTLP_PROTOCOL",
                              fix="pip install 'driftline[grpc]' or use http/protobuf") from exc
        return cast(MetricExporter, GrpcExporter(timeout=timeout_ms / 1000.0))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(timeout=timeout_ms / 1000.0)


def resource_from_env(service_name: str = DEFAULT_SERVICE_NAME) -> Resource:
    """``Resource.create()`` with ``service_name`` unless the environment names the service."""
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = Resource.create({"service.name": service_name})
    return resource


class DeltaState:
    """What the last successful export sent, so that delta temporality sends the increase.

    :meth:`commit` is called only after a successful export: after a failure the next delta
    still starts at the last export the collector received, so nothing is lost. A value below
    the previous one (the sidecar restarted counting, a series folded) starts over from 0."""

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.values: dict[tuple[str, tuple[str, ...]], float] = {}
        self.hists: dict[tuple[str, tuple[str, ...]], HistogramPoint] = {}
        self._pending: tuple[int, dict[Any, float], dict[Any, HistogramPoint]] | None = None

    def value(self, key: tuple[str, tuple[str, ...]], v: float) -> float:
        prev = self.values.get(key, 0.0)
        return v - prev if v >= prev else v

    def hist(self, key: tuple[str, tuple[str, ...]], h: HistogramPoint) -> HistogramPoint:
        prev = self.hists.get(key)
        if prev is None or prev.bounds != h.bounds or h.count < prev.count or any(
                c < p for c, p in zip(h.counts, prev.counts, strict=True)):
            return h
        return HistogramPoint(h.bounds, [c - p for c, p in zip(h.counts, prev.counts, strict=True)],
                              h.sum - prev.sum, h.count - prev.count)

    def stage(self, points: list[MetricPoints], now_ns: int) -> None:
        values = {(p.spec.name, k): v for p in points if p.spec.type == "counter"
                  for k, v in p.values.items()}
        hists = {(p.spec.name, k): h for p in points for k, h in p.histograms.items()}
        self._pending = (now_ns, values, hists)

    def commit(self) -> None:
        if self._pending is not None:
            self.start_ns, self.values, self.hists = self._pending
            self._pending = None


Row = tuple[tuple[str, ...], dict[str, str], Any]  # label values, OTLP attributes, value


class SeriesCache:
    """The OTLP attribute mapping of every series, per points part, kept between exports.

    A part is a :class:`~driftline.exporters.points.MetricPoints` (one of its ``blocks`` when it
    has them: one model's series of one metric), and the points builder hands out the very
    same part while its model's snapshot is unchanged, so an unchanged model's series keep
    their attributes: an export re-stamps their points and makes nothing else. Entries are
    keyed by the part's identity and hold the part itself, so an id is never reused while its
    entry lives; only the parts of the latest export are kept."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[MetricPoints, list[Row]]] = {}
        self._used: dict[int, tuple[MetricPoints, list[Row]]] = {}
        self.made = 0  # parts whose rows were made (the others were reused)

    def rows(self, points: MetricPoints, keys: list[str]) -> list[Row]:
        out: list[Row] = []
        for part in points.blocks or [points]:
            got = self.entries.get(id(part))
            if got is None or got[0] is not part:
                items: Any = (part.histograms if points.spec.type == "histogram" else part.values).items()
                got = (part, [(v, dict(zip(keys, v, strict=True)), x) for v, x in items])
                self.made += 1
            self._used[id(part)] = got
            out.extend(got[1])
        return out

    def end(self) -> None:
        """Forget the parts the export that just ended did not use."""
        self.entries, self._used = self._used, {}


def _metric(points: MetricPoints, start_ns: int, now_ns: int,
            delta: DeltaState | None = None, series: SeriesCache | None = None) -> Metric:
    spec = points.spec
    keys = [attribute_name(lab) for lab in spec.labels]
    rows = (series or SeriesCache()).rows(points, keys)
    temporality = (AggregationTemporality.DELTA if delta is not None
                   else AggregationTemporality.CUMULATIVE)
    start = delta.start_ns if delta is not None else start_ns
    data: Any
    if spec.type == "histogram":
        hpoints = []
        for values, attributes, h in rows:
            if delta is not None:
                h = delta.hist((spec.name, values), h)
            hpoints.append(HistogramDataPoint(
                attributes=attributes, start_time_unix_nano=start,
                time_unix_nano=now_ns, count=h.count, sum=h.sum, bucket_counts=list(h.counts),
                explicit_bounds=list(h.bounds),
                # min/max are unknown for pre-aggregated buckets; None leaves them unset on the wire.
                min=cast(float, None), max=cast(float, None),
            ))
        data = Histogram(data_points=hpoints, aggregation_temporality=temporality)
    else:
        integral = spec.type == "counter"  # counts travel as int64 when they are whole numbers
        npoints = []
        for values, attributes, v in rows:
            if integral and delta is not None:
                v = delta.value((spec.name, values), v)
            npoints.append(NumberDataPoint(
                attributes=attributes,
                start_time_unix_nano=start if integral else start_ns, time_unix_nano=now_ns,
                value=int(v) if integral and v.is_integer() else v))
        if spec.type == "counter":
            data = Sum(data_points=npoints, aggregation_temporality=temporality, is_monotonic=True)
        else:
            data = Gauge(data_points=npoints)
    return Metric(name=spec.otel_name, description=spec.help, unit=otel_unit(spec), data=data)


def to_metrics_data(points: list[MetricPoints], resource: Resource, *, start_ns: int,
                    now_ns: int | None = None, delta: DeltaState | None = None,
                    series: SeriesCache | None = None) -> MetricsData:
    """OTLP data model for already built points (one resource, one ``driftline`` scope);
    with ``delta``, counters and histograms as their increase since its last commit. With
    ``series`` (kept by the caller between exports) the parts of ``points`` seen by the previous
    call reuse their attribute mappings; afterwards it holds exactly this call's parts."""
    now = time.time_ns() if now_ns is None else now_ns
    scope = InstrumentationScope("driftline", __version__)
    metrics = [_metric(p, start_ns, now, delta, series) for p in points]
    if series is not None:
        series.end()
    if delta is not None:
        delta.stage(points, now)
    return MetricsData(resource_metrics=[
        ResourceMetrics(resource=resource, scope_metrics=[ScopeMetrics(scope, metrics, "")], schema_url=""),
    ])


class OtlpMetricsExporter:
    """Periodic OTLP push of every catalogue metric from a SnapshotSource.

    ``start()`` launches a daemon thread exporting every ``interval_ms``; ``force_flush()``
    exports now; ``shutdown()`` stops the thread, makes a final export and shuts the SDK exporter
    down. Failures increment :attr:`export_errors` (the sidecar reports it as
    ``driftline_export_errors_total{exporter="otlp"}``).
    """

    def __init__(self, source: SnapshotSource, *, exporter: MetricExporter | None = None,
                 protocol: str | None = None, resource: Resource | None = None,
                 interval_ms: float | None = None, timeout_ms: float | None = None,
                 limits: CardinalityLimits | None = None,
                 service_name: str = DEFAULT_SERVICE_NAME,
                 temporality: str | None = None) -> None:
        self.source = source
        self.interval_ms = interval_ms if interval_ms is not None else env_milliseconds(
            "OTEL_METRIC_EXPORT_INTERVAL", 60000.0)
        self.timeout_ms = timeout_ms if timeout_ms is not None else env_milliseconds(
            "OTEL_METRIC_EXPORT_TIMEOUT", 30000.0)
        if self.interval_ms <= 0 or self.timeout_ms <= 0:
            raise ConfigError("interval and timeout must be positive", key="interval_ms",
                              fix="give milliseconds, e.g. 60000")
        if exporter is None:
            kind = metrics_exporter_from_env()
            if kind == "console":
                import sys

                from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

                # its default stream is the stdout of import time; this one is today's
                exporter = ConsoleMetricExporter(out=sys.stdout)
            else:  # "none" never gets here: the runtime does not start an exporter then
                exporter = otlp_exporter_from_env(protocol, max_timeout_ms=self.timeout_ms)
        self.exporter = exporter
        self.temporality = temporality or temporality_from_env()
        self.resource = resource if resource is not None else resource_from_env(service_name)
        self.guard = CardinalityGuard(limits)
        #: the points, kept between exports: an unchanged model's are not rebuilt
        self.points = PointsBuilder(self.guard)
        self.series = SeriesCache()
        self._build_lock = threading.Lock()  # the exporter's own: monitors never wait on it
        self._start_ns = time.time_ns()
        self._delta = DeltaState(self._start_ns) if self.temporality == "delta" else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shutdown = False
        self.export_errors = 0
        self.exports = 0

    def build(self) -> MetricsData:
        """The OTLP payload for the source's current state.

        The points come from :class:`~driftline.exporters.points.PointsBuilder`: after no new
        data nothing is rebuilt, after one model's data only that model's points are. Every
        export still stamps each point with its own time (``time_unix_nano``), as the
        protocol wants: a receiver must see a fresh sample, not the previous one again."""
        snaps = self.source.snapshots()
        stats = self.source.sidecar_stats()
        with self._build_lock:
            self.points.update(snaps, stats)
            return to_metrics_data(self.points.points, self.resource, start_ns=self._start_ns,
                                   delta=self._delta, series=self.series)

    def export_once(self) -> bool:
        """Build and export now; False (and one more counted error) on any failure."""
        with self._lock:
            try:
                result = self.exporter.export(self.build(), timeout_millis=self.timeout_ms)
            except Exception as exc:  # never raise into the sidecar
                _log.warning("OTLP metrics export failed: %s", exc)
                result = MetricExportResult.FAILURE
            if result is MetricExportResult.SUCCESS:
                self.exports += 1
                if self._delta is not None:
                    self._delta.commit()
                return True
            self.export_errors += 1
            return False

    def start(self) -> None:
        """Start the periodic export thread (idempotent)."""
        if self._thread is not None or self._shutdown:
            return
        self._thread = threading.Thread(target=self._run, name="driftline-otlp", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_ms / 1000.0):
            self.export_once()

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Export the current state now."""
        if self._shutdown:
            return False
        return self.export_once()

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Stop the thread, export a final time, then shut the SDK exporter down."""
        if self._shutdown:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_millis / 1000.0)
        self.export_once()
        self._shutdown = True
        try:
            self.exporter.shutdown(timeout_millis=timeout_millis)
        except Exception as exc:
            _log.warning("OTLP exporter shutdown failed: %s", exc)
