"""Shared pytest configuration. Fixtures that start real Prometheus/Alertmanager live in
``tests/stack_fixtures.py`` and use :mod:`driftline.stack`."""
