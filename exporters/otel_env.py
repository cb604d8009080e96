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


#: The specification's default for OTEL_EXPORTER_OTLP_[METRICS_]TIMEOUT, in milliseconds.
DEFAULT_OTLP_TIMEOUT_MS = 10_000.0
_TIMEOUT_VARS = ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")


def env_milliseconds(var: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """A positive number of milliseconds from ``var`` (``default`` when unset or empty); any
    other value is a configuration error naming the variable."""
    env = os.environ if environ is None else environ
    raw = env.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"not a number: {raw!r}", key=var,
                          fix=f"give milliseconds, e.g. {default:.0f}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"must be a positive number of milliseconds, got {raw!r}", key=var,
                          fix=f"give milliseconds, e.g. {default:.0f}")
    return value


def otlp_timeout_from_env(environ: Mapping[str, str] | None = None) -> tuple[float, str | None]:
    """How long one OTLP request may take, in milliseconds, and the variable that said so
    (``None``: the default, 10 s).

    ``OTEL_EXPORTER_OTLP_METRICS_TIMEOUT``, then ``OTEL_EXPORTER_OTLP_TIMEOUT``, in
    milliseconds as the specification defines them (and as the Collector, Java and Go read
    them). Driftline reads them itself: the Python SDK's exporters read the same variables as
    seconds, so ``10000`` meant to be 10 s would make an export wait up to 2¾ hours."""
    env = os.environ if environ is None else environ
    for var in _TIMEOUT_VARS:
        if env.get(var, "").strip():
            return env_milliseconds(var, DEFAULT_OTLP_TIMEOUT_MS, env), var
    return DEFAULT_OTLP_TIMEOUT_MS, None
