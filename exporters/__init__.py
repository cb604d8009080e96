"""Exporters: turn monitor snapshots into Prometheus and OpenTelemetry metrics.

Public API (imported lazily, so ``import driftline.exporters`` stays cheap)::

    DriftlineCollector, new_registry, render          # Prometheus (prometheus-client)
    start_metrics_server                              # in-process /metrics on loopback
    OtlpMetricsExporter, otlp_exporter_from_env       # OTLP (HTTP/protobuf, gRPC with [grpc])
    CardinalityLimits, CardinalityGuard               # label caps
    build_points                                      # snapshots -> points (shared by both)
    StaticSource, synthetic_fleet                     # fixed / synthetic SnapshotSource
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # real types for type checkers; at run time the names load on first use
    from driftline.exporters.cardinality import CardinalityGuard, CardinalityLimits
    from driftline.exporters.fleet import StaticSource, synthetic_fleet
    from driftline.exporters.otlp import OtlpMetricsExporter, otlp_exporter_from_env
    from driftline.exporters.points import build_points
    from driftline.exporters.prometheus import (
        DriftlineCollector,
        new_registry,
        render,
        start_metrics_server,
    )

_EXPORTS: dict[str, str] = {
    "DriftlineCollector": "prometheus",
    "new_registry": "prometheus",
    "render": "prometheus",
    "start_metrics_server": "prometheus",
    "OtlpMetricsExporter": "otlp",
    "otlp_exporter_from_env": "otlp",
    "CardinalityLimits": "cardinality",
    "CardinalityGuard": "cardinality",
    "build_points": "points",
    "StaticSource": "fleet",
    "synthetic_fleet": "fleet",
}

__all__ = [
    "CardinalityGuard", "CardinalityLimits", "DriftlineCollector", "OtlpMetricsExporter",
    "StaticSource", "build_points", "new_registry", "otlp_exporter_from_env", "render",
    "start_metrics_server", "synthetic_fleet",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'driftline.exporters' has no attribute {name!r}")
    return getattr(importlib.import_module(f"driftline.exporters.{module}"), name)
