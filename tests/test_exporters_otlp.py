"""OTLP exporter against an in-process OTLP/HTTP receiver (stdlib http.server on 127.0.0.1).

The receiver decodes ``ExportMetricsServiceRequest`` with opentelemetry-proto; the test applies
the standard OTel→Prometheus translation (written here from the spec, independently of the
exporter) and requires the same series names, label names and values as a Prometheus scrape.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _servers import OtlpReceiver
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from prometheus_client.parser import text_string_to_metric_families

from driftline import catalogue as cat
from driftline.errors import ConfigError
from driftline.exporters.cardinality import CardinalityGuard, CardinalityLimits
from driftline.exporters.fleet import StaticSource, synthetic_fleet
from driftline.exporters.otlp import OtlpMetricsExporter, otlp_exporter_from_env, to_metrics_data
from driftline.exporters.points import build_points
from driftline.exporters.prometheus import new_registry, render

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch, receiver: OtlpReceiver) -> OtlpReceiver:
    for var in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
                "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME",
                "OTEL_RESOURCE_ATTRIBUTES", "OTEL_METRIC_EXPORT_INTERVAL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.url)
    return receiver


# --- the OTel -> Prometheus translation, from the spec -------------------------------------

_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "%": "percent"}


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9:]", "_", name)


def _prom_name(metric: Any) -> str:
    name = _sanitize(metric.name)
    unit = metric.unit
    kind = metric.WhichOneof("data")
    if unit == "1":
        if kind == "gauge" and not name.endswith("_ratio"):
            name += "_ratio"
    elif unit and not (unit.startswith("{") and unit.endswith("}")):
        suffix = _UNIT_SUFFIX.get(unit, _sanitize(unit))
        if not name.endswith("_" + suffix):
            name += "_" + suffix
    if kind == "sum" and metric.sum.is_monotonic and not name.endswith("_total"):
        name += "_total"
    return name


def _attrs(kvs: Any) -> dict[str, str]:
    return {_sanitize(kv.key): kv.value.string_value for kv in kvs}


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


def translate(req: ExportMetricsServiceRequest) -> Series:
    out: Series = {}
    for rm in req.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                name = _prom_name(m)
                kind = m.WhichOneof("data")
                if kind == "histogram":
                    assert m.histogram.aggregation_temporality == 2  # cumulative
                    for dp in m.histogram.data_points:
                        labels = _attrs(dp.attributes)
                        run = 0
                        bounds = [*dp.explicit_bounds, math.inf]
                        for b, c in zip(bounds, dp.bucket_counts, strict=True):
                            run += c
                            out[(name + "_bucket", frozenset({**labels, "le": _le(b)}.items()))] = run
                        out[(name + "_count", frozenset(labels.items()))] = dp.count
                        out[(name + "_sum", frozenset(labels.items()))] = dp.sum
                    continue
                points = m.gauge.data_points if kind == "gauge" else m.sum.data_points
                if kind == "sum":
                    assert m.sum.aggregation_temporality == 2 and m.sum.is_monotonic
                for dp in points:
                    v = dp.as_double if dp.WhichOneof("value") == "as_double" else dp.as_int
                    out[(name, frozenset(_attrs(dp.attributes).items()))] = float(v)
    return out


def prometheus_series(source: StaticSource, limits: CardinalityLimits | None = None) -> Series:
    registry, _ = new_registry(source, limits=limits)
    body, _ = render(registry, "text/plain")
    out: Series = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            labels = dict(s.labels)
            if "le" in labels:
                labels["le"] = _le(float(labels["le"]))
            out[(s.name, frozenset(labels.items()))] = s.value
    return out


def rich_fleet() -> StaticSource:
    src = synthetic_fleet(models=3, features=8, seed=11)
    src.stats.series_capped["category"] = 4
    return src


# --- tests ---------------------------------------------------------------------------------


def test_translated_otlp_equals_the_prometheus_scrape(otel_env: OtlpReceiver) -> None:
    src = rich_fleet()
    exp = OtlpMetricsExporter(src, interval_ms=60000)
    assert exp.force_flush()
    otel_env.wait_for(1)
    _, req = otel_env.requests[0]
    got = translate(req)
    want = prometheus_series(src)
    assert set(got) == set(want)
    assert {n for n, _ in got} == {n for n, _ in want}
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    names = {m.name for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert names <= {spec.otel_name for spec in cat.ALL}
    exp.shutdown()


def test_translation_holds_under_folding(otel_env: OtlpReceiver) -> None:
    src = synthetic_fleet(models=6, features=12, seed=2)
    limits = CardinalityLimits(max_models=2, max_features_per_model=5, max_categories_per_feature=2)
    exp = OtlpMetricsExporter(src, interval_ms=60000, limits=limits)
    exp.force_flush()
    otel_env.wait_for(1)
    got = translate(otel_env.requests[0][1])
    assert got == pytest.approx(prometheus_series(src, limits))
    exp.shutdown()


def test_resource_and_headers_from_the_standard_env(otel_env: OtlpReceiver,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20tok,x-tenant=t1")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES",
                       "deployment.environment.name=prod,service.name=from-attrs,k8s.pod.name=p-1")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "fraud-sidecar")
    exp = OtlpMetricsExporter(rich_fleet(), interval_ms=60000)
    exp.force_flush()
    otel_env.wait_for(1)
    headers, req = otel_env.requests[0]
    assert headers["authorization"] == "Bearer tok"
    assert headers["x-tenant"] == "t1"
    assert headers["content-type"] == "application/x-protobuf"
    res = {kv.key: kv.value.string_value for kv in req.resource_metrics[0].resource.attributes}
    assert res["service.name"] == "fraud-sidecar"  # OTEL_SERVICE_NAME wins
    assert res["deployment.environment.name"] == "prod"
    assert res["k8s.pod.name"] == "p-1"
    exp.shutdown()


def test_default_service_name(otel_env: OtlpReceiver) -> None:
    exp = OtlpMetricsExporter(rich_fleet(), interval_ms=60000)
    exp.force_flush()
    otel_env.wait_for(1)
    resource = otel_env.requests[0][1].resource_metrics[0].resource
    res = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert res["service.name"] == "driftline-sidecar"
    exp.shutdown()


def test_shutdown_flushes_a_final_export(otel_env: OtlpReceiver) -> None:
    src = rich_fleet()
    exp = OtlpMetricsExporter(src, interval_ms=3_600_000)
    exp.start()
    assert otel_env.requests == []
    exp.shutdown()
    assert len(otel_env.requests) == 1
    assert exp.exports == 1 and exp.export_errors == 0
    exp.shutdown()  # idempotent
    assert len(otel_env.requests) == 1


def test_periodic_export_from_env_interval(otel_env: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
    src = rich_fleet()
    exp = OtlpMetricsExporter(src)
    assert exp.interval_ms == 50
    exp.start()
    otel_env.wait_for(2)
    # the state is read at export time: a new window shows up in the next export
    src.models = src.models[:1]
    n = len(otel_env.requests)
    otel_env.wait_for(n + 1)
    exp.shutdown()
    last = translate(otel_env.requests[-1][1])
    # Monitor series (service-health series follow the request counters, not the monitors).
    per_model = {dict(labels)["model_name"] for name, labels in last
                 if "endpoint" in dict(labels) and not name.startswith("driftline_model_")}
    assert per_model == {src.models[0].model_name}


def test_export_errors_are_counted_never_raised(otel_env: OtlpReceiver) -> None:
    otel_env.status = 400
    exp = OtlpMetricsExporter(rich_fleet(), interval_ms=60000)
    assert exp.force_flush() is False
    assert exp.export_errors == 1

    class Boom(MetricExporter):
        def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
                   **kwargs: Any) -> MetricExportResult:
            raise RuntimeError("collector on fire")

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            raise RuntimeError("still on fire")

    exp2 = OtlpMetricsExporter(rich_fleet(), exporter=Boom(), interval_ms=60000)
    assert exp2.force_flush() is False
    exp2.shutdown()
    assert exp2.export_errors == 2
    exp.shutdown()


def test_protocol_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match="http/json"):
        otlp_exporter_from_env()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    assert isinstance(otlp_exporter_from_env("http/protobuf"), OTLPMetricExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    try:
        import opentelemetry.exporter.otlp.proto.grpc.metric_exporter as grpc_mod
    except ImportError:
        with pytest.raises(ConfigError, match=r"driftline\[grpc\]"):
            otlp_exporter_from_env()
    else:
        assert isinstance(otlp_exporter_from_env(), grpc_mod.OTLPMetricExporter)


def test_bad_interval_fails_at_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="OTEL_METRIC_EXPORT_INTERVAL"):
        OtlpMetricsExporter(rich_fleet())


def test_force_flush_is_synchronous(otel_env: OtlpReceiver) -> None:
    """force_flush returns after the request completed: the receiver already has it."""
    exp = OtlpMetricsExporter(rich_fleet(), interval_ms=60000)
    exp.force_flush()
    assert len(otel_env.requests) == 1
    exp.shutdown()


def test_grpc_when_the_env_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    grpc = pytest.importorskip("grpc")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc.metric_exporter")
    from concurrent import futures

    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as svc

    got: list[tuple[dict[str, str], ExportMetricsServiceRequest]] = []
    cond = threading.Condition()

    class Servicer(svc.MetricsServiceServicer):
        def Export(self, request: ExportMetricsServiceRequest, context: Any) -> Any:
            with cond:
                got.append((dict(context.invocation_metadata()), request))
                cond.notify_all()
            return ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    svc.add_MetricsServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        for var in ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=t2")
        src = rich_fleet()
        exp = OtlpMetricsExporter(src, interval_ms=60000)
        assert exp.force_flush()
        exp.shutdown()
        with cond:
            assert cond.wait_for(lambda: len(got) >= 2, 20)
        metadata, req = got[0]
        assert metadata["x-tenant"] == "t2"
        assert translate(req) == pytest.approx(prometheus_series(src))
    finally:
        server.stop(None)


def test_collector_down_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftline_demo.stack import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{free_port()}/v1/metrics")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")  # ms
    exp = OtlpMetricsExporter(rich_fleet(), interval_ms=60000)
    assert exp.force_flush() is False
    exp.shutdown()  # the final export fails too, and is counted, not raised
    assert exp.export_errors == 2 and exp.exports == 0


@settings(max_examples=30, deadline=None)
@given(models=st.integers(1, 6), features=st.integers(1, 12), seed=st.integers(0, 2**16),
       max_models=st.integers(1, 6), max_features=st.integers(1, 12), nan_every=st.integers(1, 5))
def test_both_routes_agree_for_any_fleet(models: int, features: int, seed: int, max_models: int,
                                         max_features: int, nan_every: int) -> None:
    """Property: translated OTLP == scrape, whatever the fleet, the caps and the NaNs."""
    from opentelemetry.sdk.resources import Resource

    src = synthetic_fleet(models=models, features=features, seed=seed)
    for i, snap in enumerate(src.models):
        if snap.last_window is None:
            continue
        feats = {name: dataclasses.replace(fd, psi=math.nan) if j % nan_every == 0 else fd
                 for j, (name, fd) in enumerate(snap.last_window.features.items())}
        window = dataclasses.replace(snap.last_window, features=feats)
        src.models[i] = dataclasses.replace(snap, last_window=window,
                                            estimated_accuracy=math.nan if i % 2 else snap.estimated_accuracy)
    limits = CardinalityLimits(max_models=max_models, max_features_per_model=max_features)
    points = build_points(src.snapshots(), src.sidecar_stats(), CardinalityGuard(limits))
    req = encode_metrics(to_metrics_data(points, Resource.create(), start_ns=1))
    got = translate(req)
    want = prometheus_series(src, limits)
    assert set(got) == set(want)
    assert got == pytest.approx(want)
    assert not any(math.isnan(v) for v in got.values())


def _without_times(req: ExportMetricsServiceRequest) -> ExportMetricsServiceRequest:
    """``req`` with every data point's timestamps zeroed: what an export says, not when."""
    out = ExportMetricsServiceRequest()
    out.CopyFrom(req)
    for rm in out.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                for dp in getattr(m, kind).data_points:
                    dp.time_unix_nano = dp.start_time_unix_nano = 0
    return out


