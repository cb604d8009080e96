"""Grafana dashboards generated from the metric catalogue, and their provisioning."""
