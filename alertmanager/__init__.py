"""Prometheus rules, Alertmanager configuration and the webhook receiver that acts on alerts."""