def _point_count(req: ExportMetricsServiceRequest) -> int:
    return sum(len(getattr(m, m.WhichOneof("data")).data_points)
               for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)


def test_an_export_after_no_new_data_rebuilds_nothing(otel_env: OtlpReceiver) -> None:
    """The exporter keeps its points between exports (as the Prometheus collector does between
    scrapes): an export after no new data builds nothing and sends the same points, stamped
    with the new time; after one model's new snapshot only that model is rebuilt, and the
    export equals one built afresh; a model that leaves takes its cached attributes along."""
    src = synthetic_fleet(models=3, features=6, seed=5)
    exp = OtlpMetricsExporter(src, interval_ms=60000)
    assert exp.force_flush()
    made = exp.series.made
    assert exp.force_flush()
    otel_env.wait_for(2)
    first, second = (req for _, req in otel_env.requests)
    assert (exp.points.builds, exp.points.cache.built, exp.points.cache.reused) == (1, 3, 0)
    assert exp.series.made == made  # not even an attribute mapping was made again
    assert _without_times(first) == _without_times(second)
    times = {dp.time_unix_nano for req in (first, second) for m in req.resource_metrics[0]
             .scope_metrics[0].metrics for dp in getattr(m, m.WhichOneof("data")).data_points}
    assert len(times) == 2  # each export stamps its own time on every point

    snap = src.models[1]
    assert snap.last_window is not None
    feats = {name: dataclasses.replace(fd, psi=fd.psi + 1.0)
             for name, fd in snap.last_window.features.items()}
    src.models[1] = dataclasses.replace(snap, windows_total=snap.windows_total + 1,
                                        last_window=dataclasses.replace(snap.last_window, features=feats))
    assert exp.force_flush()
    otel_env.wait_for(3)
    third = otel_env.requests[2][1]
    assert (exp.points.builds, exp.points.cache.built, exp.points.cache.reused) == (2, 4, 2)
    assert made < exp.series.made < 2 * made  # the changed model's parts (and the shared ones)
    fresh = encode_metrics(to_metrics_data(
        build_points(src.snapshots(), src.sidecar_stats(), CardinalityGuard()), exp.resource, start_ns=1))
    assert _without_times(third) == _without_times(fresh)
    assert _without_times(third) != _without_times(second)

    src.models = src.models[:1]
    assert exp.force_flush()
    otel_env.wait_for(4)
    kept = sum(len(rows) for _, rows in exp.series.entries.values())
    assert kept == _point_count(otel_env.requests[3][1]) < _point_count(third)
    exp.shutdown()
