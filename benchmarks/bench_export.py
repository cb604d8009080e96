"""Scrape render time and OTLP payload build time for a realistic fleet.

Fleets: 1, 10 and 50 models × 25 features (every 5th categorical with 8 categories), 3 classes, two
proxy status classes. Prints the series count, ms per text scrape, per OpenMetrics scrape, per
OTLP build (data model) and per OTLP build + protobuf encode, best of several runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from driftline.exporters.cardinality import CardinalityGuard
from driftline.exporters.fleet import synthetic_fleet
from driftline.exporters.otlp import resource_from_env, to_metrics_data
from driftline.exporters.points import build_points
from driftline.exporters.prometheus import new_registry, render


def _best_ms(fn: Callable[[], object], repeat: int = 5, number: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best * 1000.0


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

    points_ms = _best_ms(lambda: build_points(src.snapshots(), src.sidecar_stats(), guard))
    text_ms = _best_ms(lambda: render(registry, "text/plain"))
    om_ms = _best_ms(lambda: render(registry, "application/openmetrics-text"))
    otlp_ms = _best_ms(otlp_build)
    enc_ms = _best_ms(otlp_encode)
    payload = len(encode_metrics(otlp_build()).SerializeToString())  # type: ignore[arg-type]
    print(f"{models} models x {features} features: {series} series, {len(body) / 1024:.0f} KiB text")
    print(f"  build points (shared)          {points_ms:7.2f} ms")
    print(f"  Prometheus text scrape         {text_ms:7.2f} ms  ({series / text_ms * 1000:,.0f} series/s)")
    print(f"  OpenMetrics scrape             {om_ms:7.2f} ms")
    print(f"  OTLP MetricsData build         {otlp_ms:7.2f} ms")
    print(f"  OTLP build + protobuf encode   {enc_ms:7.2f} ms  ({payload / 1024:.0f} KiB payload)")


def main() -> None:
    run(1, 25)
    run(10, 25)
    run(50, 25)


if __name__ == "__main__":
    main()
