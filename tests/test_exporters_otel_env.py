"""The standard OTEL_* variables that say how metrics are pushed, against the in-process
OTLP/HTTP receiver of test_exporters_otlp (requests decoded with opentelemetry-proto).

OTEL_METRICS_EXPORTER (otlp, console, none), the temporality preference (cumulative, delta,
lowmemory), OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION and ..._TIMEOUT."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator

import pytest
from _servers import OtlpReceiver
from opentelemetry.proto.metrics.v1 import metrics_pb2

from driftline.catalogue import PROXY_DURATION as _PD
from driftline.config import OtlpConfig
from driftline.engine.snapshot import Histogram
from driftline.errors import ConfigError
from driftline.exporters.fleet import StaticSource
from driftline.exporters.otel_env import metrics_exporter_from_env, temporality_from_env
from driftline.exporters.otlp import OtlpMetricsExporter
from tests.test_exporters_otlp import receiver, rich_fleet  # noqa: F401 (fixture)

PROXY_DURATION = _PD.otel_name
ENV = ("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
       "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
       "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
       "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
       "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_METRIC_EXPORT_INTERVAL")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, receiver: OtlpReceiver) -> Iterator[OtlpReceiver]:  # noqa: F811
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.url)
    yield receiver


@pytest.mark.parametrize(("value", "kind", "active"), [
    ("", "otlp", True), ("otlp", "otlp", True), ("OTLP", "otlp", True),
    ("none", "none", False), ("prometheus", "none", False), ("console", "console", True),
    ("otlp,prometheus", "otlp", True), ("prometheus,console", "console", True),
])
def test_otel_metrics_exporter_decides_the_push(value: str, kind: str, active: bool) -> None:
    environ = {"OTEL_METRICS_EXPORTER": value,
               "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert metrics_exporter_from_env(environ) == kind
    assert OtlpConfig().active(environ) is active
    assert OtlpConfig(enabled=True).active(environ) is True  # the config file still decides


def test_an_unsupported_exporter_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="OTEL_METRICS_EXPORTER") as err:
        OtlpConfig().active({"OTEL_METRICS_EXPORTER": "zipkin"})
    assert "zipkin" in str(err.value)


def test_console_exporter_writes_the_metrics_to_stdout(env: OtlpReceiver,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    exp = OtlpMetricsExporter(rich_fleet(), interval_ms=60000)
    assert exp.force_flush()
    exp.shutdown()
    assert "driftline.records.dropped" in capsys.readouterr().out
    assert env.requests == []  # nothing went to the OTLP endpoint


def _metric(req: object, name: str) -> metrics_pb2.Metric:
    for rm in req.resource_metrics:  # type: ignore[attr-defined]
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    return m
    raise AssertionError(f"{name} not exported")


def _dropped(req: object, model: str) -> metrics_pb2.NumberDataPoint:
    m = _metric(req, "driftline.records.dropped")
    for p in m.sum.data_points:
        attrs = {kv.key: kv.value.string_value for kv in p.attributes}
        if attrs.get("model.name") == model and attrs.get("reason") == "queue_full":
            return p
    raise AssertionError(model)


def _latency(req: object, code: str) -> metrics_pb2.HistogramDataPoint:
    m = _metric(req, PROXY_DURATION)
    for p in m.histogram.data_points:
        if {kv.key: kv.value.string_value for kv in p.attributes}.get("code") == code:
            return p
    raise AssertionError(code)


def _bump(src: StaticSource, model: str, drops: int, requests: int) -> None:
    dropped = dict(src.stats.dropped)
    dropped[(model, "queue_full")] += drops
    h = src.stats.proxy_latency["2xx"]
    counts = list(h.counts)
    counts[0] += requests
    latency = {**src.stats.proxy_latency,
               "2xx": Histogram(h.bounds, tuple(counts), h.sum + 0.001 * requests,
                                h.count + requests)}
    src.stats = dataclasses.replace(src.stats, dropped=dropped, proxy_latency=latency)


@pytest.mark.parametrize("preference", ["delta", "lowmemory", "DELTA"])
def test_delta_temporality_sends_increases_since_the_last_received_export(
        env: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, preference: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
    src = rich_fleet()
    model = src.models[0].model_name
    first_drops = src.stats.dropped[(model, "queue_full")]
    first_count = src.stats.proxy_latency["2xx"].count
    exp = OtlpMetricsExporter(src, interval_ms=60000)
    assert exp.force_flush()
    first = env.requests[-1][1]
    p0, h0 = _dropped(first, model), _latency(first, "2xx")
    assert p0.as_int == first_drops and h0.count == first_count  # all since start
    assert _metric(first, "driftline.records.dropped").sum.aggregation_temporality == \
        metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    assert _metric(first, PROXY_DURATION).histogram.aggregation_temporality \
        == metrics_pb2.AGGREGATION_TEMPORALITY_DELTA

    _bump(src, model, drops=5, requests=7)
    env.status = 503  # this export is lost: the next delta must still cover its increase
    assert not exp.force_flush()
    env.status = 200
    _bump(src, model, drops=2, requests=1)
    assert exp.force_flush()
    last = env.requests[-1][1]
    p2, h2 = _dropped(last, model), _latency(last, "2xx")
    assert p2.as_int == 7 and h2.count == 8 and h2.bucket_counts[0] == 8
    assert h2.sum == pytest.approx(0.008)
    assert p2.start_time_unix_nano == p0.time_unix_nano  # from the last export received
    assert h2.start_time_unix_nano == h0.time_unix_nano
    assert exp.force_flush()  # nothing new: zero increases
    assert _dropped(env.requests[-1][1], model).as_int == 0
    exp.shutdown()


def test_cumulative_is_the_default_and_nonsense_is_refused(env: OtlpReceiver,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert temporality_from_env({}) == "cumulative"
    src = rich_fleet()
    model = src.models[0].model_name
    exp = OtlpMetricsExporter(src, interval_ms=60000)
    exp.force_flush()
    _bump(src, model, drops=5, requests=7)
    exp.force_flush()
    m = _metric(env.requests[-1][1], "driftline.records.dropped")
    assert m.sum.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert _dropped(env.requests[-1][1], model).as_int == src.stats.dropped[(model, "queue_full")]
    exp.shutdown()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes")
    with pytest.raises(ConfigError, match="TEMPORALITY_PREFERENCE"):
        OtlpMetricsExporter(src, interval_ms=60000)


@pytest.mark.parametrize("var", ["OTEL_EXPORTER_OTLP_COMPRESSION",
                                 "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION"])
def test_gzip_compression_from_the_standard_variables(env: OtlpReceiver, monkeypatch: pytest.MonkeyPatch,
                                                      var: str) -> None:
    monkeypatch.setenv(var, "gzip")
    exp = OtlpMetricsExporter(rich_fleet(), interval_ms=60000)
    assert exp.force_flush()
    headers, req = env.requests[-1]
    assert headers.get("content-encoding") == "gzip"  # the receiver gunzipped and decoded it
    _metric(req, "driftline.records.dropped")
    exp.shutdown()


def test_no_compression_by_default(env: OtlpReceiver) -> None:
    exp = OtlpMetricsExporter(rich_fleet(), interval_ms=60000)
    assert exp.force_flush()
    assert "content-encoding" not in env.requests[-1][0]
    exp.shutdown()


@pytest.mark.parametrize(("var", "value"), [("OTEL_EXPORTER_OTLP_TIMEOUT", "300"),
                                            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "300"),
                                            ("OTEL_METRIC_EXPORT_TIMEOUT", "300")])
def test_export_timeout_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch, var: str,
                                                    value: str) -> None:
    """A collector that accepts the connection and never answers: the export gives up after
    the configured timeout and is counted as an error. The values are milliseconds, as the
    specification defines them (the Python SDK alone would read 300 as 300 seconds);
    OTEL_METRIC_EXPORT_TIMEOUT caps the request timeout (default 10 s) as well."""
    for v in (*ENV, "OTEL_METRIC_EXPORT_TIMEOUT"):
        monkeypatch.delenv(v, raising=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # never accepted: the request is sent, no answer ever comes
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                           f"http://127.0.0.1:{silent.getsockname()[1]}/v1/metrics")
        monkeypatch.setenv(var, value)
        exp = OtlpMetricsExporter(rich_fleet(), interval_ms=60000)
        t0 = time.monotonic()
        assert exp.force_flush() is False
        waited = time.monotonic() - t0
        assert exp.export_errors == 1
        assert waited < 5.0, f"waited {waited:.1f} s: {var}={value} was not read as milliseconds"
        exp.shutdown(timeout_millis=1000)


def test_otlp_timeout_is_milliseconds_with_the_metrics_variable_first(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from driftline.exporters.otel_env import otlp_timeout_from_env
    from driftline.exporters.otlp import otlp_exporter_from_env

    assert otlp_timeout_from_env({}) == (10_000.0, None)  # the specification's default, 10 s
    assert otlp_timeout_from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}) == (
        2500.0, "OTEL_EXPORTER_OTLP_TIMEOUT")
    both = {"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": " 750 "}
    assert otlp_timeout_from_env(both) == (750.0, "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT")
    for bad in ("10s", "0", "-5", "inf", "nan"):
        with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT.*milliseconds"):
            otlp_timeout_from_env({"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": bad})
    # the gRPC exporter keeps its timeout in seconds: 1500 ms, capped by the export timeout
    for v in ENV:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1500")
    assert otlp_exporter_from_env("grpc")._timeout == 1.5  # type: ignore[attr-defined]
    assert otlp_exporter_from_env("grpc", max_timeout_ms=400)._timeout == 0.4  # type: ignore[attr-defined]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10")  # meant as seconds: said so in the log
    with caplog.at_level("WARNING", logger="driftline.exporters.otlp"):
        otlp_exporter_from_env("grpc")
    assert "OTEL_EXPORTER_OTLP_TIMEOUT=10 is 10 ms" in caplog.text
