"""The standard ``OTEL_*`` variables that choose how metrics are pushed, read without importing
the OpenTelemetry SDK (the config check needs them before any exporter exists)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from driftline.errors import ConfigError

#: OTEL_METRICS_EXPORTER values; "prometheus" means no push (Driftline always serves /metrics).
_EXPORTERS = ("otlp", "console", "none", "prometheus")
_TEMPORALITIES = ("cumulative", "delta", "lowmemory")


def metrics_exporter_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``OTEL_METRICS_EXPORTER`` as ``"otlp"``, ``"console"`` or ``"none"``.

    A list (``otlp,prometheus``) pushes with OTLP if it names it, else to the console;
    ``none`` and ``prometheus`` alone push nothing. Other exporters (``zipkin``…) are refused
    with the variable named, rather than silently pushing OTLP."""
    env = os.environ if environ is None else environ
    raw = env.get("OTEL_METRICS_EXPORTER", "").strip().lower() or "otlp"
    names = {n.strip() for n in raw.split(",") if n.strip()}
    unknown = sorted(names - set(_EXPORTERS))
    if unknown:
        raise ConfigError(f"unsupported metrics exporter {', '.join(unknown)}",
                          key="OTEL_METRICS_EXPORTER",
                          fix="use otlp, console or none (Prometheus /metrics is always served)")
    if "otlp" in names:
        return "otlp"
    return "console" if "console" in names else "none"


def temporality_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``: ``"cumulative"`` or ``"delta"``
    (``lowmemory`` is delta for Driftline's counters and histograms, see the module doc)."""
    env = os.environ if environ is None else environ
    var = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
    raw = env.get(var, "").strip().lower() or "cumulative"
    if raw not in _TEMPORALITIES:
        raise ConfigError(f"unknown temporality {raw!r}", key=var,
                          fix="use cumulative, delta or lowmemory")
    return "cumulative" if raw == "cumulative" else "delta"
