"""Shared pytest configuration.

Tests that need real Prometheus or Alertmanager start them through :mod:`driftline_demo.stack`.
Hypothesis runs without per-example deadlines: the suite runs on 2 shared cores, and speed is
measured by the benchmarks, never by timing assertions in tests. ``HYPOTHESIS_PROFILE=thorough``
runs more examples.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
