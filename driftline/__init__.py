"""Driftline: drift and proxy-accuracy monitoring for ML models in production.

Driftline watches a model's inputs and outputs next to the model server, compares them with a
baseline profile built from training data, and exports the results as Prometheus and
OpenTelemetry metrics that Grafana dashboards and Alertmanager rules consume.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
