"""Scrape render time and OTLP payload build time for a realistic fleet.

Fleets: 1, 10 and 50 models × 25 features (every 5th categorical with 8 categories), 3 classes, two
proxy status classes. Prints the series count, ms per text scrape, per OpenMetrics scrape, per
OTLP build (data model) and per OTLP build + protobuf encode, best of several runs.

It also times the SDK's own path for comparison: a ``MeterProvider`` whose observable counters
and gauges report the same pre-aggregated points from callbacks, collected by a metric reader
and encoded. The SDK has no observable histogram, so that path cannot carry Driftline's
pre-aggregated histograms at all; its figure covers the counters and gauges only (a lower
bound of its cost). ``python -m benchmarks export``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from driftline.exporters.cardinality import CardinalityGuard
from driftline.exporters.fleet import synthetic_fleet
from driftline.exporters.otlp import OtlpMetricsExporter, resource_from_env, to_metrics_data
from driftline.exporters.points import build_points
from driftline.exporters.prometheus import new_registry, render


class _Discard:
    """An SDK-shaped exporter that drops what it is given (only build() is timed here)."""

    def export(self, *args: object, **kwargs: object) -> object:
        return None

    def shutdown(self, *args: object, **kwargs: object) -> None:
        return None


def _best_ms(fn: Callable[[], object], repeat: int = 5, number: int = 3,
             clock: Callable[[], float] = time.perf_counter) -> float:
    """Min over ``repeat`` runs of ``number`` calls, in ms per call, by ``clock``."""
    best = float("inf")
    for _ in range(repeat):
        t = clock()
        for _ in range(number):
            fn()
        best = min(best, (clock() - t) / number)
    return best * 1000.0


def _best_cpu_ms(fn: Callable[[], object], repeat: int = 5, number: int = 3) -> float:
    """:func:`_best_ms` in this process's CPU time, which the load moves less."""
    return _best_ms(fn, repeat, number, clock=time.process_time)


def run(models: int, features: int) -> None:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    src = synthetic_fleet(models=models, features=features, seed=0)
    registry, _ = new_registry(src)
    body, _ = render(registry, "text/plain")
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    guard = CardinalityGuard()
    resource = resource_from_env()

    def otlp_build() -> object:
        points = build_points(src.snapshots(), src.sidecar_stats(), guard)
        return to_metrics_data(points, resource, start_ns=0)

    def otlp_encode() -> object:
        return encode_metrics(otlp_build()).SerializeToString()  # type: ignore[arg-type]

    sdk_collect, sdk_series = _sdk_path(src, guard)
    exporter = OtlpMetricsExporter(src, exporter=_Discard(), resource=resource)
    exporter.build()  # the exporter's own path: what a periodic export after no new data builds

    def exporter_idle() -> object:
        return exporter.build()

    def sdk_encode() -> object:
        return encode_metrics(sdk_collect()).SerializeToString()  # type: ignore[arg-type]

    points_ms = _best_ms(lambda: build_points(src.snapshots(), src.sidecar_stats(), guard))
    text_ms = _best_ms(lambda: render(registry, "text/plain"))
    om_ms = _best_ms(lambda: render(registry, "application/openmetrics-text"))
    otlp_ms, otlp_cpu = _best_ms(otlp_build), _best_cpu_ms(otlp_build)
    enc_ms = _best_ms(otlp_encode)
    sdk_ms = _best_ms(sdk_encode)
    idle_ms, idle_cpu = _best_ms(exporter_idle), _best_cpu_ms(exporter_idle)
    otlp_again = _best_ms(otlp_encode)  # interleaved: the machine is shared
    assert exporter.points.builds == 1  # nothing new arrived: no export rebuilt the points
    payload = len(encode_metrics(otlp_build()).SerializeToString())  # type: ignore[arg-type]
    print(f"{models} models x {features} features: {series} series, {len(body) / 1024:.0f} KiB text")
    print(f"  build points (shared)          {points_ms:7.2f} ms")
    print(f"  Prometheus text scrape         {text_ms:7.2f} ms  ({series / text_ms * 1000:,.0f} series/s)")
    print(f"  OpenMetrics scrape             {om_ms:7.2f} ms")
    print(f"  OTLP MetricsData build         {otlp_ms:7.2f} ms  (CPU {otlp_cpu:.2f} ms; points built afresh)")
    print(f"  OTLP export after no new data  {idle_ms:7.2f} ms  (CPU {idle_cpu:.2f} ms; points kept, "
          f"only re-stamped)")
    print(f"  OTLP build + protobuf encode   {min(enc_ms, otlp_again):7.2f} ms  "
          f"({payload / 1024:.0f} KiB payload)")
    print(f"  SDK MeterProvider collect + encode, no histograms "
          f"{sdk_ms:7.2f} ms  ({sdk_series} points)")


def _sdk_path(src: object, guard: CardinalityGuard) -> tuple[Callable[[], object], int]:
    """The SDK route: observable instruments fed from the same points by callbacks."""
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from driftline import catalogue as cat
    from driftline.exporters.otlp import attribute_name, otel_unit

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("driftline")
    cache: dict[str, object] = {}

    def points_now() -> dict[str, object]:
        if not cache:  # one build per collection, shared by every callback
            built = build_points(src.snapshots(), src.sidecar_stats(), guard)  # type: ignore[attr-defined]
            cache.update({p.spec.name: p for p in built})
        return cache

    def callback(spec: cat.MetricSpec) -> Callable[[CallbackOptions], list[Observation]]:
        keys = [attribute_name(lab) for lab in spec.labels]

        def observe(options: CallbackOptions) -> list[Observation]:
            p = points_now().get(spec.name)
            if p is None:
                return []
            return [Observation(v, dict(zip(keys, values, strict=True)))
                    for values, v in p.values.items()]  # type: ignore[attr-defined]
        return observe

    n = 0
    for spec in cat.ALL:
        if spec.type == "histogram":
            continue  # no observable histogram in the OpenTelemetry API
        make = meter.create_observable_counter if spec.type == "counter" else \
            meter.create_observable_gauge
        make(spec.otel_name, callbacks=[callback(spec)], unit=otel_unit(spec),
             description=spec.help)
    for p in build_points(src.snapshots(), src.sidecar_stats(), guard):  # type: ignore[attr-defined]
        n += len(p.values)

    def collect() -> object:
        cache.clear()
        return reader.get_metrics_data()
    return collect, n


def main() -> None:
    run(1, 25)
    run(10, 25)
    run(50, 25)


if __name__ == "__main__":
    main()
