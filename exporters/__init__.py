"""Exporters: turn monitor snapshots into Prometheus and OpenTelemetry metrics."""
